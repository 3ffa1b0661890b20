#!/bin/bash
# Who the command is inside the sandbox: its user, its capabilities, no-new-privileges,
# the seccomp mode, the hostname, the processes it can see, and its environment.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# ---- user and privileges ----
box -- "$P" status
expect_rc "probe status runs in the sandbox" 0
expect_line "uid is $SANDBOX_UID" "uid=$SANDBOX_UID"
expect_line "euid is $SANDBOX_UID" "euid=$SANDBOX_UID"
expect_line "gid is $SANDBOX_GID" "gid=$SANDBOX_GID"
expect_no_line "uid is not 0" "uid=0"
for cap in CapEff CapPrm CapBnd CapAmb CapInh; do
	expect_line "$cap is empty" "$cap=0000000000000000"
done
expect_line "no_new_privs is set" "NoNewPrivs=1"
expect_line "a seccomp filter is installed" "Seccomp=2"

box --user root -- "$P" status
expect_rc "--user root runs" 0
expect_line "--user root is uid 0 inside" "uid=0"
expect_line "--user root has no effective capability" "CapEff=0000000000000000"
expect_line "--user root has no bounding capability" "CapBnd=0000000000000000"
expect_line "--user root still has no_new_privs" "NoNewPrivs=1"

box -- id -u
expect_rc "id runs" 0
ok_if "id -u agrees with the probe" grep -qx "$SANDBOX_UID" <<<"$AB_OUT"

# ---- hostname ----
box -- "$P" hostname
expect_line "hostname is agentbox" "hostname=agentbox"
box --name probe-box -- "$P" hostname
expect_line "--name sets the hostname" "hostname=probe-box"

# ---- processes ----
box -- "$P" pids
expect_rc "probe pids runs" 0
count=$(out_value count)
if [ -n "$count" ] && [ "$count" -le 3 ]; then
	pass "only the sandbox's processes are visible ($count)"
else
	fail "only the sandbox's processes are visible" "$(last_run)"
fi
expect_line "the probe is PID 2, under the sandbox's init" "self=2"
host_pid1=$(cat /proc/1/comm)
pid1=$(out_value pid1_comm)
if [ -n "$pid1" ] && [ "$pid1" != "$host_pid1" ] && [[ "$pid1" == agentbox* ]]; then
	pass "PID 1 is agentbox's init ($pid1)"
else
	fail "PID 1 is agentbox's init" "host PID 1 is '$host_pid1'" "$(last_run)"
fi
if out_has "pid=$$" && [ "$$" -gt 3 ]; then
	fail "the test shell's pid is not visible" "$(last_run)"
else
	pass "the test shell's pid is not visible"
fi

# The init holds the caller's whole environment: the command must not read it, nor
# take control of the init.
export FOO_TOKEN=s3cret-token
box -- "$P" read /proc/1/environ
if ! out_has "read=OK" || out_has "bytes=0"; then
	pass "the init's environment is not readable"
else
	fail "the init's environment is not readable" "$(last_run)"
fi
box -- "$P" try ptrace-attach-1
expect_value_not_in "the command cannot ptrace the init" ptrace-attach-1 OK

# ---- System V IPC ----
if command -v ipcmk >/dev/null && shmid=$(ipcmk -M 4096 2>/dev/null | grep -o '[0-9]*$') &&
	[ -n "$shmid" ]; then
	box -- cat /proc/sysvipc/shm
	ipcrm -m "$shmid"
	# A header line, and no segment.
	if [ "$AB_RC" = 0 ] && [ "$(grep -c . <<<"$AB_OUT")" = 1 ]; then
		pass "the host's System V shared memory is not visible"
	else
		fail "the host's System V shared memory is not visible" "$(last_run)"
	fi
else
	skip "the host's System V shared memory is not visible" "ipcmk (util-linux) failed"
fi

# ---- environment ----
export FOO_TOKEN=s3cret-token AWS_SECRET_KEY=s3cret-aws LANG=C.UTF-8 TERM=xterm-test
box -- "$P" env FOO_TOKEN AWS_SECRET_KEY HOME LANG TERM PATH USER
expect_line "FOO_TOKEN is not passed by default" "unset=FOO_TOKEN"
expect_line "AWS_SECRET_KEY is not passed by default" "unset=AWS_SECRET_KEY"
expect_line "LANG is on the safe list" "LANG=C.UTF-8"
expect_line "TERM is on the safe list" "TERM=xterm-test"
expect_value_not_in "PATH is set" PATH ""
home_in=$(out_value HOME)
if [ -n "$home_in" ] && [ "$home_in" != "$HOME" ] && [ "$home_in" != /root ]; then
	pass "HOME is the sandbox's home ($home_in), not the caller's"
else
	fail "HOME is the sandbox's home, not the caller's" "caller HOME=$HOME" "$(last_run)"
fi

# More of the safe list, and what must never pass: loader variables, agent sockets,
# tokens.
LC_ALL=C.UTF-8 TZ=UTC COLORTERM=truecolor LD_PRELOAD=/nonexistent/preload-probe.so LD_LIBRARY_PATH=/nonexistent \
	SSH_AUTH_SOCK=$T/agent.sock GITHUB_TOKEN=ghp_fake \
	box -- "$P" env LC_ALL TZ COLORTERM LD_PRELOAD LD_LIBRARY_PATH SSH_AUTH_SOCK GITHUB_TOKEN
for v in LC_ALL=C.UTF-8 TZ=UTC COLORTERM=truecolor; do
	expect_line "${v%%=*} is on the safe list" "$v"
done
for v in LD_PRELOAD LD_LIBRARY_PATH SSH_AUTH_SOCK GITHUB_TOKEN; do
	expect_line "$v is not passed" "unset=$v"
done

box -e FOO_TOKEN -e BAR=baz -e 'WITH_EQ=a=b' -- "$P" env FOO_TOKEN BAR WITH_EQ AWS_SECRET_KEY
expect_line "-e NAME passes the caller's value" "FOO_TOKEN=s3cret-token"
expect_line "-e NAME=VALUE sets a value" "BAR=baz"
expect_line "-e NAME=VALUE keeps '=' in the value" "WITH_EQ=a=b"
expect_line "-e passes only what it names" "unset=AWS_SECRET_KEY"

printf '# a comment\n\nFROM_FILE=one\nSPACED=two words\n' >"$T/env-file"
box --env-file "$T/env-file" -- "$P" env FROM_FILE SPACED FOO_TOKEN
expect_rc "--env-file runs" 0
expect_line "--env-file sets a variable" "FROM_FILE=one"
expect_line "--env-file keeps spaces in a value" "SPACED=two words"
expect_line "--env-file passes nothing else" "unset=FOO_TOKEN"

# ---- the enforcement report ----
box --explain -- "$P" write "$WS/explain-ran"
expect_rc "--explain exits 0" 0
report="$AB_OUT$AB_ERR"
missing=
for word in seccomp landlock user; do
	grep -qi "$word" <<<"$report" || missing="$missing $word"
done
if [ -z "$missing" ]; then
	pass "--explain reports the layers"
else
	fail "--explain reports the layers" "missing:$missing" "$(last_run)"
fi
ok_if "--explain does not run the command" test ! -e "$WS/explain-ran"

box --require landlock --require seccomp --require userns -- "$P" exit 0
expect_rc "--require of layers this kernel has runs" 0

done_testing
