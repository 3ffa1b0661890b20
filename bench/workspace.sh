#!/bin/bash
# The workspace benchmark, side by side with a plain copy, in one run:
#   a project of 10,000 files (about 200 MB) where the agent changed 100 files;
#   agentbox snapshot and rollback against `cp -a` of the project (the target's
#   baseline), and rollback also against the strictest restore without agentbox: a copy
#   already in the page cache copied back into an empty directory (nothing to remove);
#   `agentbox diff --stat`, and start-up with a copy-on-write workspace against a plain
#   bind (--workspace-mode rw), interleaved.
# Usage: bench/workspace.sh BUILD_DIR [--quick]
set -u
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: bench/workspace.sh BUILD_DIR [--quick] (BUILD_DIR: where 'make' put agentbox, e.g. build)" >&2
	exit 2
fi
B=$(cd "$1" && pwd)
quick=${2:-}
AB=$B/agentbox
SRC=$(cd "$(dirname "$0")" && pwd)
FILES=${BENCH_WS_FILES:-10000}
FILE_KB=${BENCH_WS_FILE_KB:-20}
RUNS=${BENCH_WS_RUNS:-15}
STARTS=${BENCH_WS_STARTS:-200}
if [ "$quick" = --quick ]; then FILES=2000; RUNS=5; STARTS=20; fi

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/agentbox-wsbench.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
export AGENTBOX_DATA_DIR=$T/data
P=$T/project
mkdir -p "$P"

TIMEIT=$B/bench/timeit
if [ ! -x "$TIMEIT" ]; then
	TIMEIT=$T/timeit
	${CC:-cc} -std=gnu11 -D_GNU_SOURCE -O2 -o "$TIMEIT" "$SRC/timeit.c" || exit 1
fi

# Microseconds from bash's own clock, read without starting any process (no command
# substitution), so nothing is added to what is measured.
# timed VAR CMD...: runs CMD and appends its wall time in ms to the array VAR.
timed() {
	local -n into=$1
	shift
	local t0=${EPOCHREALTIME/./}
	"$@" >/dev/null || return 1
	local t1=${EPOCHREALTIME/./}
	into+=("$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))")
}
restore_copy() { cp -a "$1" "$T/restore"; }
# median of the numbers on stdin
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

echo "agentbox workspace bench: $FILES files of ${FILE_KB} KiB, 100 changed; $RUNS runs each, interleaved"
head -c $((FILE_KB * 1024)) /dev/urandom >"$T/blob"
for ((d = 0; d < FILES / 100; d++)); do
	mkdir -p "$P/dir$d"
	for ((f = 0; f < 100; f++)); do cp "$T/blob" "$P/dir$d/file$f"; done
done
echo "project: $(du -sh "$P" | cut -f1), $(find "$P" -type f | wc -l) files"

cd "$P" || exit 1
sync
# The agent's work: 100 files changed.
"$AB" run -q --name bench -- sh -c 'for d in 0 1 2 3 4 5 6 7 8 9; do for f in 0 1 2 3 4 5 6 7 8 9; do echo change >> dir$d/file$f; done; done' || exit 1

# Start-up first, before the copies below remove tens of thousands of files: ext4 without
# a journal skips inodes freed in the last 30 seconds when it allocates new ones, which
# would charge the copy-on-write rows (they create a few inodes per run) for this
# benchmark's own deletions.
# Start-up: cow against a plain bind, for a fresh sandbox each run (as a new agent would
# get), an existing one without changes, and the agent's sandbox above with its 100
# changes (the case the target is about: every later command of that agent).
# Two series: "spaced" (30 ms between runs, as when a person or an agent issues commands
# and the disk has settled) and "back-to-back" (each run right after the last).
starts() { # starts GAP_MS OUT (and OUT.runs: every timed run, in the order they ran)
	"$TIMEIT" -r "$STARTS" -w 3 -g "$1" -d "$2.runs" \
		@cow "$AB" run -q --name "start-$1-{i}" -- /bin/true :: \
		@rw "$AB" run -q --workspace-mode rw -- /bin/true :: \
		@cow-again "$AB" run -q --name "again-$1" -- /bin/true :: \
		@cow-100-changes "$AB" run -q --name bench -- /bin/true >"$2" 2>"$2.err" || { cat "$2.err"; exit 1; }
}
echo
starts 30 "$T/starts"
starts 0 "$T/starts0"
snap_ms=() cp_ms=() roll_ms=() cprestore_ms=() stat_ms=()
for ((i = 0; i < RUNS; i++)); do
	timed snap_ms "$AB" snapshot bench "s$i" || exit 1
	timed cp_ms cp -a "$P" "$T/copy$i" || exit 1
	sync # untimed: the copy's write-back must not land on the next measurement
	timed roll_ms "$AB" rollback bench "s$i" || exit 1
	timed cprestore_ms restore_copy "$T/copy$i" || exit 1
	rm -rf "$T/copy$i" "$T/restore"
	sync
	timed stat_ms "$AB" diff bench --stat || exit 1
