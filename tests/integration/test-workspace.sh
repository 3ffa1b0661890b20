#!/bin/bash
# The workspace as a transaction: the project stays as it was until `apply`; diff, apply,
# snapshots, rollback and masks, tried for real against the kernel's overlayfs.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# A project with a bit of everything.
mkdir -p "$WS/src/lib" "$WS/docs" "$WS/old"
printf 'int main(void) { return 0; }\n' >"$WS/src/main.c"
printf 'line 1\nline 2\nline 3\n' >"$WS/src/lib/util.c"
printf 'keep me\n' >"$WS/docs/readme.txt"
printf 'a\n' >"$WS/old/a" && printf 'b\n' >"$WS/old/b"
printf 'rename me\n' >"$WS/before.txt"
printf 'mode\n' >"$WS/mode.sh"
printf 'SECRET_TOKEN=do-not-leak\n' >"$WS/.env"
printf -- '-----BEGIN PRIVATE KEY-----\n' >"$WS/src/server.pem"
digest_before=$(tree_digest "$WS")

# ---- the project is untouched by a run that destroys everything ----
box --name wreck -- sh -c 'rm -rf ./* ./.[!.]* 2>/dev/null; ls -A | wc -l'
expect_rc "a run that deletes the whole workspace succeeds" 0
if [ "$(tree_digest "$WS")" = "$digest_before" ]; then
	pass "the real project is byte-for-byte unchanged after rm -rf of the workspace"
else
	fail "the real project is byte-for-byte unchanged after rm -rf of the workspace" "$(last_run)"
fi
box --name wreck -- sh -c 'ls -A | tr "\n" " "'
# What stays: the masked .env and src/server.pem, which the sandbox cannot remove.
expect_line "the next run continues on the same copy (only the masked files remain)" ".env src "
ab discard wreck
expect_rc "discard succeeds" 0
box --name wreck -- "$P" read "$WS/docs/readme.txt"
expect_line "after discard the sandbox sees the project again" "read=OK"

# ---- masks ----
box --name masked -- "$P" read "$WS/.env"
expect_no_line "a masked .env shows none of its content" "content=SECRET_TOKEN=do-not-leak"
box --name masked -- sh -c "cat '$WS/.env' '$WS/src/server.pem'; echo end"
if ! grep -q "do-not-leak\|PRIVATE KEY" <<<"$AB_OUT"; then
	pass "masked files (.env, *.pem) read empty inside"
else
	fail "masked files (.env, *.pem) read empty inside" "$(last_run)"
fi
box --name masked --unmask .env -- sh -c "cat '$WS/.env'"
expect_line "--unmask .env shows it" "SECRET_TOKEN=do-not-leak"
box --name masked --mask 'readme.txt' -- sh -c "cat '$WS/docs/readme.txt'; echo end"
expect_no_line "--mask hides a file by name" "keep me"

# ---- diff lists exactly the changes made ----
box --name d -- sh -c '
	set -e
	cd "$1"
	echo added > added.txt
	: > empty.txt
	echo changed >> src/main.c
	rm docs/readme.txt
	rm -r old
	mv before.txt after.txt
	chmod 755 mode.sh
	ln -s src/main.c link-to-main
	ln after.txt hardlink.txt
	printf "\000\001\002binary" > blob.bin
	echo spaced > "with space.txt"
	echo newline > "$(printf "new\nline.txt")"
' sh "$WS"
expect_rc "the editing run succeeds" 0
ab diff d --json
expect_rc "diff --json succeeds" 0
json=$AB_OUT
# check_change PATH KIND: the pretty-printed JSON has "path":"PATH" followed by
# "change":"KIND" (paths as JSON writes them: '/' may be escaped as '\/').
check_change() {
	if sed 's#\\/#/#g; s/^[[:space:]]*//' <<<"$json" |
		awk -v w="\"path\":\"$1\"," -v k="\"change\":\"$2\"" 'prev == w && index($0, k) == 1 {f = 1} {prev = $0} END {exit !f}'; then
		pass "diff: $1 is $2"
	else
		fail "diff: $1 is $2" "$json"
	fi
}
check_change "added.txt" added
check_change "empty.txt" added
check_change "src/main.c" modified
check_change "docs/readme.txt" deleted
check_change "old" deleted
check_change "old/a" deleted
check_change "before.txt" deleted
check_change "after.txt" added
check_change "mode.sh" meta
check_change "link-to-main" added
check_change "hardlink.txt" added
check_change "blob.bin" added
check_change "with space.txt" added
check_change 'new\\nline.txt' added
n_changes=$(grep -c '"change":' <<<"$json")
if [ "$n_changes" -eq 15 ]; then
	pass "diff lists exactly the 15 changes made, nothing else"
