#!/usr/bin/env bash
# mkguest.sh: build the kit for a tiny Linux guest that the NBD tests boot
# under qemu-system-x86_64 (TCG) from a VDI: Debian's cloud kernel and an
# initramfs of busybox-static, the virtio modules and an /init that
#
#   - insmods the modules virtio_blk and virtio_pci need, dependencies first
#     (read from each module's .modinfo; Debian builds them as modules);
#   - waits for /dev/vda;
#   - reads sdpat_len bytes at sdpat_off of /dev/vda and compares their md5
#     with sdpat_md5, printing "SHEEPDOG-GUEST: pattern ok" or
#     "SHEEPDOG-GUEST: pattern MISMATCH ..." on the console;
#   - writes one 512-byte sector at byte sdmark_off of /dev/vda that begins
#     with "SHEEPDOG-NBD-GUEST-OK <sdtoken>\n" (zero padded), syncs it and
#     prints "SHEEPDOG-GUEST: marker written";
#   - powers off (poweroff -f), also when something failed.
#
# The sd* values come from the kernel command line, e.g.
#   console=ttyS0 panic=-1 quiet sdtoken=XYZ sdmark_off=1048576
#   sdpat_off=4194304 sdpat_len=65536 sdpat_md5=<md5 of the pattern>
#
# Usage: mkguest.sh [CACHE_DIR]
# Prints the kit directory (holding vmlinuz and initrd.img) on stdout. The
# kit is cached under CACHE_DIR (default $SD_GUEST_CACHE, else
# ${XDG_CACHE_HOME:-~/.cache}/sheepdog-tests/guest) in a directory named after
# the kernel package and its version, so a second run downloads nothing.
# The kernel package is the one linux-image-cloud-amd64 depends on (override
# with SD_GUEST_KERNEL_PKG). Exit status 77 when no kernel can be had (no
# apt, no network to the mirror and nothing cached), with the reason on
# stderr; 1 on any other failure.
set -euo pipefail

say() { echo "mkguest: $*" >&2; }
skip() {
	say "SKIP: $*"
	exit 77
}

cache=${1:-${SD_GUEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/sheepdog-tests/guest}}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
	cache=${TMPDIR:-/tmp}/sheepdog-tests-guest-$(id -u)
	mkdir -p "$cache"
fi

# Bump when the layout of the initramfs or the /init script changes, so old
# cached kits are rebuilt.
KIT_REV=2

# The newest cached kit, for when apt cannot tell us the current kernel.
newest_cached() {
	local d
	d=$(find "$cache" -mindepth 2 -maxdepth 2 -name "ok.$KIT_REV" -printf '%T@ %h\n' \
		2>/dev/null | sort -rn | head -1 | cut -d' ' -f2-)
	[[ -n $d ]] && echo "$d"
}

# Which kernel package and version?
pkg=${SD_GUEST_KERNEL_PKG:-}
if [[ -z $pkg ]] && command -v apt-cache >/dev/null 2>&1; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }') || true
fi
ver=""
if [[ -n $pkg ]]; then
	ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
		awk '$1 == "Version:" { print $2; exit }') || true
fi
if [[ -z $pkg || -z $ver ]]; then
	if d=$(newest_cached); then
		say "apt does not know the cloud kernel; using the cached kit $d"
		echo "$d"
		exit 0
	fi
	skip "apt-cache knows no linux-image-cloud-amd64 (no Debian package lists?) and no kit is cached in $cache"
fi

kit=$cache/${pkg}_$ver
if [[ -f $kit/ok.$KIT_REV && -f $kit/vmlinuz && -f $kit/initrd.img ]]; then
	echo "$kit"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mkguest.XXXXXX")
trap 'rm -rf "$work"' EXIT

# download PKG: the .deb of PKG into $work (apt-get download needs no root;
# when the lists are stale and we are root, refresh them once and retry).
download() {
	local p=$1
	if (cd "$work" && apt-get download -qq "$p" >"$work/apt.log" 2>&1); then
		return 0
	fi
	if [[ $(id -u) -eq 0 ]]; then
		apt-get update -qq >>"$work/apt.log" 2>&1 || true
		(cd "$work" && apt-get download -qq "$p" >>"$work/apt.log" 2>&1) && return 0
	fi
	return 1
}

