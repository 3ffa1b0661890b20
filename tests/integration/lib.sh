# TAP helpers for the integration tests: sourced by every tests/integration/test-*.sh.
#
# Environment:
#   AB            path to the agentbox binary (required)
#   PROBE         path to the static probe (required); each test copies it into a fresh
#                 workspace so that it runs at the same path inside the sandbox
#   AB_MUST_WORK  1: a skip counts as a failure
#   AB_TIMEOUT    seconds allowed for one agentbox run (default 30)
#   TMPDIR        where the scratch directories go (default /tmp)
#
# Output is plan-less TAP: "ok N - desc" / "not ok N - desc" with "# " diagnostics, and
# "1..N" at the end. A script exits 1 when any test failed.
#
# Running agentbox: `ab run [OPTIONS] -- CMD...` runs "$AB" from inside $WS (so the
# workspace defaults to it) under timeout(1), and leaves the results in AB_RC, AB_OUT and
# AB_ERR. Assertions then read those: out_has KEY=VALUE, expect_rc, ...

set -u

: "${AB:?set AB to the agentbox binary}"
: "${PROBE:?set PROBE to the probe binary}"

AB_TIMEOUT=${AB_TIMEOUT:-30}
T_N=0
T_FAILED=0
T_SKIPPED=0
AB_RC=0
AB_OUT=
AB_ERR=
AB_CMD=

# ---- TAP ------------------------------------------------------------------------------

diag() {
	local line
	while IFS= read -r line; do
		printf '# %s\n' "$line"
	done <<<"$*"
}

pass() {
	T_N=$((T_N + 1))
	printf 'ok %d - %s\n' "$T_N" "$1"
}

# fail DESC [DIAGNOSTIC...]
fail() {
	T_N=$((T_N + 1))
	T_FAILED=$((T_FAILED + 1))
	printf 'not ok %d - %s\n' "$T_N" "$1"
	shift
	local d
	for d in "$@"; do
		diag "$d"
	done
}

# skip DESC REASON: a skip, or a failure under AB_MUST_WORK=1.
skip() {
	if [ "${AB_MUST_WORK:-0}" = 1 ]; then
		fail "$1" "skipped ($2), but AB_MUST_WORK=1 forbids skips"
		return
	fi
	T_N=$((T_N + 1))
	T_SKIPPED=$((T_SKIPPED + 1))
	printf 'ok %d # SKIP %s: %s\n' "$T_N" "$1" "$2"
}

# ok_if DESC CMD...: passes when CMD succeeds; on failure shows the last agentbox run.
ok_if() {
	local desc=$1
	shift
	if "$@"; then
		pass "$desc"
	else
		fail "$desc" "check failed: $*" "$(last_run)"
	fi
}

done_testing() {
	printf '1..%d\n' "$T_N"
	if [ "$T_SKIPPED" -gt 0 ]; then
		diag "$T_SKIPPED skipped"
	fi
	if [ "$T_FAILED" -gt 0 ]; then
		diag "$T_FAILED of $T_N failed"
		exit 1
	fi
	exit 0
}

# ---- fixtures -------------------------------------------------------------------------

# The scratch directory T (real path, removed at exit), the workspace WS inside it, and P,
# the copy of the probe in the workspace. Also HOST_UID and SANDBOX_UID/GID: what the
# sandbox user should be (uid 1000 for a root caller, the caller's ids otherwise).
ab_setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/abtest.XXXXXX") || {
		echo "Bail out! cannot create a scratch directory"
		exit 1
	}
	T=$(realpath "$T")
	chmod 0755 "$T"
	WS=$T/ws
	mkdir "$WS"
	P=$WS/probe
	cp "$PROBE" "$P"
	chmod 0755 "$P"
	# Every sandbox's state (copy-on-write changes, snapshots) stays in this scratch tree.
	export AGENTBOX_DATA_DIR=$T/data
	# ... and so do the records of running sandboxes (ps, attach, logs).
	export AGENTBOX_RUN_DIR=$T/run
	AB_OUT_FILE=$T/.ab-stdout
	AB_ERR_FILE=$T/.ab-stderr
	HOST_UID=$(id -u)
	HOST_GID=$(id -g)
	if [ "$HOST_UID" = 0 ]; then
		SANDBOX_UID=1000
		SANDBOX_GID=1000
	else
		SANDBOX_UID=$HOST_UID
		SANDBOX_GID=$HOST_GID
	fi
	AB_BG_PIDS=()
	trap ab_cleanup EXIT
}