else
	fail "diff lists exactly the 15 changes made, nothing else" "found $n_changes" "$json"
fi
if [ "$(tree_digest "$WS")" = "$digest_before" ]; then
	pass "the project is unchanged until apply"
else
	fail "the project is unchanged until apply"
fi
ab diff d --stat
expect_rc "diff --stat succeeds" 0
ok_if "diff --stat summarises" grep -q "files\? changed" <<<"$AB_OUT"
ab diff d -- src/main.c
ok_if "a text diff of one path shows the added line" grep -qx "+changed" <<<"$AB_OUT"
ab diff d -- link-to-main
ok_if "a symlink's target is shown, not followed" grep -q "src/main.c" <<<"$AB_OUT"

# ---- apply writes them, and only them ----
ab apply d --yes
expect_rc "apply succeeds" 0
ok_if "applied: the added file is in the project" grep -qx added "$WS/added.txt"
ok_if "applied: the modification" grep -qx changed "$WS/src/main.c"
ok_if "applied: the deletion" test ! -e "$WS/docs/readme.txt"
ok_if "applied: the directory deletion" test ! -e "$WS/old"
ok_if "applied: the rename" test -f "$WS/after.txt" -a ! -e "$WS/before.txt"
ok_if "applied: the mode" test -x "$WS/mode.sh"
ok_if "applied: the symlink, as a symlink" test -L "$WS/link-to-main"
ok_if "applied: the binary" cmp -s "$WS/blob.bin" <(printf '\000\001\002binary')
ok_if "applied: the name with a newline" test -f "$WS/$(printf 'new\nline.txt')"
if [ "$(stat -c %u "$WS/added.txt")" = "$HOST_UID" ]; then
	pass "applied files belong to the caller"
else
	fail "applied files belong to the caller" "$(stat -c '%u' "$WS/added.txt")"
fi
ab diff d --stat
if ! grep -q '|' <<<"$AB_OUT"; then
	pass "after apply, diff shows nothing left"
else
	fail "after apply, diff shows nothing left" "$(last_run)"
fi
ab apply d
expect_rc "apply with nothing to apply is an error" 125
ok_if "it says so" grep -q "nothing to apply" <<<"$AB_ERR"

# ---- a planted symlink never leads a write outside the project ----
outside=$T/outside
mkdir -p "$outside"
printf 'original\n' >"$outside/victim"
digest_outside=$(tree_digest "$outside")
box --name evil -- sh -c "cd '$WS' && ln -s '$outside' escape && ln -s '$outside/victim' victim-link && mkdir -p sub && echo pwned > sub/file"
ab apply evil --yes
box --name evil2 -- sh -c "cd '$WS' && rm -rf escape && mkdir escape && echo pwned > escape/victim"
# the host side: make "escape" a symlink to outside before applying evil2's write through it
rm -rf "$WS/escape"; ln -s "$outside" "$WS/escape"
ab apply evil2 --yes --force
if [ "$(tree_digest "$outside")" = "$digest_outside" ] && grep -qx original "$outside/victim"; then
	pass "nothing outside the project was written through planted symlinks"
else
	fail "nothing outside the project was written through planted symlinks" "$(last_run)" "$(ls -la "$outside")"
fi
ok_if "a planted symlink is applied as a symlink at most" test -L "$WS/victim-link"
rm -rf "$WS/escape" "$WS/victim-link"

# ---- a file the host changed is not overwritten silently ----
printf 'host v1\n' >"$WS/shared.txt"
ab discard evil2
box --name conflict -- sh -c "echo sandbox-edit >> '$WS/shared.txt'"
sleep 0.01
printf 'host v2\n' >"$WS/shared.txt"
ab apply conflict --yes
if [ "$AB_RC" -ne 0 ] && grep -qi conflict <<<"$AB_OUT$AB_ERR" && grep -qx 'host v2' "$WS/shared.txt"; then
	pass "apply refuses a file the host changed since the sandbox saw it"
