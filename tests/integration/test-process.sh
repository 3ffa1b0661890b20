#!/bin/bash
# Process life: exit statuses, signals, reaping, and the sandbox dying with agentbox.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# ---- exit statuses ----
for n in 0 3 42; do
	box -- "$P" exit "$n"
	expect_rc "exit status $n passes through" "$n"
done
box -- "$P" kill-self 15
expect_rc "a command killed by SIGTERM gives 143" 143
box -- "$P" kill-self 9
expect_rc "a command killed by SIGKILL gives 137" 137

box -- /nonexistent/agentbox-no-such-command
expect_rc "a missing command path gives 127" 127
box -- agentbox-no-such-command-xyz
expect_rc "a command not on PATH gives 127" 127
printf '#!/bin/sh\necho ran\n' >"$WS/not-executable"
chmod 0644 "$WS/not-executable"
box -- "$WS/not-executable"
expect_rc "a non-executable file gives 126" 126
box -- "$WS"
expect_rc "a directory as the command gives 126" 126

# ---- standard streams ----
printf 'line-from-stdin\n' >"$T/stdin.txt"
AB_STDIN=$T/stdin.txt box -- sh -c 'read -r x; echo "got=$x"; echo "to-stderr" >&2'
expect_line "stdin reaches the command and stdout comes back" "got=line-from-stdin"
ok_if "stderr comes back" grep -qx to-stderr <<<"$AB_ERR"

# ---- signals reach the command ----
for sig in TERM INT HUP; do
	num=$(kill -l "$sig")
	ab_bg "$T/sig.out" "$T/sig.err" run -- "$P" wait-signal 20
	if ! wait_for_line "$T/sig.out" '^ready=' 10; then
		fail "SIG$sig sent to agentbox reaches the command" "the probe never got ready" \
			"stdout: $(cat "$T/sig.out")" "stderr: $(cat "$T/sig.err")"
		kill -9 "$AB_BG_PID" 2>/dev/null
		wait "$AB_BG_PID" 2>/dev/null
		continue
	fi
	kill -s "$sig" "$AB_BG_PID"
	wait_pid_timeout "$AB_BG_PID" 10
	if grep -qx "signal=$num" "$T/sig.out" && [ "$WAIT_RC" = 0 ]; then
		pass "SIG$sig sent to agentbox reaches the command"
	else
		fail "SIG$sig sent to agentbox reaches the command" "agentbox exit: $WAIT_RC" \
			"stdout: $(cat "$T/sig.out")" "stderr: $(cat "$T/sig.err")"
	fi
done

# A command that does not catch SIGTERM dies of it, and agentbox reports 143.
ab_bg "$T/term.out" "$T/term.err" run -- "$P" sleep 20
if wait_for_line "$T/term.out" '^pid=' 10; then
	kill -TERM "$AB_BG_PID"
	wait_pid_timeout "$AB_BG_PID" 10
	if [ "$WAIT_RC" = 143 ]; then
		pass "SIGTERM kills an uncaught command: status 143"
	else
		fail "SIGTERM kills an uncaught command: status 143" "agentbox exit: $WAIT_RC" \
			"stderr: $(cat "$T/term.err")"
	fi
else
	fail "SIGTERM kills an uncaught command: status 143" "the probe never started" \
		"stderr: $(cat "$T/term.err")"
	kill -9 "$AB_BG_PID" 2>/dev/null
fi

# ---- PID 1 reaps orphans ----
box -- "$P" spawn-zombies 20
expect_line "20 orphans were made" "spawned=20"
expect_line "the sandbox's init reaps them" "zombies=0"

# ---- the sandbox dies with agentbox, even with kill -9 ----
tag=agentbox-test-kill9-$$-$RANDOM
ab_bg "$T/k9.out" "$T/k9.err" run -- "$P" sleep 30 "$tag"
inner=
for ((i = 0; i < 100; i++)); do
	inner=$(pids_with_arg "$tag" | grep -vx "$AB_BG_PID")
	[ -n "$inner" ] && break
	sleep 0.05
done
if [ -z "$inner" ]; then
	fail "kill -9 of agentbox leaves no sandbox process" "the sandboxed sleep never appeared" \
		"stderr: $(cat "$T/k9.err")"
	kill -9 "$AB_BG_PID" 2>/dev/null
else
	kill -9 "$AB_BG_PID"
	wait "$AB_BG_PID" 2>/dev/null
	left=
	for ((i = 0; i < 40; i++)); do
		left=$(pids_with_arg "$tag")
		[ -z "$left" ] && break
		sleep 0.05
	done
	if [ -z "$left" ]; then
		pass "kill -9 of agentbox leaves no sandbox process"
	else
		fail "kill -9 of agentbox leaves no sandbox process" "still alive after 2 s: $left"
		# shellcheck disable=SC2086 # one pid per word
		kill -9 $left 2>/dev/null
	fi
fi

done_testing