done
snap=$(printf '%s\n' "${snap_ms[@]}" | median)
cpa=$(printf '%s\n' "${cp_ms[@]}" | median)
roll=$(printf '%s\n' "${roll_ms[@]}" | median)
cpr=$(printf '%s\n' "${cprestore_ms[@]}" | median)
stat=$(printf '%s\n' "${stat_ms[@]}" | median)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{print a/b}'; }
printf '\n%-46s %10s %12s %8s\n' "operation (median ms)" "agentbox" "plain copy" "ratio"
printf '%-46s %10.2f %12.2f %7.0fx\n' "snapshot vs cp -a of the project" "$snap" "$cpa" "$(ratio "$cpa" "$snap")"
printf '%-46s %10.2f %12.2f %7.0fx\n' "rollback vs cp -a of the project" "$roll" "$cpa" "$(ratio "$cpa" "$roll")"
printf '%-46s %10.2f %12.2f %7.0fx\n' "rollback vs a cached copy copied back" "$roll" "$cpr" "$(ratio "$cpr" "$roll")"
printf '%-46s %10.2f %12s\n' "diff --stat" "$stat" "-"

awk '!/^#/ {printf "%-34s median %7.2f ms  p10 %7.2f  p90 %7.2f\n", "start-up " $1 " (spaced)", $4/1000, $5/1000, $6/1000}' "$T/starts"
awk '!/^#/ {printf "%-34s median %7.2f ms  p10 %7.2f  p90 %7.2f\n", "start-up " $1 " (back-to-back)", $4/1000, $5/1000, $6/1000}' "$T/starts0"
rw=$(awk '$1=="rw" {print $4/1000}' "$T/starts")
cow=$(awk '$1=="cow" {print $4/1000}' "$T/starts")
again=$(awk '$1=="cow-again" {print $4/1000}' "$T/starts")
rw0=$(awk '$1=="rw" {print $4/1000}' "$T/starts0")
again0=$(awk '$1=="cow-again" {print $4/1000}' "$T/starts0")
changed=$(awk '$1=="cow-100-changes" {print $4/1000}' "$T/starts")
printf 'verdict: snapshot %.0fx and rollback %.0fx faster than cp -a of the project (target 20x); diff --stat %.1f ms (target 100 ms);\n' \
	"$(ratio "$cpa" "$snap")" "$(ratio "$cpa" "$roll")" "$stat"
printf '         rollback %.0fx faster than copying a cached copy back into an empty directory (the strictest)\n' \
	"$(ratio "$cpr" "$roll")"
# paired LABEL RUNS-FILE: the median, in ms, of LABEL's wall time minus that of the rw run
# in the same round (the rows take turns, so each pair ran under the same conditions and
# a slow stretch of the machine cancels out).
paired() {
	awk -v want="$1" '$1 == "rw" { rw[++nr] = $2 } $1 == want { x[++nx] = $2 }
		END { n = nr < nx ? nr : nx; for (i = 1; i <= n; i++) print (x[i] - rw[i]) / 1000 }' "$2" | median
}
printf '         cow start-up %+.2f ms over a plain bind (new sandbox), %+.2f ms (existing one) (target +1 ms);\n' \
	"$(awk -v a="$cow" -v b="$rw" 'BEGIN{print a-b}')" "$(awk -v a="$again" -v b="$rw" 'BEGIN{print a-b}')"
printf '         paired by round: %+.2f ms (new sandbox), %+.2f ms (existing one); back-to-back: %+.2f ms, %+.2f ms\n' \
	"$(paired cow "$T/starts.runs")" "$(paired cow-again "$T/starts.runs")" \
	"$(paired cow "$T/starts0.runs")" "$(paired cow-again "$T/starts0.runs")"
printf '         back-to-back runs of one sandbox %+.2f ms\n' "$(awk -v a="$again0" -v b="$rw0" 'BEGIN{print a-b}')"
printf '         the sandbox with 100 changes: %+.2f ms by medians, %+.2f ms paired by round, %+.2f ms back-to-back (paired)\n' \
	"$(awk -v a="$changed" -v b="$rw" 'BEGIN{print a-b}')" "$(paired cow-100-changes "$T/starts.runs")" \
	"$(paired cow-100-changes "$T/starts0.runs")"