command -v dpkg-deb >/dev/null || skip "no dpkg-deb"
command -v cpio >/dev/null || skip "no cpio (apt-get install cpio)"
download "$pkg" || {
	sed 's/^/  /' "$work/apt.log" >&2
	if d=$(newest_cached); then
		say "cannot download $pkg; using the cached kit $d"
		echo "$d"
		exit 0
	fi
	skip "cannot download $pkg=$ver from the Debian mirror (see apt's output above)"
}
dpkg-deb -x "$work/${pkg}_"*.deb "$work/k"
kver=${pkg#linux-image-}
vmlinuz=$work/k/boot/vmlinuz-$kver
[[ -f $vmlinuz ]] || { say "no boot/vmlinuz-$kver in $pkg"; exit 1; }
moddir=$work/k/lib/modules/$kver
[[ -d $moddir ]] || { say "no lib/modules/$kver in $pkg"; exit 1; }

# busybox-static: the installed one, else its package.
bb=""
if [[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == "install ok installed" ]]; then
	bb=$(dpkg -L busybox-static | grep -E '/bin/busybox$' | head -1)
fi
if [[ -z $bb ]]; then
	download busybox-static || skip "busybox-static is not installed and cannot be downloaded"
	dpkg-deb -x "$work"/busybox-static_*.deb "$work/bb"
	bb=$(find "$work/bb" -path '*/bin/busybox' | head -1)
fi
[[ -x $bb ]] || { say "no busybox binary"; exit 1; }

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp "$bb" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# The modules, each after the ones it depends on. A module that is built
# into this kernel (modules.builtin) needs nothing.
declare -A placed=()
order=()
modfile() { # modfile NAME: the path of module NAME (.ko, .ko.xz or .ko.zst)
	find "$moddir/kernel" \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \
		-o -name "${1//_/-}.ko" -o -name "${1//_/-}.ko.xz" -o -name "${1//_/-}.ko.zst" \) |
		head -1
}
builtin_mod() {
	[[ -f $moddir/modules.builtin ]] &&
		grep -qE "/(${1}|${1//_/-})\.ko$" "$moddir/modules.builtin"
}
place() {
	local name=$1 f ko deps d
	[[ -n ${placed[$name]:-} ]] && return 0
	placed[$name]=1
	if builtin_mod "$name"; then
		return 0
	fi
	f=$(modfile "$name")
	[[ -n $f ]] || { say "module $name not found in $pkg"; exit 1; }
	ko=$root/lib/modules/$name.ko
	case $f in
	*.xz) xz -dc "$f" >"$ko" ;;
	*.zst) zstd -qdc "$f" >"$ko" ;;
	*) cp "$f" "$ko" ;;
	esac
	deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -1)
	for d in ${deps//,/ }; do
		place "$d"
	done
	order+=("$name")
}
place virtio_pci
place virtio_blk

cat >"$root/init" <<EOF
#!/bin/sh
# Generated by tests/tools/mkguest.sh (kit rev $KIT_REV).
MODULES="${order[*]}"
EOF
cat >>"$root/init" <<'EOF'
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1

say() { echo "SHEEPDOG-GUEST: $*"; }
die() {
	say "FAILED: $*"
	poweroff -f
}
arg() { # arg NAME: the value of NAME= on the kernel command line
	for w in $(cat /proc/cmdline); do
		case $w in "$1="*) echo "${w#*=}" ;; esac
	done
}

for m in $MODULES; do
	insmod "/lib/modules/$m.ko" || die "insmod $m"
done
say "modules loaded: $MODULES"

i=0
until [ -e /sys/block/vda/dev ]; do
	i=$((i + 1))
	[ $i -gt 600 ] && die "no /sys/block/vda after 60s"
	sleep 0.1
done
if [ ! -b /dev/vda ]; then
	IFS=: read -r maj min </sys/block/vda/dev
	mknod /dev/vda b "$maj" "$min" || die "mknod /dev/vda"
fi
say "vda has $(cat /sys/block/vda/size) sectors"

off=$(arg sdpat_off)
len=$(arg sdpat_len)
want=$(arg sdpat_md5)
if [ -n "$off" ] && [ -n "$len" ] && [ -n "$want" ]; then
	got=$(dd if=/dev/vda bs=512 skip=$((off / 512)) count=$((len / 512)) 2>/dev/null |
		md5sum | cut -d' ' -f1)
	if [ "$got" = "$want" ]; then
		say "pattern ok"
	else
		say "pattern MISMATCH: md5 $got, expected $want"
	fi
fi

token=$(arg sdtoken)
moff=$(arg sdmark_off)
if [ -n "$token" ] && [ -n "$moff" ]; then
	{
		echo "SHEEPDOG-NBD-GUEST-OK $token"
		dd if=/dev/zero bs=512 count=1 2>/dev/null
	} | head -c 512 >/tmp/marker
	dd if=/tmp/marker of=/dev/vda bs=512 seek=$((moff / 512)) count=1 conv=notrunc,fsync \
		2>/dev/null || die "marker write"
	sync
	say "marker written"
fi
poweroff -f
EOF
chmod 755 "$root/init"

# The archive, owned by root whoever builds it.
mkdir -p "$work/out"
cp "$vmlinuz" "$work/out/vmlinuz"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -9 >"$work/out/initrd.img"
echo "$pkg $ver modules: ${order[*]}" >"$work/out/ok.$KIT_REV"
# Another builder may have finished first; else replace whatever is there
# (a kit of an older KIT_REV). The rename is atomic.
if [[ ! -f $kit/ok.$KIT_REV ]]; then
	rm -rf "$kit"
	mv -T "$work/out" "$kit" 2>/dev/null || [[ -f $kit/ok.$KIT_REV ]] ||
		{ say "cannot place the kit at $kit"; exit 1; }
	say "built $kit (${order[*]})"
fi
# Kits of older kernels are not needed any more.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'linux-image-*' \
	! -path "$kit" -exec rm -rf {} + 2>/dev/null || true
echo "$kit"
