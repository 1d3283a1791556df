#!/usr/bin/env bash
# Runs a local Sheepdog cluster from the build tree, for trying things out:
# N sheep daemons on this host joined by the local cluster driver, node I on
# port SD_CLUSTER_PORT+I in zone I, serving NBD on SD_CLUSTER_NBD_PORT+I,
# with its store, pid file and logs in SD_CLUSTER_DIR/nodeI. `start` also formats the cluster and creates a demo VDI.
#
# Environment: SD_CLUSTER_DIR (default /tmp/sheepdog-demo), SD_CLUSTER_PORT
# (first port, default 7000), SD_CLUSTER_NBD_PORT (first NBD port, default
# 10809), SD_BUILD_DIR (default build/ in this tree),
# SD_WAIT_TIMEOUT (seconds to wait for each step, default 30).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${SD_BUILD_DIR:-$root/build}
cluster_dir=${SD_CLUSTER_DIR:-/tmp/sheepdog-demo}
base_port=${SD_CLUSTER_PORT:-7000}
nbd_base_port=${SD_CLUSTER_NBD_PORT:-10809}
wait_timeout=${SD_WAIT_TIMEOUT:-30}
sheep=$build_dir/sheep
dog=$build_dir/dog
demo_vdi=demo
demo_size=1G

usage() {
	cat <<EOF
usage: $0 start [N]   start N sheep (default 3), format, create VDI '$demo_vdi'
       $0 stop        shut the cluster down
       $0 status      show which sheep run and the cluster's state
EOF
}

die() {
	echo "cluster: $*" >&2
	exit 1
}

