#!/bin/bash
# Terminals: -t (and the automatic choice when stdin is a terminal) gives the command a
# terminal whose output comes back; without one the command has none. script(1) from
# util-linux plays the user's terminal.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# in_script CMD [KEYS-AFTER-READY]: runs the shell command CMD under script(1), with a time limit; sets
# AB_RC (CMD's status, thanks to -e) and AB_OUT (what the terminal showed, without CRs).
# script's stdin is a pipe that stays open: at end of input script would type the
# terminal's EOF character, and that keystroke would reach the command. With KEYS, the
# pipe types them once the command has printed a "ready=" line.
in_script() {
	local fd sleeper keys=${2:-} out=$AB_OUT_FILE
	AB_CMD="script -qec $1 /dev/null"
	: >"$out"
	exec {fd}< <(
		if [ -n "$keys" ]; then
			for ((i = 0; i < 200; i++)); do
				grep -q 'ready=' "$out" && break
				sleep 0.05
			done
			printf '%b' "$keys"
		fi
		exec sleep $((AB_TIMEOUT + 10))
	)
	sleeper=$!
	(cd "$WS" && SHELL=/bin/bash timeout -k 5 "$AB_TIMEOUT" script -qec "$1" /dev/null \
		<&"$fd" >"$AB_OUT_FILE" 2>"$AB_ERR_FILE")
	AB_RC=$?
	exec {fd}<&-
	kill "$sleeper" 2>/dev/null
	AB_OUT=$(tr -d '\r' <"$AB_OUT_FILE")
	AB_ERR=$(cat "$AB_ERR_FILE")
}

if ! command -v script >/dev/null; then
	skip "terminal tests" "script(1) from util-linux is not installed"
	done_testing
fi

q() { printf '%q' "$1"; }
AB_Q=$(q "$AB")
P_Q=$(q "$P")

in_script "$AB_Q run -t -- sh -c 'test -t 0 && echo STDIN_IS_TTY; test -t 1 && echo STDOUT_IS_TTY'"
expect_rc "-t under a terminal runs" 0
expect_line "-t: stdin is a terminal inside" "STDIN_IS_TTY"
expect_line "-t: stdout is a terminal inside, and its output comes back" "STDOUT_IS_TTY"

in_script "$AB_Q run -t -- sh -c 'echo exactly-this'"
if [ "$AB_OUT" = exactly-this ]; then
	pass "-t adds nothing to the command's output"
else
	fail "-t adds nothing to the command's output" \
		"terminal bytes: $(od -c "$AB_OUT_FILE" | head -n 3)" "$(last_run)"
fi

in_script "$AB_Q run -- sh -c 'test -t 0 && echo STDIN_IS_TTY'"
expect_line "a terminal is given automatically when stdin is one" "STDIN_IS_TTY"

in_script "$AB_Q run -t -- $P_Q exit 3"
expect_rc "-t passes the exit status through" 3

in_script "$AB_Q run -t -- $P_Q status"
expect_line "-t keeps the seccomp filter" "Seccomp=2"
expect_line "-t keeps capabilities empty" "CapEff=0000000000000000"

in_script "$AB_Q run -t -- $P_Q try tiocsti"
expect_line "-t: TIOCSTI is tried on the terminal" "tiocsti_on=stdin"
expect_line "-t: TIOCSTI on the terminal is refused with EPERM" "tiocsti=EPERM"

# Ctrl-C typed on the terminal reaches the command as SIGINT.
in_script "$AB_Q run -t -- $P_Q wait-signal 20" '\003'
# (the terminal echoes the keystroke as "^C" just before the probe's answer)
ok_if "-t: Ctrl-C on the terminal sends SIGINT to the command" \
	grep -qE '^(\^C)?signal=2$' <<<"$AB_OUT"
expect_rc "-t: the command that caught SIGINT exits 0" 0

# No terminal on stdin and no -t: the command gets none.
box -- sh -c 'test -t 0 && echo STDIN_IS_TTY; echo done'
expect_rc "without a terminal, the command runs" 0
expect_no_line "without a terminal, the command has none" "STDIN_IS_TTY"

done_testing