ab_cleanup() {
	local pid
	for pid in "${AB_BG_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null
	done
	# Detached sandboxes a test left behind: removed with everything they hold.
	if [ -n "${T:-}" ] && [ -d "$T/run" ]; then
		local d
		for d in "$T"/run/*/; do
			[ -d "$d" ] && "$AB" rm --force "$(basename "$d")" >/dev/null 2>&1
		done
	fi
	if [ -n "${T:-}" ] && [ -d "$T" ]; then
		chmod -R u+rwX "$T" 2>/dev/null
		rm -rf "$T"
	fi
}

# ---- running agentbox -----------------------------------------------------------------

# ab ARGS...: runs "$AB" ARGS from $WS with a time limit (stdin from /dev/null unless
# AB_STDIN names a file). Sets AB_RC, AB_OUT, AB_ERR, AB_CMD.
ab() {
	AB_CMD="$AB $*"
	local start=$SECONDS
	# The subshell's stderr is dropped: it only carries bash's "Killed" notices.
	(cd "$WS" && timeout -k 5 "$AB_TIMEOUT" "$AB" "$@" <"${AB_STDIN:-/dev/null}" \
		>"$AB_OUT_FILE" 2>"$AB_ERR_FILE") 2>/dev/null
	AB_RC=$?
	AB_OUT=$(cat "$AB_OUT_FILE")
	AB_ERR=$(cat "$AB_ERR_FILE")
	if [ $((SECONDS - start)) -ge "$AB_TIMEOUT" ]; then
		diag "timed out after ${AB_TIMEOUT}s (rc $AB_RC): $AB_CMD"
	fi
	return 0
}

# box [OPTIONS] -- CMD...: shorthand for `ab run`.
box() {
	ab run "$@"
}

# What the last run did, for a failure's diagnostics.
last_run() {
	printf 'command: %s\nexit: %s\nstdout:\n%s\nstderr:\n%s' "$AB_CMD" "$AB_RC" \
		"$(sed 's/^/  /' <<<"$AB_OUT")" "$(sed 's/^/  /' <<<"$AB_ERR")"
}

# ---- assertions on the last run -------------------------------------------------------

# out_has LINE: the last run's stdout has LINE as a whole line.
out_has() {
	grep -qxF -- "$1" <<<"$AB_OUT"
}

# err_has_re REGEX: the last run's stderr matches the extended regex.
err_has_re() {
	grep -qE -- "$1" <<<"$AB_ERR"
}

# out_value KEY: the value of the first KEY= line of the last run's stdout.
out_value() {
	sed -n "s/^$1=//p" <<<"$AB_OUT" | head -n 1
}

# expect_line DESC LINE
expect_line() {
	if out_has "$2"; then
		pass "$1"
	else
		fail "$1" "expected the line '$2'" "$(last_run)"
	fi
}

# expect_no_line DESC LINE
expect_no_line() {
	if out_has "$2"; then
		fail "$1" "did not expect the line '$2'" "$(last_run)"
	else
		pass "$1"
	fi
}

# expect_rc DESC N
expect_rc() {
	if [ "$AB_RC" = "$2" ]; then
		pass "$1"
	else
		fail "$1" "expected exit status $2" "$(last_run)"
	fi
}

# expect_value_in DESC KEY VALUE...: KEY's value is one of the VALUEs.
expect_value_in() {
	local desc=$1 key=$2 v want
	shift 2
	v=$(out_value "$key")
	for want in "$@"; do
		if [ "$v" = "$want" ]; then
			pass "$desc"
			return
		fi
	done
	fail "$desc" "expected $key to be one of: $*" "$(last_run)"
}

# expect_value_not_in DESC KEY VALUE...: KEY is present and its value none of the VALUEs.
expect_value_not_in() {
	local desc=$1 key=$2 v bad
	shift 2
	if ! grep -q "^$key=" <<<"$AB_OUT"; then
		fail "$desc" "no $key= line" "$(last_run)"
		return
	fi
	v=$(out_value "$key")
	for bad in "$@"; do
		if [ "$v" = "$bad" ]; then
			fail "$desc" "$key must not be $bad" "$(last_run)"
			return
		fi
	done
	pass "$desc"
}

# expect_bad_input DESC SUBJECT: exit 125, stderr starts "agentbox: " and names SUBJECT
# (an extended regex for what goes between single quotes).
expect_bad_input() {
	local desc=$1 subject=$2
	if [ "$AB_RC" != 125 ]; then
		fail "$desc" "expected exit status 125" "$(last_run)"
	elif ! head -n 1 <<<"$AB_ERR" | grep -q '^agentbox: '; then
		fail "$desc" "stderr should start with 'agentbox: '" "$(last_run)"
	elif ! err_has_re "'$subject'"; then
		fail "$desc" "stderr should name the subject in single quotes: '$subject'" \
			"$(last_run)"
	else
		pass "$desc"
	fi
}

# ---- background runs and processes ----------------------------------------------------

# ab_bg OUT ERR ARGS...: starts "$AB" ARGS in the background from $WS (no timeout(1), so
# that AB_BG_PID is agentbox itself); the cleanup kills it if a test forgets.
ab_bg() {
	local out=$1 err=$2
	shift 2
	AB_CMD="$AB $*"
	cd "$WS" || return 1
	"$AB" "$@" </dev/null >"$out" 2>"$err" &
	AB_BG_PID=$!
	cd - >/dev/null || return 1
	AB_BG_PIDS+=("$AB_BG_PID")
}

# wait_for_line FILE REGEX [SECONDS]: polls until FILE has a line matching REGEX.
wait_for_line() {
	local file=$1 re=$2 secs=${3:-5} i
	for ((i = 0; i < secs * 20; i++)); do
		if grep -qE -- "$re" "$file" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# wait_pid_timeout PID SECONDS: waits for a child of this shell; sets WAIT_RC (or 255
# when it was still running and had to be killed).
wait_pid_timeout() {
	local pid=$1 secs=$2 i
	for ((i = 0; i < secs * 20; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			break
		fi
		# A zombie child still answers kill -0: look at its state.
		if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
			break
		fi
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null &&
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		WAIT_RC=255
		return 1
	fi
	wait "$pid"
	WAIT_RC=$?
	return 0
}

# pids_with_arg WORD: the pids of live processes (not zombies) that have WORD as one of
# their arguments. Reads /proc with shell builtins only, so that no helper process
# carries WORD in its own command line.
pids_with_arg() {
	local word=$1 dir pid arg stat state
	for dir in /proc/[0-9]*; do
		pid=${dir#/proc/}
		[ "$pid" = "$$" ] && continue
		IFS= read -r stat 2>/dev/null <"$dir/stat" || continue
		state=${stat##*) } # after the command name, which may hold anything
		[ "${state%% *}" = Z ] && continue
		while IFS= read -r -d '' arg; do
			if [ "$arg" = "$word" ]; then
				echo "$pid"
				break
			fi
		done 2>/dev/null <"$dir/cmdline"
	done
}

# A tree's listing with sizes, modes and times, to show that a run changed nothing
# (directories the caller cannot read count as they are seen).
tree_digest() {
	(cd "$1" && find . -printf '%p %s %m %u %T@\n' 2>/dev/null | LC_ALL=C sort | md5sum)
}

# ---- detached sandboxes ---------------------------------------------------------------

# field NAME KEY: KEY's top-level value in `agentbox inspect NAME` (strings unquoted).
field() {
	"$AB" inspect "$1" 2>/dev/null | sed -n "s/^  \"$2\":\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" | head -n 1
}

# wait_status NAME STATUS [SECONDS]: polls inspect until the sandbox has that status.
wait_status() {
	local i
	for ((i = 0; i < ${3:-10} * 20; i++)); do
		[ "$(field "$1" status)" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
