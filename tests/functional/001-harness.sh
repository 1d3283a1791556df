#!/usr/bin/env bash
# The harness itself: one sheep starts on a free port, answers `dog node list`
# with exit status 0, lists itself, and is still running afterwards.
# shellcheck source=tests/functional/lib.sh
. "$(dirname "$0")/lib.sh"

start_sheep 0
wait_for_sheep 0

assert_exit 0 dog_p 0 node list
nodes=$(dog_p 0 node list -r)
assert_eq 1 "$(wc -l <<<"$nodes")" "node list -r line count"
assert_alive 0

pass
