#!/bin/bash
# Resource limits, tried for real: a fork bomb against --pids-limit, a memory hog against
# --memory, a CPU hog under --cpus 0.5, a disk filler against --disk-limit. Root gets
# cgroups here; an unprivileged user without a delegated cgroup gets rlimits, and the
# run says so.
. "$(dirname "$0")/lib.sh"
ab_setup

ab run -d --name probe-mode --memory 64m -- sleep 30
mode=$("$AB" inspect probe-mode | sed -n 's/^    "mode":"\([a-z0-9]*\)".*/\1/p' | head -n 1)
ab rm --force probe-mode
diag "limits are enforced here through: ${mode:-unknown}"
cgroup=false
case "$mode" in cgroup1 | cgroup2) cgroup=true ;; esac
if [ "$HOST_UID" = 0 ] && ! $cgroup; then
	fail "root gets a cgroup for its limits" "mode: $mode"
fi

# ---- fork bomb ----------------------------------------------------------------------------
ab run -d --name bomb --pids-limit 64 --timeout 6s -- sh -c 'b() { b | b & }; b; sleep 30'
sleep 1.5
start=$(date +%s%N)
sh -c 'true'
elapsed=$((($(date +%s%N) - start) / 1000000))
count=$(field bomb pids)
if [ "$elapsed" -lt 2000 ]; then
	pass "the host stays responsive during a fork bomb (a command took ${elapsed} ms)"
else
	fail "the host stays responsive during a fork bomb" "a command took ${elapsed} ms"
fi
if [ "${count:-0}" -gt 0 ] && [ "$count" -le 70 ]; then
	pass "the fork bomb stops at the pids limit ($count processes, limit 64)"
else
	fail "the fork bomb stops at the pids limit" "$count processes"
fi
wait_status bomb exited 30
if [ -z "$(pids_with_arg 'b | b &')" ] && [ "$(field bomb status)" = exited ]; then
	pass "the fork bomb's sandbox ends at its timeout with nothing left"
else
	fail "the fork bomb's sandbox ends at its timeout" "$(field bomb status)"
fi
ab rm bomb

# ---- memory hog ----------------------------------------------------------------------------
# dd allocates its block size at once: 300 MiB against a 64 MiB limit.
box --workspace-mode rw --memory 64m -- dd if=/dev/zero of=/dev/null bs=300M count=1
if $cgroup; then
	if [ "$AB_RC" = 137 ] && err_has_re 'out of memory'; then
		pass "a memory hog is OOM-killed and reported as out of memory"
	else
		fail "a memory hog is OOM-killed and reported as out of memory" "$(last_run)"
	fi
	ab run -d --name hog --memory 64m -- dd if=/dev/zero of=/dev/null bs=300M count=1
	wait_status hog exited 10
	if [ "$(field hog reason)" = oom ]; then
		pass "ps and inspect record the out-of-memory kill"
	else
		fail "ps and inspect record the out-of-memory kill" "reason $(field hog reason)"
	fi
	ab rm hog
else
	if [ "$AB_RC" != 0 ]; then
		pass "a memory hog fails under the rlimit fallback (exit $AB_RC)"
	else
		fail "a memory hog fails under the rlimit fallback" "$(last_run)"
	fi
fi

# ---- CPU hog under --cpus 0.5 ----------------------------------------------------------------
if $cgroup; then
	ab run -d --name spin --cpus 0.5 -- sh -c 'while :; do :; done'
	sleep 0.5
	c0=$("$AB" stats --json spin | sed -n 's/.*"cpu_seconds":\([0-9.]*\).*/\1/p')
	t0=$(date +%s%N)
	sleep 3
	c1=$("$AB" stats --json spin | sed -n 's/.*"cpu_seconds":\([0-9.]*\).*/\1/p')
	t1=$(date +%s%N)
	ab rm --force spin
	share=$(awk -v a="$c0" -v b="$c1" -v t="$(((t1 - t0) / 1000000))" 'BEGIN { printf "%.2f", (b - a) * 1000 / t }')
	if awk -v s="$share" 'BEGIN { exit !(s >= 0.35 && s <= 0.65) }'; then
		pass "a CPU hog under --cpus 0.5 gets about half a core ($share)"
	else
		fail "a CPU hog under --cpus 0.5 gets about half a core" "measured $share of a core"
	fi
else
	skip "a CPU hog under --cpus 0.5" "no cgroup for this user here (rlimits cannot share a CPU)"
fi

# ---- disk ----------------------------------------------------------------------------------------
free_before=$(df -B1 --output=avail "$T" | tail -n 1)
ab run -d --name filler --disk-limit 20m -- sh -c 'dd if=/dev/zero of=/tmp/fill bs=1M count=100; echo "dd=$?"; sleep 30'
for ((i = 0; i < 100; i++)); do
	"$AB" logs filler 2>/dev/null | grep -q 'dd=' && break
	sleep 0.1
done
free_during=$(df -B1 --output=avail "$T" | tail -n 1)
ab logs filler
if grep -q 'No space left on device' <<<"$AB_OUT" && grep -q 'dd=1' <<<"$AB_OUT"; then
	pass "writing past --disk-limit fails with ENOSPC inside"
else
	fail "writing past --disk-limit fails with ENOSPC inside" "$(last_run)"
fi
diff=$((free_before - free_during))
# dd tries 100 MiB: on the host's disk they would all be there. Half of that is the line, so
# that other work on the machine writing meanwhile does not decide the test.
if [ "${diff#-}" -lt $((50 * 1024 * 1024)) ]; then
	pass "the host's free space is unchanged while the sandbox fills its disk (delta $diff bytes)"
else
	fail "the host's free space is unchanged while the sandbox fills its disk" "delta $diff bytes"
fi
ab rm --force filler
box --workspace-mode rw --disk-limit 20m -- true
expect_bad_input "--disk-limit with a rw workspace is refused" "$WS"
# The copy-on-write workspace's changes count against --disk-limit too, and those made
# within it are kept for the next run; the project is untouched.
box --name diskws --disk-limit 20m -- sh -c "echo kept > '$WS/diskws.txt'; \
	dd if=/dev/zero of='$WS/diskws.big' bs=1M count=60 2>&1; echo dd=\$?"
if grep -q 'No space left on device' <<<"$AB_OUT" && out_has "dd=1"; then
	pass "writing past --disk-limit in the workspace fails with ENOSPC inside"
else
	fail "writing past --disk-limit in the workspace fails with ENOSPC inside" "$(last_run)"
fi
box --name diskws -- cat "$WS/diskws.txt"
expect_line "... and the changes made within the limit are kept for the next run" "kept"
ok_if "... and the project itself is untouched" test ! -e "$WS/diskws.txt"

done_testing