now_ms() {
	local us=${EPOCHREALTIME//[!0-9]/}
	echo $((us / 1000))
}

# A process is alive when it exists and is not a zombie.
pid_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# The pid of the sheep running in node directory $1, if there is one.
node_pid() {
	local pid
	pid=$(cat "$1/sheep.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	pid_alive "$pid" || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == sheep ]] || return 1
	echo "$pid"
}

node_port() {
	cat "$1/port" 2>/dev/null
}

node_dirs() {
	local d
	for d in "$cluster_dir"/node*; do
		[[ -d $d && ${d##*/node} =~ ^[0-9]+$ ]] && echo "$d"
	done | sort -V
}

dogc() {
	timeout "$wait_timeout" "$dog" "$@"
}

port_in_use() {
	[[ -n $(ss -Hltn "sport = :$1") ]]
}

show_log_tail() {
	local f
	for f in "$1/sheep.out" "$1/sheep.log"; do
		if [[ -s $f ]]; then
			echo "----- $f (last 20 lines) -----" >&2
			tail -n 20 "$f" >&2
		fi
	done
}

# wait_ready DIR PID PORT: poll until the sheep answers `dog node list`.
wait_ready() {
	local dir=$1 pid=$2 port=$3
	local deadline=$(($(now_ms) + wait_timeout * 1000))
	until timeout 10 "$dog" node list -p "$port" >/dev/null 2>&1; do
		if ! pid_alive "$pid"; then
			show_log_tail "$dir"
			die "sheep in $dir (pid $pid) exited during startup"
		fi
		if (($(now_ms) > deadline)); then
			show_log_tail "$dir"
			die "sheep in $dir did not answer on port $port within ${wait_timeout}s"
		fi
		sleep 0.1
	done
}

# wait_until DESCRIPTION CMD...: poll CMD until it succeeds, with a deadline.
wait_until() {
	local what=$1
	shift
	local deadline=$(($(now_ms) + wait_timeout * 1000))
	until "$@" >/dev/null 2>&1; do
		(($(now_ms) > deadline)) && die "timed out after ${wait_timeout}s waiting for $what"
		sleep 0.1
	done
}

node_count_at_least() {
	local n
	n=$(timeout 10 "$dog" node list -r -p "$1" | wc -l)
	((n >= $2))
}

cluster_state() {
	local out
	out=$(dogc cluster info -r -p "$1" 2>/dev/null) || true
	[[ -n $out ]] || return 1
	echo "${out%%$'\n'*}"
}

cluster_running() {
	[[ $(cluster_state "$1") == running* ]]
}

start_node() {
	local i=$1 dir=$cluster_dir/node$1 port=$((base_port + $1)) pid
	local nbd_port=$((nbd_base_port + $1))
	mkdir -p "$dir"
	if pid=$(node_pid "$dir"); then
		echo "cluster: node $i already running (pid $pid, port $(node_port "$dir"))"
		return 0
	fi
	port_in_use "$port" && die "port $port is in use by another program"
	port_in_use "$nbd_port" && die "NBD port $nbd_port is in use by another program"
	echo "$port" >"$dir/port"
	# setsid: the daemon outlives this script and ignores the terminal's
	# signals; -f keeps it from forking so that $! is its pid.
	setsid "$sheep" -f -c "local:$cluster_dir/shm" -p "$port" -z "$i" \
		--nbd "port=$nbd_port" -P "$dir/sheep.pid" "$dir" \
		</dev/null >>"$dir/sheep.out" 2>&1 &
	pid=$!
	wait_ready "$dir" "$pid" "$port"
	[[ -s $dir/sheep.pid ]] || echo "$pid" >"$dir/sheep.pid"
	echo "cluster: node $i up (pid $pid, port $port, NBD port $nbd_port, zone $i)"
}

cmd_start() {
	local n=${1:-3} i copies state out
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "bad node count '$n'"
	[[ -x $sheep && -x $dog ]] ||
		die "no sheep/dog in $build_dir; build first: bash scripts/build.sh"
	mkdir -p "$cluster_dir"
	for ((i = 0; i < n; i++)); do
		start_node "$i"
	done
	# A node that was already running keeps the port it was started with.
	base_port=$(node_port "$cluster_dir/node0")
	wait_until "all $n nodes to join" node_count_at_least "$base_port" "$n"

	state=$(cluster_state "$base_port") || die "dog cluster info failed"
	if [[ $state == "Waiting for cluster to be formatted" ]]; then
		copies=$((n < 3 ? n : 3))
		dogc cluster format -c "$copies" -p "$base_port" </dev/null
	fi
	wait_until "the cluster to run" cluster_running "$base_port"

	out=$(dogc vdi list -r -p "$base_port" "$demo_vdi") || die "dog vdi list failed"
	if [[ -z $out ]]; then
		dogc vdi create -p "$base_port" "$demo_vdi" "$demo_size"
		echo "cluster: created VDI '$demo_vdi' ($demo_size)"
	fi

	# dog talks to port 7000 unless told otherwise.
	local p=""
	((base_port == 7000)) || p=" -p $base_port"
	cat <<EOF

A $n-node Sheepdog cluster is running (ports $base_port-$((base_port + n - 1))).

  $dog node list$p
  $dog cluster info$p
  $dog vdi list$p
  echo hello | $dog vdi write $demo_vdi 0 6$p    # write 6 bytes at offset 0
  $dog vdi read $demo_vdi 0 6$p                  # read them back
  $dog vdi snapshot -s before $demo_vdi$p         # keep those bytes
  $dog vdi clone -s before $demo_vdi copy$p       # a VDI sharing them
  $dog vdi tree$p
  $dog vdi backup -s before $demo_vdi /tmp/demo.before$p  # a verified backup

Attach the VDI over NBD (any sheep: NBD ports $nbd_base_port-$((nbd_base_port + n - 1))):

  qemu-img info nbd://127.0.0.1:$nbd_base_port/$demo_vdi
  qemu-system-x86_64 -drive file=nbd://127.0.0.1:$nbd_base_port/$demo_vdi,format=raw,if=virtio ...

Logs and data: $cluster_dir/node*/ (sheep.log, sheep.out)
Stop it:       scripts/cluster.sh stop
EOF
}

cmd_stop() {
	local dir pid port="" deadline pids=() dirs=()
	while read -r dir; do
		if pid=$(node_pid "$dir"); then
			pids+=("$pid")
			dirs+=("$dir")
			[[ -n $port ]] || port=$(node_port "$dir")
		fi
	done < <(node_dirs)
	if ((${#pids[@]} == 0)); then
		echo "cluster: no sheep running in $cluster_dir"
		return 0
	fi

	if [[ -z $port ]] || ! dogc cluster shutdown -p "$port"; then
		echo "cluster: 'dog cluster shutdown' failed; sending SIGTERM" >&2
		kill -TERM "${pids[@]}" 2>/dev/null || true
	fi

	deadline=$(($(now_ms) + wait_timeout * 1000))
	for pid in "${pids[@]}"; do
		while pid_alive "$pid" && (($(now_ms) <= deadline)); do
			sleep 0.1
		done
	done
	for pid in "${pids[@]}"; do
		if pid_alive "$pid"; then
			echo "cluster: sheep $pid still running after ${wait_timeout}s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	for dir in "${dirs[@]}"; do
		node_pid "$dir" >/dev/null || rm -f "$dir/sheep.pid"
	done
	echo "cluster: stopped ${#pids[@]} sheep (data kept in $cluster_dir)"
}

cmd_status() {
	local dir pid port live=""
	while read -r dir; do
		port=$(node_port "$dir" || echo "?")
		if pid=$(node_pid "$dir"); then
			echo "node ${dir##*/node}: running (pid $pid, port $port)"
			[[ -n $live ]] || live=$port
		else
			echo "node ${dir##*/node}: stopped (port $port)"
		fi
	done < <(node_dirs)
	if [[ -z $live ]]; then
		echo "no sheep running in $cluster_dir"
		return 3
	fi
	echo
	dogc node list -p "$live"
	echo
	dogc cluster info -p "$live"
}

case ${1:-} in
start)
	(($# <= 2)) || {
		usage >&2
		exit 64
	}
	cmd_start "${2:-3}"
	;;
stop) cmd_stop ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 64
	;;
esac
