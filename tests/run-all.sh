#!/bin/bash
# Runs every suite against one build directory and prints "N passed, N failed":
#   unit tests (TAP), fuzzers over their corpora, and the integration tests, which run
#   twice when started as root: as root, and as a throwaway unprivileged user.
# AB_MUST_WORK=1 turns every skip into a failure.
set -u
B=${1:?usage: tests/run-all.sh BUILD_DIR}
B=$(cd "$B" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/agentbox-tests.XXXXXX)
chmod 755 "$logdir"

# count_tap NAME LOG: adds a log's TAP results to the totals and shows failures.
count_tap() {
	local name=$1 log=$2 p f s
	p=$(grep -cE '^ok [0-9]+' "$log" || true)
	s=$(grep -cE '^ok [0-9]+.*# SKIP' "$log" || true)
	f=$(grep -cE '^not ok [0-9]+' "$log" || true)
	p=$((p - s))
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
	printf '%-44s %4d passed %3d failed %3d skipped\n' "$name" "$p" "$f" "$s"
	if [ "$f" -gt 0 ]; then grep -E -A4 '^not ok' "$log" | sed 's/^/    /'; fi
}

# A test that ends badly without a TAP failure (a crash, a sanitizer report) still fails.
run_tap() {
	local name=$1; shift
	local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
	timeout 600 "$@" >"$log" 2>&1
	local rc=$?
	count_tap "$name" "$log"
	if [ $rc -ne 0 ] && ! grep -qE '^not ok' "$log"; then
		failed=$((failed + 1))
		echo "    $name exited with status $rc:"; tail -n 15 "$log" | sed 's/^/    /'
	fi
}

echo "== unit tests ($B)"
for t in "$B"/tests/test-*; do
	[ -x "$t" ] && run_tap "unit/$(basename "$t")" "$t"
done

echo "== fuzzers over their corpora"
for f in "$B"/tests/fuzz-*; do
	[ -x "$f" ] || continue
	n=$(basename "$f"); corpus="$top/tests/fuzz/corpus/${n#fuzz-}"
	log="$logdir/$n.log"
	if AB_FUZZ_ITERATIONS=${AB_FUZZ_ITERATIONS:-20000} timeout 600 "$f" "$corpus" >"$log" 2>&1; then
		passed=$((passed + 1)); printf '%-44s %s\n' "fuzz/$n" "$(tail -n1 "$log")"
	else
		failed=$((failed + 1)); echo "fuzz/$n FAILED:"; tail -n 20 "$log" | sed 's/^/    /'
	fi
done

# The integration tests read nothing from the source tree at run time but lib.sh: stage
# the binaries and scripts where any user can read them.
stage=$(mktemp -d /tmp/agentbox-stage.XXXXXX)
chmod 755 "$stage"
cp "$B/agentbox" "$B/probe" "$stage/"
cp -r "$top/tests/integration" "$stage/integration"
mkdir -p "$stage/helpers" && cp "$top/tests/helpers/netserver.py" "$stage/helpers/"
chmod -R a+rX "$stage"

run_integration() {
	local who=$1; shift
	echo "== integration tests as $who"
	for t in "$stage"/integration/test-*.sh; do
		run_tap "integration($who)/$(basename "$t")" "$@" bash "$t"
	done
}

# A Debian root made by debootstrap, for the --rootfs tests (cached between runs).
if [ -z "${AB_TEST_ROOTFS:-}" ]; then
	AB_TEST_ROOTFS=$("$top/tests/helpers/debootstrap-rootfs.sh")
fi

if [ "$(id -u)" -eq 0 ]; then
	tmp_root=$(mktemp -d /tmp/agentbox-root.XXXXXX)
	run_integration root env AB="$stage/agentbox" PROBE="$stage/probe" TMPDIR="$tmp_root" \
		AB_MUST_WORK="${AB_MUST_WORK:-}" AB_TEST_ROOTFS="${AB_TEST_ROOTFS:-}"
	user=agentbox-test
	id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/bash "$user"
	tmp_user=$(mktemp -d /tmp/agentbox-user.XXXXXX)
	chown "$user:" "$tmp_user"
	run_integration "$user" setpriv --reuid="$user" --regid="$user" --init-groups \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$tmp_user" USER="$user" TMPDIR="$tmp_user" \
		AB="$stage/agentbox" PROBE="$stage/probe" AB_MUST_WORK="${AB_MUST_WORK:-}" \
		AB_TEST_ROOTFS="${AB_TEST_ROOTFS:-}"
	# Unit tests of file-system work whose permissions differ for a user (read-only
	# directories, owners), run again as that user.
	echo "== unit tests as $user"
	for t in test-layer; do
		cp "$B/tests/$t" "$stage/$t" && chmod 755 "$stage/$t"
		run_tap "unit($user)/$t" setpriv --reuid="$user" --regid="$user" --init-groups \
			env -i PATH=/usr/bin:/bin HOME="$tmp_user" TMPDIR="$tmp_user" "$stage/$t"
	done
	rm -rf "$tmp_root" "$tmp_user"
else
	run_integration "$(id -un)" env AB="$stage/agentbox" PROBE="$stage/probe"
fi
rm -rf "$stage"

echo
echo "logs: $logdir"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
