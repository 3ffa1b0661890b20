#!/bin/bash
# Sandboxes that live on their own: run -d, ps, attach (one writer, many viewers, detach
# and re-attach), logs (also after the end, in asciicast v2), stop, kill, --timeout, rm,
# a supervisor killed with SIGKILL, twenty sandboxes at once, and bad input.
. "$(dirname "$0")/lib.sh"
ab_setup

# ---- run -d, ps, logs -----------------------------------------------------------------
ab run -d --name tick -- sh -c 'for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.3; done; exit 4'
if [ "$AB_RC" = 0 ] && [ "$AB_OUT" = tick ]; then
	pass "run -d prints the sandbox's name and returns"
else
	fail "run -d prints the sandbox's name and returns" "$(last_run)"
fi
ab ps
if grep -qE '^tick +running ' <<<"$AB_OUT"; then
	pass "ps shows the detached sandbox running"
else
	fail "ps shows the detached sandbox running" "$(last_run)"
fi
ab ps --json
ok_if "ps --json names it with its status" grep -q '"status":"running"' <<<"$AB_OUT"
wait_status tick exited 15
ab ps
if ! grep -q '^tick ' <<<"$AB_OUT"; then
	pass "ps leaves out a sandbox that ended; ps --all shows it"
else
	fail "ps leaves out a sandbox that ended; ps --all shows it" "$(last_run)"
fi
ab ps --all
ok_if "ps --all shows its exit status" grep -qE '^tick +exited .* 4$' <<<"$AB_OUT"
ab logs tick
if [ "$(tr -d '\r' <<<"$AB_OUT" | grep -c '^tick-[1-6]$')" = 6 ]; then
	pass "logs after the end show the whole output"
else
	fail "logs after the end show the whole output" "$(last_run)"
fi
cast=$T/run/tick/output.cast
if head -n 1 "$cast" | grep -q '^{"version": 2, "width": [0-9]*, "height": [0-9]*, "timestamp": [0-9]*' &&
	tail -n +2 "$cast" | grep -vqE '^\[[0-9]+\.[0-9]+, "[or]", ".*"\]$'; then
	fail "the recording is asciicast v2" "$(head -n 3 "$cast")"
elif head -n 1 "$cast" | grep -q '"version": 2'; then
	pass "the recording is asciicast v2 (header, then [time, \"o\", data] events)"
else
	fail "the recording is asciicast v2" "$(head -n 3 "$cast")"
fi
if command -v asciinema >/dev/null 2>&1; then
	# asciinema 2 wants a terminal even for cat: script(1) gives it one.
	played=$(script -qec "asciinema cat '$cast'" /dev/null </dev/null 2>&1 | tr -d '\r')
	if [ "$(grep -c '^tick-[1-6]$' <<<"$played")" = 6 ]; then
		pass "asciinema plays the recording back"
	else
		fail "asciinema plays the recording back" "$played"
	fi
else
	skip "asciinema plays the recording back" "asciinema is not installed (scripts/install-deps.sh test installs it)"
fi
ab logs --since 1h tick
ok_if "logs --since keeps recent output" grep -q 'tick-6' <<<"$AB_OUT"

# ---- attach: writer and viewers, detach and return -----------------------------------
ab run -d --name shell -- sh
# Type once the shell shows its prompt, as a person would.
for ((i = 0; i < 100; i++)); do
	"$AB" logs shell 2>/dev/null | grep -q '\$' && break
	sleep 0.05
done
printf 'SECRET_WORD=%s\n' 'blue42' >"$T/in1"
printf '\020\021' >>"$T/in1"
(cd "$WS" && { cat "$T/in1"; sleep 1; printf '\020\021'; } | timeout 10 "$AB" attach shell >"$T/a1" 2>"$T/a1.err")
rc=$?
ab ps
if [ "$rc" = 0 ] && grep -qE '^shell +running ' <<<"$AB_OUT"; then
	pass "detach (Ctrl-p Ctrl-q) leaves the sandbox running"