else
	fail "apply refuses a file the host changed since the sandbox saw it" "$(last_run)" "$(cat "$WS/shared.txt")"
fi
ab apply conflict --yes --force
ok_if "--force overwrites it" grep -q sandbox-edit "$WS/shared.txt"

# The host edits a file while the sandbox that changed it is still running.
printf 'host v1\n' >"$WS/during.txt"
ab_bg "$T/during.out" "$T/during.err" run --name during -- sh -c "echo sandbox-edit >> '$WS/during.txt'; echo edited; sleep 2"
wait_for_line "$T/during.out" '^edited$' 10
printf 'host edit during the run\n' >"$WS/during.txt"
wait_pid_timeout "$AB_BG_PID" 20
ab apply during --yes
if [ "$AB_RC" -ne 0 ] && grep -qx 'host edit during the run' "$WS/during.txt"; then
	pass "a host edit made while the sandbox ran is a conflict too"
else
	fail "a host edit made while the sandbox ran is a conflict too" "$(last_run)" "$(cat "$WS/during.txt")"
fi

# ---- snapshots and rollback restore exactly ----
box --name snap -- sh -c "echo one > '$WS/s.txt'"
ab snapshot snap first
expect_rc "snapshot 'first'" 0
box --name snap -- sh -c "echo two >> '$WS/s.txt'; echo x > '$WS/x.txt'"
ab snapshot snap second
box --name snap -- sh -c "rm '$WS/s.txt'; echo three > '$WS/y.txt'"
ab snapshot snap third
ab snapshots snap
ok_if "snapshots lists the three names" bash -c 'grep -q first <<<"$1" && grep -q second <<<"$1" && grep -q third <<<"$1"' _ "$AB_OUT"
view() { box --name snap -- sh -c "cd '$WS' && for f in s.txt x.txt y.txt; do printf '%s=' \$f; cat \$f 2>/dev/null | tr '\n' ,; echo; done"; echo "$AB_OUT"; }
want_third=$(view)
ab rollback snap first
expect_rc "rollback to 'first'" 0
got=$(view)
if [ "$got" = "$(printf 's.txt=one,\nx.txt=\ny.txt=')" ]; then pass "rollback to 'first' restores exactly"; else fail "rollback to 'first' restores exactly" "$got"; fi
ab rollback snap second
got=$(view)
if [ "$got" = "$(printf 's.txt=one,two,\nx.txt=x,\ny.txt=')" ]; then pass "rollback to 'second' restores exactly"; else fail "rollback to 'second' restores exactly" "$got"; fi
ab rollback snap third
got=$(view)
if [ "$got" = "$want_third" ]; then pass "rollback to 'third' restores exactly"; else fail "rollback to 'third' restores exactly" "$got"; fi
box --name snap -- sh -c "rm -f '$WS/x.txt'"
ab rollback snap
got=$(view)
if [ "$got" = "$want_third" ]; then pass "rollback with no name undoes the last run"; else fail "rollback with no name undoes the last run" "$got"; fi

# ---- runs that change nothing take no new automatic snapshot; undo still works ----
count_auto() { ab snapshots dedup; grep -c '^auto-' <<<"$AB_OUT"; }
box --name dedup -- sh -c "echo base > '$WS/d.txt'"
sleep 0.1
box --name dedup -- true # its snapshot holds "base", settled
sleep 0.1
n1=$(count_auto)
box --name dedup -- true
box --name dedup -- sh -c "cat '$WS/d.txt' >/dev/null"
n2=$(count_auto)
if [ "$n1" -ge 1 ] && [ "$n2" = "$n1" ]; then pass "runs that change nothing take no new automatic snapshot ($n2)"; else fail "runs that change nothing take no new automatic snapshot" "before $n1, after $n2"; fi
box --name dedup -- sh -c "echo changed > '$WS/d.txt'"
ab rollback dedup
box --name dedup -- cat "$WS/d.txt"
if [ "$AB_OUT" = base ]; then pass "rollback with no name undoes a run whose snapshot was reused"; else fail "rollback with no name undoes a run whose snapshot was reused" "$AB_OUT"; fi
box --name dedup -- sh -c "echo changed > '$WS/d.txt'"
sleep 0.1
box --name dedup -- true
n3=$(count_auto)
if [ "$n3" -gt "$n2" ]; then pass "a run after a change takes a new automatic snapshot ($n3)"; else fail "a run after a change takes a new automatic snapshot" "before $n2, after $n3"; fi

