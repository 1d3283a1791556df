#!/usr/bin/env bash
# Installs the Debian 12 packages needed to build and run Sheepdog; with
# --tests also what the test suite and the benchmarks run (QEMU, the NBD
# clients, fio, ...). Packages already installed are left alone: when
# nothing is missing, apt is not touched at all, so running this again is
# cheap and offline-safe.
set -euo pipefail

case ${1:-} in
"" | --tests) ;;
*)
	echo "usage: $0 [--tests]" >&2
	exit 64
	;;
esac

packages=(
	# toolchain and build system
	build-essential cmake ninja-build pkg-config
	# backup streams: compression and checksums
	libzstd-dev libxxhash-dev
	# unit tests
	libcmocka-dev
	# what the scripts and functional tests run: python3 (free-port probe),
	# procps (ps), iproute2 (ss), util-linux (setsid), coreutils (timeout)
	python3 procps iproute2 util-linux coreutils
)
test_packages=(
	# bench/backup.sh: the zstd CLI, mkfs.ext4 -d, /usr/bin/time
	zstd e2fsprogs time
	# NBD tests (122-124): real NBD clients (qemu-img/qemu-io, nbdinfo,
	# nbdcopy, libnbd's Python binding, fio's nbd engine), nbdkit as a
	# reference server, and the guest booted under TCG: qemu-system-x86 and
	# tests/tools/mkguest.sh's initramfs (busybox-static, cpio, xz-utils for
	# compressed modules; the kernel .deb is fetched with apt-get download
	# and cached)
	qemu-utils qemu-system-x86 libnbd-bin python3-libnbd nbdkit fio
	busybox-static cpio xz-utils
)
if [[ ${1:-} == --tests ]]; then
	packages+=("${test_packages[@]}")
fi

missing=()
for pkg in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ $status != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	echo "deps: all ${#packages[@]} packages already installed"
	exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	echo "deps: not root and sudo is not installed; install as root:" >&2
	echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