else
	fail "detach (Ctrl-p Ctrl-q) leaves the sandbox running" "rc $rc" "$(cat "$T/a1.err")"
fi
# Two viewers first, then the writer: all see the same output.
(cd "$WS" && timeout 10 "$AB" attach --read-only shell </dev/null >"$T/v1" 2>&1) &
v1=$!
(cd "$WS" && timeout 10 "$AB" attach --read-only shell </dev/null >"$T/v2" 2>&1) &
v2=$!
sleep 0.5
(cd "$WS" && { printf 'echo "word=$SECRET_WORD"\n'; sleep 1; printf 'exit 6\n'; sleep 1; } |
	timeout 10 "$AB" attach shell >"$T/a2" 2>&1)
rc=$?
wait "$v1"
wait "$v2"
if grep -q 'word=blue42' "$T/a2"; then
	pass "re-attach finds the same session (a variable set before detaching)"
else
	fail "re-attach finds the same session" "$(cat "$T/a2")"
fi
if grep -q 'word=blue42' "$T/v1" && grep -q 'word=blue42' "$T/v2"; then
	pass "two viewers see the same output"
else
	fail "two viewers see the same output" "v1: $(cat "$T/v1")" "v2: $(cat "$T/v2")"
fi
if [ "$rc" = 6 ]; then
	pass "attach returns the sandbox's exit status when it ends"
else
	fail "attach returns the sandbox's exit status when it ends" "rc $rc"
fi

# ---- another user cannot reach a sandbox's terminal ---------------------------------------
if [ "$HOST_UID" = 0 ] && id agentbox-test >/dev/null 2>&1; then
	ab run -d --name private -- sleep 60
	sock=$T/run/private/attach.sock
	for ((i = 0; i < 100; i++)); do [ -S "$sock" ] && break; sleep 0.05; done
	chmod 0755 "$T/run" "$T/run/private" # even with the directories opened up
	other=$(setpriv --reuid=agentbox-test --regid=agentbox-test --clear-groups "$P" connect-unix "$sock" 2>&1)
	chmod 0700 "$T/run" "$T/run/private"
	if [ -S "$sock" ] && ! grep -q '=OK' <<<"$other"; then
		pass "another user cannot connect to a sandbox's attach socket ($other)"
	else
		fail "another user cannot connect to a sandbox's attach socket" "$other"
	fi
	ab rm --force private
fi

# ---- exec: the same sandbox, never more than it has -------------------------------------
ab run -d --name host -- sh -c 'echo made-inside >/tmp/marker; exec sleep 300'
for ((i = 0; i < 100; i++)); do
	"$AB" exec host -- test -e /tmp/marker 2>/dev/null && break
	sleep 0.05
done
ab exec host -- cat /tmp/marker
if [ "$AB_OUT" = made-inside ] && [ ! -e /tmp/marker -o "$(cat /tmp/marker 2>/dev/null)" != made-inside ]; then
	pass "exec runs in the same sandbox (sees its /tmp, which the host does not)"
else
	fail "exec runs in the same sandbox" "$(last_run)"
fi
ab exec host -- "$P" status
if out_has CapEff=0000000000000000 && out_has CapBnd=0000000000000000 && out_has CapPrm=0000000000000000 &&
	out_has NoNewPrivs=1 && out_has Seccomp=2 && out_has "uid=$SANDBOX_UID"; then
	pass "exec gets no capabilities, no_new_privs, seccomp and the sandbox's user"
else
	fail "exec gets no capabilities, no_new_privs, seccomp and the sandbox's user" "$(last_run)"
fi
for attack in unshare-user mount ptrace-attach-1 setns; do
	ab exec host -- "$P" try "$attack"
	if out_has "$attack=EPERM"; then
		pass "exec cannot escape the seccomp filter: $attack is refused"
	else
		fail "exec cannot escape the seccomp filter: $attack" "$(last_run)"
	fi