# ---- the end of a run: the changes counted; nothing to redo when nothing changed ----
counted() { sed -n "s/^agentbox: \([0-9]*\) changes\{0,1\} kept in sandbox 'tally'.*/\1/p" <<<"$AB_ERR"; }
recorded=$AGENTBOX_DATA_DIR/sandboxes/tally/recorded
box --name tally -- sh -c "cd '$WS' && echo more >> src/main.c && echo n > tally.txt"
c1=$(counted)
sleep 0.1
box --name tally -- true
c2=$(counted)
if [ "$c1" = 2 ] && [ "$c2" = 2 ] && [ -s "$recorded" ]; then
	pass "a run that changes nothing counts the same changes and records the settled state"
else
	fail "a run that changes nothing counts the same changes and records the settled state" "counts '$c1' '$c2'; $(last_run)"
fi
box --name tally -- true
c3=$(counted)
box --name tally -- sh -c "cd '$WS' && echo edit >> src/lib/util.c"
c4=$(counted)
if [ "$c3" = 2 ] && [ "$c4" = 3 ]; then pass "a run's new change is counted after runs that changed nothing ($c3, $c4)"; else fail "a run's new change is counted after runs that changed nothing" "counts '$c3' '$c4'"; fi
# Each run writes to a layer of its own over the sandbox's earlier changes; its end folds
# the layer in, by overlayfs's rules, and a run that writes nothing leaves it empty.
counted_in() { sed -n "s/^agentbox: \([0-9]*\) changes\{0,1\} kept in sandbox '$1'.*/\1/p" <<<"$AB_ERR"; }
lsd=$AGENTBOX_DATA_DIR/sandboxes/layered
layer_empty() { [ -d "$lsd/layer" ] && [ -z "$(ls -A "$lsd/layer")" ]; }
box --name layered -- sh -c "cd '$WS' && mkdir -p deep/er && echo a > deep/er/a.txt && echo b > b.txt"
sleep 0.1
box --name layered -- true
l1=$(counted_in layered)
e1=$(layer_empty && echo empty)
box --name layered -- true
l2=$(counted_in layered)
box --name layered -- sh -c "cd '$WS' && echo c > deep/er/c.txt"
l3=$(counted_in layered)
if [ "$e1" = empty ] && layer_empty && [ -n "$l1" ] && [ "$l2" = "$l1" ] && [ "$l3" = "$((l1 + 1))" ]; then
	pass "the run's own layer: empty after each run; unchanged counts stay, a file added in an earlier run's directory is counted ($l1, $l2, $l3)"
else
	fail "the run's own layer: empty after each run; unchanged counts stay, a file added in an earlier run's directory is counted" \
		"layer '$(ls -A "$lsd/layer" 2>&1)'; counts '$l1' '$l2' '$l3'; $(last_run)"
fi
sleep 0.1
box --name layered -- true
box --name layered -- sh -c "cd '$WS' && printf 'B\n' > b.txt"
ab diff layered -- b.txt
if grep -q '^+B' <<<"$AB_OUT"; then pass "the run's own layer: a same-size rewrite of an earlier run's file is seen"; else fail "the run's own layer: a same-size rewrite of an earlier run's file is seen" "$(last_run)"; fi
sleep 0.1
box --name layered -- true
box --name layered -- sh -c "cd '$WS' && rm deep/er/a.txt"
l4=$(counted_in layered)
ab diff layered --stat
if [ -n "$l3" ] && [ "$l4" = "$((l3 - 1))" ] && ! grep -q 'a.txt' <<<"$AB_OUT"; then
	pass "the run's own layer: a file an earlier run added, removed, is no longer a change ($l4)"
