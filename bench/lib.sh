# Sourced by the benchmarks.

# bench_ports N prints a base port such that
# BASE..BASE+N-1 are free and lie below the kernel's ephemeral port range,
# so that no outgoing connection (sheep keep many to each other) can take
# one of them between the check and the bind.
bench_ports() {
	local n=$1 lo=20000 hi base try
	read -r hi _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || hi=32768
	((hi - lo > 2 * n)) || { lo=10000; hi=32768; }
	for ((try = 0; try < 100; try++)); do
		base=$((lo + RANDOM % (hi - lo - n)))
		if python3 "$(dirname "${BASH_SOURCE[0]}")/../tests/tools/ports-free.py" \
			"$base" "$n"; then
			echo "$base"
			return 0
		fi
	done
	echo "bench: no $n free TCP ports found below $hi" >&2
	return 1
}

# bench_wait SECONDS CMD...: poll CMD (quietly) every 0.1 s until it
# succeeds; false after SECONDS.
bench_wait() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}
