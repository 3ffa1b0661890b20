#!/bin/bash
# Bad input: agentbox refuses before doing anything, exits 125, and names the subject
# in single quotes on stderr. The workspace is left as it was.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

echo "keep" >"$WS/existing"
before=$(tree_digest "$WS")

# refused DESC SUBJECT-REGEX ARGS...: a run that must be refused as bad input.
refused() {
	local desc=$1 subject=$2
	shift 2
	ab run "$@" -- "$P" write "$WS/must-not-exist"
	expect_bad_input "$desc" "$subject"
	if [ -e "$WS/must-not-exist" ]; then
		fail "$desc: the command did not run" "$(last_run)"
		rm -f "$WS/must-not-exist"
	fi
}

refused "an unknown flag" "--no-such-flag" --no-such-flag
refused "a missing -v source" "$T/missing-source" -v "$T/missing-source:/mnt/x"
refused "a relative -v destination" "[^']*relative[^']*" -v "$T:relative/dest"
echo "not a directory" >"$T/a-file"
refused "a workspace that is a file" "$T/a-file" --workspace "$T/a-file"
refused "the host's / as the workspace" "/" --workspace /
refused "a system directory as the workspace" "/usr" --workspace /usr
refused "a missing workspace" "$T/no-such-dir" --workspace "$T/no-such-dir"
refused "a bad --workspace-mode" "sideways" --workspace-mode sideways
printf '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [' >"$T/broken.json"
refused "a malformed seccomp JSON file" "$T/broken.json" --seccomp "$T/broken.json"
refused "a missing seccomp file" "$T/no-such-profile.json" --seccomp "$T/no-such-profile.json"
refused "a bad --tmpfs size" "[^']*banana[^']*" --tmpfs /scratch:size=banana
refused "a bad --network mode" "[^']*nowhere[^']*" --network nowhere
refused "an unknown --require layer" "[^']*warpdrive[^']*" --require warpdrive
# A required layer that this run would lack is an error, never a silent downgrade.
refused "--require seccomp with --seccomp unconfined" "seccomp" --seccomp unconfined --require seccomp
refused "--require netns with --network host" "netns" --network host --require netns
refused "a missing --env-file" "$T/no-such-env" --env-file "$T/no-such-env"
refused "a bad -e name" "[^']*A B[^']*" -e 'A B=x'
refused "a missing --rootfs" "$T/no-such-root" --rootfs "$T/no-such-root"

ab run
if [ "$AB_RC" = 125 ] && head -n 1 <<<"$AB_ERR" | grep -q '^agentbox: '; then
	pass "run without a command is refused with 125"
else
	fail "run without a command is refused with 125" "$(last_run)"
fi

ab no-such-subcommand
expect_bad_input "an unknown subcommand" "no-such-subcommand"

after=$(tree_digest "$WS")
if [ "$before" = "$after" ]; then
	pass "the workspace is unchanged"
else
	fail "the workspace is unchanged" "$(ls -la "$WS")"
fi

done_testing
