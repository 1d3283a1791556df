#!/usr/bin/env bash
# Configures and builds the tree with CMake and Ninja: build/ by default, or
# build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer (--asan).
# Further -D... arguments are passed to cmake at configure time.
set -euo pipefail

usage() {
	echo "usage: $0 [--asan] [-DVAR=VALUE...]"
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=$root/build
cmake_args=()

for arg in "$@"; do
	case $arg in
	--asan)
		build_dir=$root/build-asan
		cmake_args+=(-DSD_SANITIZE=ON)
		;;
	-D*) cmake_args+=("$arg") ;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 64
		;;
	esac
done

# An existing tree keeps the generator it was created with; a new one uses Ninja.
if [[ ! -f $build_dir/CMakeCache.txt ]]; then
	cmake_args=(-G Ninja "${cmake_args[@]}")
fi

cmake -S "$root" -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir"
echo "build: binaries are in $build_dir"
