#!/usr/bin/env python3
# ports-free.py BASE COUNT: exit 0 if TCP ports BASE..BASE+COUNT-1 can all be
# bound on every address right now, 1 if one cannot. Used by the functional
# tests (lib.sh) and the benchmarks (bench/lib.sh) to pick their ports.
import socket
import sys

base, count = int(sys.argv[1]), int(sys.argv[2])
for port in range(base, base + count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("0.0.0.0", port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