else
	fail "the run's own layer: a file an earlier run added, removed, is no longer a change" "count '$l4'; $(last_run)"
fi
# Without a record (a new sandbox; one rolled back), a run that writes nothing counts
# what upper holds: nothing for a new one, the snapshot's change after a rollback.
box --name fresh -- true
f1=$AB_ERR
box --name fresh -- sh -c "echo x > '$WS/fresh.txt'"
f2=$(counted_in fresh)
ab snapshot fresh one
box --name fresh -- sh -c "echo y > '$WS/fresh2.txt'"
ab rollback fresh one
box --name fresh -- true
f3=$(counted_in fresh)
if ! grep -q "changes\{0,1\} kept" <<<"$f1" && [ "$f2" = 1 ] && [ "$f3" = 1 ]; then
	pass "a run that writes nothing on a sandbox without a record: no change on a new one, the rolled-back one's change counted"
else
	fail "a run that writes nothing on a sandbox without a record: no change on a new one, the rolled-back one's change counted" \
		"first '$f1'; counts '$f2' '$f3'; $(last_run)"
fi
# overlayfs removes the last mount's work/work as it mounts: agentbox sets it aside first
# and removes it while the command runs, also when an interrupted run left things in it.
box --name layered -- true
w1=$(ls -A "$lsd/work" | tr '\n' ' ')
mkdir -p "$lsd/work/work.aside/left-by-a-crash" && touch "$lsd/work/work.aside/left-by-a-crash/f"
box --name layered -- sh -c "cat '$WS/b.txt'"
w2=$(ls -A "$lsd/work" | tr '\n' ' ')
if [ "$w1" = "work " ] && [ "$w2" = "work " ] && [ "$AB_RC" = 0 ] && [ "$AB_OUT" = B ]; then
	pass "the last mount's work directory is set aside and removed, leftovers too"
else
	fail "the last mount's work directory is set aside and removed, leftovers too" "work/: '$w1' then '$w2'; $(last_run)"
fi
# Folding by overlayfs's rules, over earlier runs' changes: a directory removed and made
# again hides what it held (in the project and in earlier runs), a file replaced by a
# directory and the reverse, a mode change on a directory, a removed project file.
mkdir -p "$WS/fb/old" && echo p >"$WS/fb/old/p.txt" && echo r >"$WS/fb/r.txt"
box --name folds -- sh -c "cd '$WS/fb' && mkdir -p f/keep f/gone && echo k > f/keep/k && echo g > f/gone/g && echo t > f/turn && mkdir f/dir && echo in > f/dir/in && echo o > old/o.txt"
box --name folds -- sh -c "cd '$WS/fb' && rm -rf old && mkdir old && echo fresh > old/only && rm -rf f/gone && rm f/turn && mkdir f/turn && echo now > f/turn/x && rm -rf f/dir && echo file > f/dir && chmod 700 f/keep && rm r.txt && mkdir -p ro/sub && echo x > ro/sub/x && chmod 555 ro/sub ro"
box --name folds -- sh -c "cd '$WS/fb' && chmod 755 ro && echo y > ro/y && chmod 555 ro"
box --name folds -- sh -c "cd '$WS/fb' && find . | sort | tr '\n' ' '; stat -c %a f/keep ro ro/sub | tr '\n' ' '"
want=". ./f ./f/dir ./f/keep ./f/keep/k ./f/turn ./f/turn/x ./old ./old/only ./ro ./ro/sub ./ro/sub/x ./ro/y 700 555 555 "
if [ "$AB_OUT" = "$want" ]; then pass "the run's own layer folds by overlayfs's rules (removed and remade, file to directory and back, modes, read-only directories)"; else fail "the run's own layer folds by overlayfs's rules (removed and remade, file to directory and back, modes, read-only directories)" "got '$AB_OUT'; $(last_run)"; fi
ab diff folds --stat -- fb
if grep -q ' D fb/old/p.txt' <<<"$AB_OUT" && grep -q ' D fb/r.txt' <<<"$AB_OUT" && grep -q ' A fb/old/only' <<<"$AB_OUT" &&
	grep -q ' A fb/f/turn/x' <<<"$AB_OUT" && grep -q ' A fb/f/dir ' <<<"$AB_OUT" &&
	! grep -q 'f/gone\|o.txt\|f/dir/in' <<<"$AB_OUT"; then
	pass "... and diff lists exactly that against the project"
