#!/bin/bash
# --rootfs DIR: the sandbox's root is DIR instead of the host's tools. DIR is the tree
# named by AB_TEST_ROOTFS (say, from debootstrap) or a tiny one built here from the
# static probe (and a static busybox for the shell, when there is one).
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

busybox=
if [ -n "${AB_TEST_ROOTFS:-}" ]; then
	R=$(realpath "$AB_TEST_ROOTFS")
	marker=
else
	R=$T/rootfs
	mkdir -p "$R"/{bin,etc,tmp,proc,dev,sys}
	cp "$P" "$R/bin/probe"
	marker=rootfs-marker-$$
	echo "$marker" >"$R/etc/agentbox-rootfs-marker"
	echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
	# busybox-static is what makes a shell without libraries; root may install it.
	if ! [ -x /bin/busybox ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		timeout 120 apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
			{ timeout 120 apt-get update -qq >/dev/null 2>&1 &&
				timeout 120 apt-get install -y -qq busybox-static >/dev/null 2>&1; }
	fi
	# ldd fails on a static binary, which is the one that needs nothing from the tree.
	if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then
		cp /bin/busybox "$R/bin/busybox"
		ln -s busybox "$R/bin/sh"
		ln -s busybox "$R/bin/ls"
		ln -s busybox "$R/bin/cat"
		busybox=$R/bin/busybox
	fi
fi

rootfs_before=$(tree_digest "$R")

# The probe from the workspace runs on the new root.
box --rootfs "$R" -- "$P" status
expect_rc "--rootfs runs the probe" 0
expect_line "--rootfs keeps capabilities empty" "CapEff=0000000000000000"
expect_line "--rootfs keeps the seccomp filter" "Seccomp=2"
expect_line "--rootfs keeps no_new_privs" "NoNewPrivs=1"

# The probe sees that root, not the host's.
box --rootfs "$R" -- "$P" ls /
host_only=
for path in /* /.[!.]*; do
	entry=${path#/}
	[ -e "$path" ] || [ -L "$path" ] || continue
	if ! [ -e "$R/$entry" ] && ! [ -L "$R/$entry" ] && out_has "entry=$entry"; then
		case "$entry" in
		tmp | proc | dev | sys | home | root | run) ;; # may be made for the sandbox
		*) host_only="$host_only $entry" ;;
		esac
	fi
done
if out_has "ls=OK" && [ -z "$host_only" ]; then
	pass "--rootfs: / shows the rootfs, not the host's tree"
else
	fail "--rootfs: / shows the rootfs, not the host's tree" "host-only entries:$host_only" \
		"$(last_run)"
fi
if [ -n "$marker" ]; then
	box --rootfs "$R" -- "$P" read /etc/agentbox-rootfs-marker
	expect_line "--rootfs: the rootfs's own /etc is used" "head=$marker"
	box --rootfs "$R" -- /bin/probe hostname
	expect_line "--rootfs: a program of the rootfs runs" "hostname=agentbox"
	box --rootfs "$R" -- "$P" ls /usr
	expect_value_not_in "--rootfs: the host's /usr is absent" ls OK
elif [ -r "$R/etc/os-release" ]; then
	box --rootfs "$R" -- "$P" read /etc/os-release
	expect_line "--rootfs: the rootfs's own /etc is used" "head=$(head -n 1 "$R/etc/os-release")"
fi

box --workspace-mode rw --rootfs "$R" -- "$P" write "$WS/from-rootfs"
expect_line "--rootfs: the workspace is still writable" "write=OK"
ok_if "--rootfs: the workspace write lands on the host" test -f "$WS/from-rootfs"

# --rootfs must not write into the tree it was given (only a private view changes).
box --rootfs "$R" -- "$P" write /etc/agentbox-rootfs-write
expect_value_not_in "--rootfs: the rootfs is read-only" write OK
ok_if "--rootfs: nothing was written into the tree" test ! -e "$R/etc/agentbox-rootfs-write"

ok_if "--rootfs: the tree is unchanged after the runs" test "$(tree_digest "$R")" = "$rootfs_before"

# A rootfs whose /tmp and /home are symlinks out of it: the mounts agentbox makes there
# must stay in the sandbox, creating nothing where the links point.
R2=$T/rootfs-links
mkdir -p "$R2/bin" "$T/rootfs-outside"
cp "$P" "$R2/bin/probe"
ln -s "$T/rootfs-outside" "$R2/tmp"
ln -s "$T/rootfs-outside" "$R2/home"
box --rootfs "$R2" -- "$P" exit 0
ok_if "--rootfs with outward symlinks creates nothing outside" \
	test -z "$(ls -A "$T/rootfs-outside")"

if [ -n "${AB_TEST_ROOTFS:-}" ] || [ -n "$busybox" ]; then
	box --rootfs "$R" -- /bin/sh -c 'ls / && echo SHELL_RAN'
	expect_rc "--rootfs: the rootfs's shell runs" 0
	expect_line "--rootfs: the rootfs's shell prints" "SHELL_RAN"
else
	skip "--rootfs: the rootfs's shell runs" "no static busybox (install busybox-static)"
fi

done_testing
