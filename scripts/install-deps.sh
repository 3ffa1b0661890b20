#!/bin/sh
# Installs the Debian packages a purpose needs, when they are missing.
#   build: compiler and libraries        test: build + what the tests drive
#   demo: build + what the demo drives       bench: test + the peers measured side by side
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu

purpose=${1:-build}
build_pkgs="gcc make libc6-dev pkg-config libseccomp-dev libjson-c-dev libmd-dev libc-ares-dev libnftnl-dev libmnl-dev"
test_pkgs="util-linux iproute2 procps nftables busybox-static debootstrap asciinema curl python3 openssl"
bench_pkgs="bubblewrap crun firejail runsc socat"

case "$purpose" in
build) want="$build_pkgs" ;;
demo) want="$build_pkgs curl python3" ;;
test) want="$build_pkgs $test_pkgs" ;;
bench) want="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "install-deps: unknown purpose '$purpose': use build, demo, test or bench" >&2; exit 2 ;;
esac

missing=""
# npm for the egress test's real package install: the machine's own when it has one.
if [ "$purpose" != build ] && ! command -v npm >/dev/null 2>&1; then
	want="$want npm"
fi
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "agentbox: missing Debian packages:$missing" >&2
	echo "agentbox: install them with: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "agentbox: installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