else
	fail "... and diff lists exactly that against the project" "$(last_run)"
fi
# While a command runs its changes are in its layer: diff shows them all the same.
ab run -d --name folds -- sh -c "cd '$WS' && echo live > live.txt && sleep 30"
for _ in $(seq 50); do [ -e "$AGENTBOX_DATA_DIR/sandboxes/folds/layer/live.txt" ] && break; sleep 0.1; done
ab diff folds --stat
if grep -q ' A live.txt' <<<"$AB_OUT" && grep -q ' A fb/old/only' <<<"$AB_OUT"; then pass "diff of a running sandbox shows the running command's changes and the earlier ones"; else fail "diff of a running sandbox shows the running command's changes and the earlier ones" "$(last_run)"; fi
if [ -z "$(find "$AGENTBOX_DATA_DIR/sandboxes/folds" -maxdepth 1 -name 'view-*')" ]; then pass "... and leaves no view behind"; else fail "... and leaves no view behind" "$(ls "$AGENTBOX_DATA_DIR/sandboxes/folds")"; fi
ab kill folds
ab wait folds
ab rm folds
# A run whose agentbox is killed never reaches its end: the next command folds its layer.
{ (cd "$WS" && exec timeout -s KILL 2 "$AB" run -q --name crashed -- sh -c "echo before-kill > '$WS/crash.txt'; sleep 30") >/dev/null 2>&1; } 2>/dev/null
ab diff crashed --stat
if grep -q ' A crash.txt' <<<"$AB_OUT"; then pass "a run killed before its end: its changes are folded in by the next command"; else fail "a run killed before its end: its changes are folded in by the next command" "$(last_run)"; fi
box --name crashed -- cat "$WS/crash.txt"
expect_line "... and the next run sees them" "before-kill"
if [ -z "$(ls -A "$AGENTBOX_DATA_DIR/sandboxes/crashed/layer")" ]; then pass "... and its layer is empty again"; else fail "... and its layer is empty again" "$(ls -A "$AGENTBOX_DATA_DIR/sandboxes/crashed/layer")"; fi
# The host edits the file the sandbox changed: the end of the run that changed it recorded
# the host's side, so apply refuses to overwrite the edit.
sleep 0.1
box --name tally -- true
printf 'host edit\n' >>"$WS/src/lib/util.c"
ab apply tally --yes -- src/lib/util.c
if [ "$AB_RC" != 0 ] && grep -q "conflict" <<<"$AB_OUT$AB_ERR" && grep -q "host edit" "$WS/src/lib/util.c"; then
	pass "after runs that changed nothing, a host edit to a changed file is still a conflict"
else
	fail "after runs that changed nothing, a host edit to a changed file is still a conflict" "$(last_run)"
fi
ab apply tally --yes -- tally.txt
if [ "$AB_RC" = 0 ] && ! grep -q '^[0-9a-f]\{16\} [0-9]*$' "$recorded" 2>/dev/null; then pass "apply drops the recorded state"; else fail "apply drops the recorded state" "$(last_run)"; fi
box --name tally -- true
c5=$(counted)
ab diff tally --json
n_diff=$(grep -c '"change"' <<<"$AB_OUT")
if [ "$c5" = "$n_diff" ] && [ "$c5" = 2 ]; then pass "after apply the run counts what diff lists ($c5)"; else fail "after apply the run counts what diff lists" "run '$c5', diff $n_diff"; fi
# A same-size rewrite in the sandbox, long after the last recorded end: seen, and kept.
sleep 0.1
box --name tally -- sh -c "cd '$WS' && printf 'm\n' > tally.txt && cat tally.txt"
ab diff tally -- tally.txt
if grep -q '^+m' <<<"$AB_OUT"; then pass "a same-size rewrite after a recorded end shows in diff"; else fail "a same-size rewrite after a recorded end shows in diff" "$(last_run)"; fi

