#!/bin/sh
# Prints the path of a minimal Debian root made by debootstrap, building it once and
# keeping it in a cache (about a minute and 200 MB). Prints nothing when it cannot be
# made here (not root, no debootstrap, no mirror): the --rootfs tests then use a
# busybox root instead.
set -u
cache=${AB_ROOTFS_CACHE:-/var/cache/agentbox-tests/bookworm-minbase}
if [ -x "$cache/bin/sh" ] && [ -f "$cache/etc/debian_version" ]; then
	echo "$cache"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || exit 0
command -v debootstrap >/dev/null 2>&1 || exit 0
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(http[^ ]*\) bookworm main.*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
[ -n "$mirror" ] || exit 0
rm -rf "$cache.tmp"
mkdir -p "$(dirname "$cache")"
if timeout 600 debootstrap --variant=minbase bookworm "$cache.tmp" "$mirror" >"$cache.log" 2>&1; then
	rm -rf "$cache"
	mv "$cache.tmp" "$cache"
	echo "$cache"
else
	echo "debootstrap failed (see $cache.log); the --rootfs tests use busybox" >&2
	rm -rf "$cache.tmp"
fi
