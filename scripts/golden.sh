#!/usr/bin/env bash
# Builds the golden test image for the re-imaging tests (issue 6): Debian 12
# by debootstrap (linux-image-amd64, cloud-init, openssh-server, ifupdown +
# isc-dhcp-client, systemd-sysv) on a small raw MBR disk with one ext4
# partition and extlinux as the BIOS boot loader; plus a zstd variant.
#
# Output (cached: rebuilt only when missing or older than this script):
#   build/golden/golden.raw       raw disk image
#   build/golden/golden.raw.zst   the same, zstd-compressed
#   build/golden/golden.sha256    sha256 of both (sha256sum format)
#
# The Debian mirror is read at run time from the machine's apt sources
# (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list); no
# mirror is named here. Run as root; `make golden` calls it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${GOLDEN_DIR:-$here/build/golden}
size_mib=${GOLDEN_SIZE_MIB:-1536}
suite=bookworm
uuid=6a1d0c2e-0b5e-4c1a-9d3e-601de0000001

if [ -s "$out/golden.raw" ] && [ -s "$out/golden.raw.zst" ] && [ -s "$out/golden.sha256" ] &&
  [ "$out/golden.raw" -nt "$0" ]; then
  echo "golden: cached $out/golden.raw"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "golden: run as root (debootstrap, loop mount)" >&2; exit 1; }
for p in debootstrap mkfs.ext4 sfdisk extlinux zstd sha256sum; do
  command -v "$p" >/dev/null || { echo "golden: $p missing (make deps)" >&2; exit 1; }
done
mbr=
for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/EXTLINUX/mbr.bin; do
  [ -e "$f" ] && { mbr=$f; break; }
done
[ -n "$mbr" ] || { echo "golden: syslinux mbr.bin missing (apt-get install syslinux-common)" >&2; exit 1; }

mirror=
if [ -e /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -e /etc/apt/sources.list ]; then
  mirror=$(awk '/^deb / && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "golden: no Debian mirror found in the apt sources" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d "$out/work.XXXXXX")
mnt=$work/mnt
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  for m in proc sys dev; do mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

root=$work/root
echo "golden: debootstrap $suite from $mirror"
debootstrap --variant=minbase \
  --include=systemd-sysv,linux-image-amd64,cloud-init,openssh-server,ifupdown,isc-dhcp-client,python3-cffi-backend,netbase,iproute2,ca-certificates \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -40 "$work/debootstrap.log" >&2
  exit 1
}

kver=$(ls "$root/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -1)
[ -n "$kver" ] && [ -e "$root/boot/initrd.img-$kver" ] || { echo "golden: kernel or initrd missing in /boot" >&2; exit 1; }

echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
echo golden >"$root/etc/hostname"
printf 'auto lo\niface lo inet loopback\nsource /etc/network/interfaces.d/*\n' >"$root/etc/network/interfaces"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/*
mkdir -p "$root/boot/extlinux"
cat >"$root/boot/extlinux/extlinux.conf" <<EOF
DEFAULT debian
TIMEOUT 1
PROMPT 0
LABEL debian
  KERNEL /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=UUID=$uuid ro console=tty0 console=ttyS0,115200 net.ifnames=0
EOF

echo "golden: ext4 ${size_mib} MiB"
fs=$work/fs.ext4
# syslinux reads ext4 without the 64bit feature; fixed UUID and hash seed.
mkfs.ext4 -q -F -L golden-root -U "$uuid" -E hash_seed=$uuid -O ^64bit,^metadata_csum \
  -d "$root" "$fs" $((size_mib - 1))M
mkdir -p "$mnt"
mount -o loop "$fs" "$mnt"
extlinux --install "$mnt/boot/extlinux" >/dev/null
umount "$mnt"
e2fsck -fn "$fs" >/dev/null

disk=$work/golden.raw
truncate -s "${size_mib}M" "$disk"
echo 'label: dos
label-id: 0x60de0001
start=2048, type=83, bootable' | sfdisk -q "$disk"
dd if="$fs" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$mbr" of="$disk" bs=440 count=1 conv=notrunc status=none

zstd -q -T0 -3 -f "$disk" -o "$work/golden.raw.zst"
mv "$disk" "$out/golden.raw"
mv "$work/golden.raw.zst" "$out/golden.raw.zst"
(cd "$out" && sha256sum golden.raw golden.raw.zst >golden.sha256)
echo "golden: $(cat "$out/golden.sha256" | tr '\n' ' ')"
