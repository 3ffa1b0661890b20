#!/bin/bash
# The sandbox's view of files: what is hidden, what is read-only, what is writable, and
# who owns what the command writes.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# ---- secrets in homes ----
# A fake home with a planted key, named by HOME: the sandbox must neither show it nor use
# it as the sandbox user's home.
mkdir -p "$T/fakehome/.ssh"
echo "PLANTED-SECRET" >"$T/fakehome/.ssh/id_rsa"
chmod 0600 "$T/fakehome/.ssh/id_rsa"
HOME=$T/fakehome box -- "$P" env HOME
inner_home=$(out_value HOME)
if [ -n "$inner_home" ] && [ "$inner_home" != "$T/fakehome" ]; then
	pass "HOME inside is not the caller's HOME ($inner_home)"
else
	fail "HOME inside is not the caller's HOME" "$(last_run)"
fi
HOME=$T/fakehome box -- "$P" read "$T/fakehome/.ssh/id_rsa"
expect_value_not_in "the caller's planted key is not readable" read OK
if [ -n "$inner_home" ]; then
	HOME=$T/fakehome box -- "$P" ls "$inner_home"
	expect_line "the sandbox home exists" "ls=OK"
	expect_line "the sandbox home starts empty" "count=0"
fi

# The caller's real home (and root's) shows nothing, except the path down to the
# workspace when the workspace lives inside it.
real_home=$(getent passwd "$(id -u)" | cut -d: -f6)
homes=(/root)
[ -n "$real_home" ] && [ "$real_home" != /root ] && homes+=("$real_home")
for h in "${homes[@]}"; do
	box -- "$P" ls "$h"
	allowed=
	case "$WS/" in
	"$h"/*)
		first=${WS#"$h"/}
		allowed=${first%%/*}
		;;
	esac
	entries=$(sed -n 's/^entry=//p' <<<"$AB_OUT")
	if ! out_has "ls=OK" || [ -z "$entries" ] || [ "$entries" = "$allowed" ]; then
		pass "the host home '$h' is not visible"
	else
		fail "the host home '$h' is not visible" "$(last_run)"
	fi
done
# As root, plant a key in root's real home when none is there (and take it away after),
# so that the check below always has something to find.
planted_root_key=
if [ "$(id -u)" -eq 0 ] && [ ! -e /root/.ssh/id_rsa ]; then
	[ -d /root/.ssh ] || { mkdir -m 700 /root/.ssh && planted_root_dir=1; }
	echo "PLANTED-ROOT-SECRET" >/root/.ssh/id_rsa && chmod 600 /root/.ssh/id_rsa && planted_root_key=1
fi
box -- "$P" read /root/.ssh/id_rsa
expect_value_not_in "/root/.ssh/id_rsa is not readable" read OK
expect_no_line "the planted root key's text is nowhere in the output" "PLANTED-ROOT-SECRET"
if [ -n "$planted_root_key" ]; then
	rm -f /root/.ssh/id_rsa
	[ -n "${planted_root_dir:-}" ] && rmdir /root/.ssh
fi

# ---- masked host files ----
for f in /etc/shadow /etc/gshadow /etc/sudoers /etc/ssh/ssh_host_*key; do
	[ -e "$f" ] || continue
	box -- "$P" read "$f"
	if ! out_has "read=OK" || out_has "bytes=0"; then
		pass "$f is unreadable or empty"
	else
		fail "$f is unreadable or empty" "$(last_run)"
	fi
done
if [ -r /proc/timer_list ]; then
	box -- "$P" read /proc/timer_list
	if ! out_has "read=OK" || out_has "bytes=0"; then
		pass "/proc/timer_list is masked"
	else
		fail "/proc/timer_list is masked" "$(last_run)"
	fi
fi
box -- "$P" read /proc/self/status
expect_line "/proc is mounted" "read=OK"

# ---- read-only system directories ----
for d in /usr /etc; do
	name=$d/agentbox-probe-$$
	box -- "$P" write "$name"
	expect_value_not_in "writing $d fails" write OK
	if [ -e "$name" ]; then
		fail "writing $d left no file on the host"
		[ "$(id -u)" = 0 ] && rm -f "$name"
	else
		pass "writing $d left no file on the host"
	fi
done
box -- "$P" write /agentbox-probe-root
expect_value_not_in "writing the sandbox's / fails" write OK
box -- "$P" read /usr/bin/env
expect_line "/usr is readable" "read=OK"

# ---- /dev ----
box -- "$P" ls /dev
for d in null zero full random urandom tty; do
	expect_line "/dev/$d exists" "entry=$d"
done
for d in mem kmem port kmsg sda vda nvme0; do
	expect_no_line "/dev/$d is absent" "entry=$d"
done
box -- "$P" write /dev/null
expect_line "/dev/null is writable" "write=OK"
box -- cat /proc/self/mountinfo
ok_if "/sys is mounted read-only" grep -qE '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ /sys ro[, ]' <<<"$AB_OUT"
ok_if "/proc/sys is mounted read-only" \
	grep -qE '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ /proc/sys ro[, ]' <<<"$AB_OUT"

# ---- /tmp ----
host_marker=$(mktemp /tmp/abtest-host-marker.XXXXXX)
box -- "$P" write /tmp/agentbox-probe
expect_line "/tmp is writable" "write=OK"
box -- "$P" read "$host_marker"
expect_value_not_in "/tmp is not the host's /tmp" read OK
rm -f "$host_marker"

# ---- the workspace ----
# --workspace-mode rw: writes go straight to the project (cow, the default, is tested in
# test-workspace.sh).
box --workspace-mode rw -- "$P" write "$WS/out.txt"
expect_line "the workspace is writable" "write=OK"
if [ -f "$WS/out.txt" ] && [ "$(stat -c %u "$WS/out.txt")" = "$HOST_UID" ] &&
	[ "$(cat "$WS/out.txt")" = agentbox-probe ]; then
	pass "a file written in the workspace belongs to the caller (uid $HOST_UID)"
else
	fail "a file written in the workspace belongs to the caller" \
		"$(stat -c '%u:%g %n' "$WS/out.txt" 2>&1)"
fi
if [ -f "$WS/out.txt" ] && [ "$(stat -c %g "$WS/out.txt")" = "$HOST_GID" ]; then
	pass "a file written in the workspace has the caller's group (gid $HOST_GID)"
else
	fail "a file written in the workspace has the caller's group" \
		"$(stat -c '%u:%g %n' "$WS/out.txt" 2>&1)"
fi
box --workspace-mode rw --user root -- "$P" write "$WS/out-root.txt"
expect_line "--user root writes the workspace" "write=OK"
if [ -f "$WS/out-root.txt" ] && [ "$(stat -c %u "$WS/out-root.txt")" = "$HOST_UID" ]; then
	pass "--user root's files belong to the caller on the host"
else
	fail "--user root's files belong to the caller on the host" \
		"$(stat -c '%u:%g %n' "$WS/out-root.txt" 2>&1)"
fi
box -- "$P" ls "$WS"
expect_line "the workspace shows its files" "entry=probe"

box --workspace-mode ro -- "$P" write "$WS/ro.txt"
expect_value_not_in "--workspace-mode ro refuses writes" write OK
ok_if "--workspace-mode ro left no file" test ! -e "$WS/ro.txt"
box --workspace-mode ro -- "$P" read "$WS/out.txt"
expect_line "--workspace-mode ro still reads" "read=OK"

ws2=$T/other-ws
mkdir "$ws2"
cp "$P" "$ws2/probe"
box --workspace-mode rw --workspace "$ws2" -- "$ws2/probe" write "$ws2/from-flag.txt"
expect_line "--workspace PATH is writable" "write=OK"
ok_if "--workspace PATH writes land on the host" test -f "$ws2/from-flag.txt"
box --workspace "$ws2" -- "$ws2/probe" ls "$WS"
expect_value_not_in "--workspace PATH does not expose the current directory" ls OK

# ---- extra binds ----
mkdir -p "$T/data"
echo "bound-content" >"$T/data/file"
box -v "$T/data:/data:ro" -- "$P" read /data/file
expect_line "-v HOST:DEST:ro shows the host file" "head=bound-content"
box -v "$T/data:/data:ro" -- "$P" write /data/new
expect_value_not_in "-v HOST:DEST:ro is read-only" write OK
ok_if "-v HOST:DEST:ro left no file" test ! -e "$T/data/new"
box -v "$T/data:/data" -- "$P" write /data/new-rw
expect_line "-v HOST:DEST is writable" "write=OK"
ok_if "-v HOST:DEST writes land on the host" test -f "$T/data/new-rw"

# A symlink planted in the workspace (by an earlier run, say) must not steer a mount
# point out of it: agentbox may refuse, but must create nothing where the link points.
mkdir "$T/outside"
ln -s "$T/outside" "$WS/planted-link"
box -v "$T/data:$WS/planted-link/newdir" -- "$P" exit 0
ok_if "-v through a workspace symlink creates nothing outside" \
	test -z "$(ls -A "$T/outside")"
box --tmpfs "$WS/planted-link/tdir" -- "$P" exit 0
ok_if "--tmpfs through a workspace symlink creates nothing outside" \
	test -z "$(ls -A "$T/outside")"
ln -s "$T/outside/newfile" "$WS/planted-file-link"
box -v "$T/data/file:$WS/planted-file-link" -- "$P" exit 0
ok_if "-v onto a dangling workspace symlink creates nothing outside" \
	test -z "$(ls -A "$T/outside")"
rm -f "$WS/planted-link" "$WS/planted-file-link"

# ---- sized tmpfs ----
box --tmpfs /scratch:size=1m -- "$P" write /scratch/small 100000
expect_line "--tmpfs PATH:size=1m takes 100 kB" "write=OK"
box --tmpfs /scratch:size=1m -- "$P" write /scratch/big 2097152
expect_line "--tmpfs PATH:size=1m refuses 2 MB with ENOSPC" "write=ENOSPC"
box --tmpfs /scratch -- "$P" write /scratch/big 2097152
expect_line "--tmpfs PATH without a size takes 2 MB" "write=OK"

done_testing
