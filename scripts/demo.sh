#!/usr/bin/env bash
# The first command of the README: on a fresh Debian 12 machine, installs what
# the build needs, builds the tree and starts a 3-node local cluster with a
# 1 GiB VDI named 'demo', then prints how to use it and how to stop it.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/deps.sh"
bash "$root/scripts/build.sh"
bash "$root/scripts/cluster.sh" start 3
