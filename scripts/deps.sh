#!/usr/bin/env bash
# Installs every Debian package the tests use as a real peer (idempotent,
# quiet). Run as root; `make deps` calls it.
set -euo pipefail
pkgs=(
  # NUT: upsd + dummy-ups as the UPS source, upsmon/upsc as real clients
  nut-server nut-client
  # DNS: BIND9 for RFC 2136 + TSIG; ddclient for the side-by-side benchmark
  bind9 bind9-utils bind9-dnsutils ddclient
  # the ISP box: UPnP IGD, DHCP
  miniupnpd dnsmasq kea-dhcp4-server
  # PXE clients and the gate image booted under emulation
  ipxe ipxe-qemu ovmf qemu-system-x86 qemu-utils
  # the real arm64 Pi image under emulation (-M raspi3b), its dtb edited as disable-bt does
  qemu-system-arm device-tree-compiler
  # time (NTP server on the simulated internet), IPv6 router advertisements from the box
  chrony radvd
  # the status page in a real browser; a real SMTP receiver for alerts
  chromium python3-aiosmtpd
  # the VPS side
  wireguard-go wireguard-tools iperf3
  # SSH
  openssh-client openssh-server
  # cloud-init (schema checks of our NoCloud data), debootstrap (golden image)
  cloud-init debootstrap
  # golden image boot loader (BIOS)
  extlinux syslinux-common
  # independent readers of the image we write
  squashfs-tools dosfstools mtools fdisk e2fsprogs file
  # TFTP clients
  tftp-hpa atftp
  # plumbing
  iproute2 nftables iputils-ping curl cpio zstd kmod procps
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Daemons must not start on the machine itself: the tests start their own
# inside network namespaces.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/gate-deps.log 2>&1 || {
  tail -50 /tmp/gate-deps.log
  exit 1
}
echo "deps: done"