# ---- a run that never reaches its end: the next run takes its own snapshot ----
box --name crash -- sh -c "echo first > '$WS/c.txt'"
sleep 0.1
box --name crash -- true # records the settled state
sleep 0.1
n1=$(ab snapshots crash; grep -c '^auto-' <<<"$AB_OUT")
ab_bg "$T/crash.out" "$T/crash.err" run --name crash -- sh -c "echo second > '$WS/c.txt'; echo written; sleep 60"
crash_pid=$AB_BG_PID
if wait_for_line "$T/crash.out" written 20; then
	kill -9 "$crash_pid"
	wait "$crash_pid" 2>/dev/null
	sleep 0.2
	box --name crash -- cat "$WS/c.txt"
	out=$AB_OUT
	n2=$(ab snapshots crash; grep -c '^auto-' <<<"$AB_OUT")
	ab rollback crash
	box --name crash -- cat "$WS/c.txt"
	if [ "$out" = second ] && [ "$n2" -gt "$n1" ] && [ "$AB_OUT" = second ]; then
		pass "after a run killed before its end, the next run snapshots first: rollback restores the killed run's changes"
	else
		fail "after a run killed before its end, the next run snapshots first: rollback restores the killed run's changes" "saw '$out', snapshots $n1 -> $n2, after rollback '$AB_OUT'"
	fi
else
	fail "after a run killed before its end, the next run snapshots first" "the run did not start: $(cat "$T/crash.err")"
fi

# ---- a snapshot while a process writes all the time is consistent ----
ab_bg "$T/w.out" "$T/w.err" run --name live -- sh -c "cd '$WS'; i=0; while :; do echo \"record-\$i-\$(printf %080d 0)\" >> log.txt; i=\$((i+1)); done"
sleep 1
ab snapshot live mid
expect_rc "a snapshot of a running sandbox succeeds" 0
kill "$AB_BG_PID" 2>/dev/null; wait_pid_timeout "$AB_BG_PID" 10
snapfile=$(find "$AGENTBOX_DATA_DIR" -path '*/live/snapshots/mid/upper*' -name log.txt 2>/dev/null | head -n1)
if [ -n "$snapfile" ] && [ -s "$snapfile" ] && ! grep -vqE '^record-[0-9]+-0{80}$' "$snapfile"; then
	pass "the running snapshot holds whole records only ($(wc -l <"$snapfile") lines)"
else
	fail "the running snapshot holds whole records only" "file: $snapfile" "$(tail -c 200 "$snapfile" 2>/dev/null | od -c | tail -3)"
fi

# ---- bad input ----
ab diff no-such-sandbox
expect_bad_input "diff of an unknown sandbox" "no-such-sandbox"
ab rollback snap no-such-snapshot
expect_bad_input "rollback to an unknown snapshot" "no-such-snapshot"
ab run --name '../x' -- true
expect_bad_input "an invalid sandbox name" "[.][.]/x"
mkdir -p "$T/movable" && cp "$P" "$T/movable/probe"
(cd "$T/movable" && timeout 20 "$AB" run --name moved -- sh -c 'echo x > new.txt' >/dev/null 2>&1)
mv "$T/movable" "$T/moved-away"
ab diff moved
expect_bad_input "a project directory that moved" "$T/movable"
ab apply moved --yes
ok_if "apply to a moved project writes nothing" test ! -e "$T/moved-away/new.txt"

# A sandbox whose work directory was tampered with (here: a link to the directory the run
# writes to, which overlayfs refuses) fails to start with the workspace named; nothing is lost.
box --name brokenwork -- sh -c "echo kept > '$WS/bw.txt'"
bw=$AGENTBOX_DATA_DIR/sandboxes/brokenwork
digest_bw=$(tree_digest "$WS")
if [ -d "$bw/work" ]; then
	rm -rf "$bw/work" && ln -s layer "$bw/work"
	box --name brokenwork -- true
	expect_bad_input "a tampered work directory is reported" "$WS"
	if err_has_re 'copy-on-write workspace' && [ "$(tree_digest "$WS")" = "$digest_bw" ]; then
		pass "it says the copy-on-write workspace could not be mounted; the project is unchanged"
	else
		fail "it says the copy-on-write workspace could not be mounted; the project is unchanged" "$(last_run)"
	fi
	rm -f "$bw/work" && mkdir "$bw/work"
	box --name brokenwork -- cat "$WS/bw.txt"
	expect_line "with the work directory back, the changes are all there" "kept"