done
ab exec host -- "$P" write /usr/planted
if ! out_has "write=OK" && [ ! -e /usr/planted ]; then
	pass "exec cannot write outside what the sandbox may ($(out_value write))"
else
	fail "exec cannot write outside what the sandbox may" "$(last_run)"
fi
ab exec host -- sh -c 'exit 7'
expect_rc "exec returns the command's exit status" 7
ab exec host -- no-such-command
if [ "$AB_RC" = 127 ] && err_has_re "'no-such-command'"; then
	pass "exec of a missing command: 127, and the message names it"
else
	fail "exec of a missing command: 127" "$(last_run)"
fi
ab rm --force host

# ---- stop, kill, timeout ----------------------------------------------------------------
ab run -d --name stopme -- sleep 300
start=$SECONDS
ab stop -t 3 stopme
if [ "$AB_RC" = 0 ] && [ "$(field stopme reason)" = stopped ] && [ $((SECONDS - start)) -lt 8 ]; then
	pass "stop ends a sandbox and records why"
else
	fail "stop ends a sandbox and records why" "reason $(field stopme reason)" "$(last_run)"
fi
ab run -d --name killme -- sleep 300
ab kill killme
if [ "$(field killme reason)" = killed ] && [ "$(field killme exit_code)" = 137 ]; then
	pass "kill ends a sandbox with SIGKILL and records it"
else
	fail "kill ends a sandbox with SIGKILL and records it" "$(field killme reason)" "$(field killme exit_code)"
fi
start=$SECONDS
ab run -d --name slow --timeout 2s -- sleep 60
wait_status slow exited 20
if [ "$(field slow reason)" = timeout ] && [ $((SECONDS - start)) -lt 15 ]; then
	pass "--timeout 2s stops a detached 'sleep 60' and records why"
else
	fail "--timeout 2s stops a detached 'sleep 60'" "reason $(field slow reason)"
fi
start=$SECONDS
box --workspace-mode rw --timeout 2s -- sleep 60
if [ "$AB_RC" = 143 ] && [ $((SECONDS - start)) -lt 15 ] && err_has_re 'timeout'; then
	pass "--timeout 2s stops a foreground 'sleep 60' and says so"
else
	fail "--timeout 2s stops a foreground 'sleep 60'" "$(last_run)"
fi

# ---- the supervisor killed: nothing left behind once removed ---------------------------
ab run -d --name victim --pids-limit 100 -- sleep 7777
sup=$(field victim supervisor_pid)
init=$(field victim init_pid)
kill -9 "$sup"
for ((i = 0; i < 100; i++)); do
	[ -z "$(pids_with_arg 7777)" ] && break
	sleep 0.05
done
# alive PID: a process that is there and not a zombie (an unreaped zombie holds nothing).
alive() {
	local stat
	IFS= read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}
for ((i = 0; i < 100; i++)); do
	alive "$init" || break
	sleep 0.05
done
if [ -z "$(pids_with_arg 7777)" ] && ! alive "$init"; then
	pass "kill -9 of the supervisor takes the sandbox with it (no orphans)"
else
	fail "kill -9 of the supervisor takes the sandbox with it" "left: $(pids_with_arg 7777)"
fi
ab ps --all
if grep -qE '^victim +dead \(lost\)' <<<"$AB_OUT"; then
	pass "ps shows it dead, with the reason"
else
	fail "ps shows it dead, with the reason" "$(last_run)"
fi
cgdirs=$("$AB" inspect victim | grep -oE '"/sys/fs/cgroup[^"]*"' | tr -d '"')
ab rm victim
leftover=""
[ -e "$T/run/victim" ] && leftover+=" state"
for d in $cgdirs; do [ -e "$d" ] && leftover+=" $d"; done
grep -q "$T" /proc/self/mountinfo && leftover+=" mount"
if [ "$AB_RC" = 0 ] && [ -z "$leftover" ]; then
	pass "rm leaves no state, cgroup or mount behind${cgdirs:+ (cgroup: $cgdirs)}"
