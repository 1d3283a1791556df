#!/usr/bin/env bash
# The second command of the README: installs what the build needs, then builds
# and runs the whole test suite twice, in build/ and in build-asan/ (with
# AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer). Both runs
# happen even if the first fails; the exit status is non-zero if any build or
# test failed, and the last line sums it up.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/deps.sh --tests

summary=()
failed=0

# run_suite NAME DIR [BUILD ARGS...]: build into DIR and run ctest there.
run_suite() {
	local name=$1 dir=$2 log line
	shift 2
	echo "=== $name: building $dir"
	if ! bash scripts/build.sh "$@"; then
		summary+=("$name: BUILD FAILED")
		failed=1
		return 0
	fi
	echo "=== $name: running tests"
	log=$dir/test-summary.log
	if ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2 2>&1 |
		tee "$log"; then
		line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)
		summary+=("$name: ${line:-ok}")
	else
		line=$(grep -E '^[0-9]+% tests passed' "$log" | tail -n 1)
		summary+=("$name: FAILED (${line:-ctest failed})")
		failed=1
	fi
}

run_suite build build

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite build-asan build-asan --asan

joined=$(printf '%s; ' "${summary[@]}")
echo
if ((failed)); then
	echo "test.sh: FAIL -- ${joined%; }"
	exit 1
fi
echo "test.sh: PASS -- ${joined%; }"