else
	fail "a tampered work directory is reported" "no work directory at $bw/work"
fi

# Kernels before 5.2 have no mount API (fsopen, fsmount, move_mount): the overlay is then
# mounted with mount(2), the same workspace and the same refusals.
old_kernel() { # old_kernel ARGS...: agentbox ARGS with the mount API failing with ENOSYS
	(cd "$WS" && timeout -k 5 "$AB_TIMEOUT" "$P" "${OLD_KERNEL_PROBE:-without-mount-api}" "$AB" "$@" </dev/null \
		>"$AB_OUT_FILE" 2>"$AB_ERR_FILE") 2>/dev/null
	AB_RC=$?
	AB_CMD="probe ${OLD_KERNEL_PROBE:-without-mount-api} $AB $*"
	AB_OUT=$(cat "$AB_OUT_FILE")
	AB_ERR=$(cat "$AB_ERR_FILE")
}
digest_old=$(tree_digest "$WS")
old_kernel run --name oldkernel -- sh -c "echo old > '$WS/old.txt'; cat '$WS/old.txt'"
if [ "$AB_RC" = 0 ] && out_has "old" && [ "$(tree_digest "$WS")" = "$digest_old" ]; then
	pass "without the mount API the workspace is still copy-on-write (mounted with mount(2))"
else
	fail "without the mount API the workspace is still copy-on-write (mounted with mount(2))" "$(last_run)"
fi
old_kernel run --name oldkernel -- cat "$WS/old.txt"
expect_line "... and keeps its changes for the next run" "old"
bo=$AGENTBOX_DATA_DIR/sandboxes/oldkernel
rm -rf "$bo/work" && ln -s layer "$bo/work"
old_kernel run --name oldkernel -- true
expect_bad_input "without the mount API a tampered work directory is reported too" "$WS"
rm -f "$bo/work" && mkdir "$bo/work"
# Before Linux 6.13 overlayfs takes its layers only as paths: they are then given by path,
# with the same workspace and the same refusals.
OLD_KERNEL_PROBE=without-layer-fds
digest_old=$(tree_digest "$WS")
old_kernel run --name pathlayers -- sh -c "echo paths > '$WS/old.txt'; cat '$WS/old.txt'; grep -c ' overlay .*lowerdir=' /proc/self/mountinfo"
if [ "$AB_RC" = 0 ] && out_has "paths" && out_has 1 && [ "$(tree_digest "$WS")" = "$digest_old" ]; then
	pass "layers given by path where overlayfs takes no descriptors: still copy-on-write"
else
	fail "layers given by path where overlayfs takes no descriptors: still copy-on-write" "$(last_run)"
fi
box --name pathlayers -- sh -c "cat '$WS/old.txt'; grep -c ' overlay .*lowerdir+=' /proc/self/mountinfo"
if out_has paths && out_has 1; then pass "... its changes are there with layers given by descriptor"; else fail "... its changes are there with layers given by descriptor" "$(last_run)"; fi
bo=$AGENTBOX_DATA_DIR/sandboxes/pathlayers
rm -rf "$bo/work" && ln -s layer "$bo/work"
old_kernel run --name pathlayers -- true
expect_bad_input "layers given by path: a tampered work directory is reported" "$WS"
box --name pathlayers -- true
expect_bad_input "layers given by descriptor: a tampered work directory is reported" "$WS"
rm -f "$bo/work" && mkdir "$bo/work"
unset OLD_KERNEL_PROBE

# ---- masks, last: this changes the project ----
# The search for masked files keeps its result while the project's directories are as
# they were: a secret added since, deep in a new directory, is still found.
sleep 0.1
box --name masked -- true
mkdir -p "$WS/later/deep"
printf 'LATE_SECRET=1\n' >"$WS/later/deep/.env"
box --name masked -- sh -c "cat '$WS/later/deep/.env'; echo end"
if out_has end && ! grep -q LATE_SECRET <<<"$AB_OUT"; then
	pass "a secret added after an earlier run is masked at the next"
else
	fail "a secret added after an earlier run is masked at the next" "$(last_run)"
fi
rm -r "$WS/later"

done_testing