else
	fail "rm leaves no state, cgroup or mount behind" "left:$leftover" "$(last_run)"
fi

# ---- twenty at once ----------------------------------------------------------------------
# Each waits for a file the test creates once it has counted them running (the workspace is
# bound read-only, so they see it appear): a slow machine cannot make them end too early.
rm -f "$WS/many-go"
pids=()
for i in $(seq 1 20); do
	(cd "$WS" && "$AB" run -d -q --workspace-mode ro --timeout 120s --name "many-$i" -- \
		sh -c 'while [ ! -e many-go ]; do sleep 0.1; done; echo done' >"$T/many-$i.out" 2>&1) &
	pids+=($!)
done
bad=0
for p in "${pids[@]}"; do wait "$p" || bad=$((bad + 1)); done
running=$("$AB" ps | grep -cE '^many-[0-9]+ +running')
touch "$WS/many-go"
for i in $(seq 1 20); do wait_status "many-$i" exited 20 || bad=$((bad + 1)); done
rm -f "$WS/many-go"
exits=$("$AB" ps --all | grep -cE '^many-[0-9]+ +exited .* 0$')
for i in $(seq 1 20); do "$AB" rm "many-$i" >/dev/null 2>&1 || bad=$((bad + 1)); done
left=$(ls "$T/run" | grep -c '^many-')
if [ "$bad" = 0 ] && [ "$running" = 20 ] && [ "$exits" = 20 ] && [ "$left" = 0 ]; then
	pass "20 sandboxes started in parallel all run, end and clean up"
else
	fail "20 sandboxes started in parallel" "failures $bad, running $running, exited 0: $exits, left $left"
fi

# ---- bad input -----------------------------------------------------------------------------
ab attach nosuch
expect_bad_input "attach to an unknown sandbox" nosuch
ab attach tick
expect_bad_input "attach to a sandbox that ended" tick
ab logs nosuch
expect_bad_input "logs of an unknown sandbox" nosuch
ab stop tick
expect_bad_input "stop of a sandbox that ended" tick
ab exec tick -- true
expect_bad_input "exec into a sandbox that ended" tick
box --memory 1k -- true
expect_bad_input "--memory below what a sandbox needs" 1k
box --pids-limit 2 -- true
expect_bad_input "--pids-limit below what a sandbox needs" 2
box --cpus 0.5x -- true
expect_bad_input "--cpus that is not a number" 0.5x
box --timeout soon -- true
expect_bad_input "--timeout that is not a duration" soon
box --name ../x -- true
expect_bad_input "a name with a path in it" '\.\./x'
box --memory-swap 1g -- true
if [ "$AB_RC" = 125 ] && err_has_re 'memory-swap needs --memory'; then
	pass "--memory-swap without --memory is refused"
else
	fail "--memory-swap without --memory is refused" "$(last_run)"
fi
box -d --explain -- true
if [ "$AB_RC" = 125 ] && err_has_re 'detach'; then
	pass "conflicting flags (-d with --explain) are refused"
else
	fail "conflicting flags (-d with --explain) are refused" "$(last_run)"
fi
# A state directory others may write (a planted /tmp/agentbox-UID, say) is never used.
mkdir -m 0777 "$T/open-run" && chmod 0777 "$T/open-run"
AGENTBOX_RUN_DIR=$T/open-run ab ps
expect_bad_input "a state directory that is not private is refused" "$T/open-run"
ab run -d --name dup -- sleep 30
ab run -d --name dup -- sleep 30
expect_bad_input "a second sandbox with a running one's name" dup
ab rm dup
expect_bad_input "rm of a running sandbox without --force" dup
ab rm --force dup
expect_rc "rm --force removes a running sandbox" 0

done_testing
