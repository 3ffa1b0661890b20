#!/usr/bin/env bash
# bench/lifecycle.sh BUILD_DIR [--quick]
#
# Sandboxes that live on their own, side by side in one run:
#   - a detached start (`run -d`, which returns once the sandbox runs and `ps` shows it)
#     against a foreground start of the same sandbox, and crun's detached start;
#   - the supervisor's memory per sandbox (RSS, and PSS: its share of pages it shares);
#   - `exec` into a running sandbox against a fresh `run`, and `crun exec`.
# Prints medians and ratios; not a pass/fail test. Needs no root; crun is optional.
set -u

B=${1:-build}
quick=${2:-}
B=$(cd "$B" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")" && pwd)
AB=$B/agentbox
RUNS=${BENCH_LIFE_RUNS:-100}
[ "$quick" = --quick ] && RUNS=20

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/agentbox-lifebench.XXXXXX") || exit 2
export AGENTBOX_DATA_DIR=$T/data AGENTBOX_RUN_DIR=$T/run
HOLDER_PID=""
cleanup() {
	local d
	for d in "$T"/run/*/; do
		[ -d "$d" ] && "$AB" rm --force "$(basename "$d")" >/dev/null 2>&1
	done
	if [ -d "$T/crun-state" ]; then
		for d in $(crun --root "$T/crun-state" list -q 2>/dev/null); do
			crun --root "$T/crun-state" delete -f "$d" >/dev/null 2>&1
		done
	fi
	[ -n "$HOLDER_PID" ] && kill "$HOLDER_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
mkdir -p "$T/ws" "$T/err"
cd "$T/ws" || exit 2

TIMEIT=$B/bench/timeit
if [ ! -x "$TIMEIT" ] || [ "$SRC/timeit.c" -nt "$TIMEIT" ]; then
	TIMEIT=$T/timeit
	${CC:-cc} -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$TIMEIT" "$SRC/timeit.c" || exit 2
fi

med() { awk -v l="$1" '$1 == l { print $4 / 1000 }' "$2"; }

echo "agentbox lifecycle bench: $(uname -r), $(nproc) CPUs, uid $(id -u), $RUNS runs each"

# ---- detached start vs foreground start -------------------------------------------------
# Spaced 30 ms apart: a detached sandbox's supervisor finishes /bin/true after run -d has
# returned, and must not be timed against the next start.
"$TIMEIT" -r "$RUNS" -w 3 -g 30 \
	@foreground "$AB" run -q --workspace-mode rw -- /bin/true :: \
	@detached "$AB" run -d -q --workspace-mode rw --name "d{i}" -- /bin/true \
	>"$T/starts" 2>"$T/err/starts" || { cat "$T/err/starts"; exit 1; }
fg=$(med foreground "$T/starts")
dt=$(med detached "$T/starts")
# run -d returns when the sandbox runs; ps shows it from then on.
"$AB" run -d -q --workspace-mode rw --name check -- sleep 5 >/dev/null
if "$AB" ps | grep -qE '^check +running'; then seen=yes; else seen=no; fi
"$AB" rm --force check >/dev/null 2>&1
for d in "$T"/run/d*/; do [ -d "$d" ] && "$AB" rm --force "$(basename "$d")" >/dev/null 2>&1; done

crun_dt=""
if command -v crun >/dev/null 2>&1; then
	# A bundle that runs a long sleep, as a detached container does.
	mkdir -p "$T/crun/rootfs/bin"
	for f in /bin/sleep /bin/true $(ldd /bin/sleep | grep -o '/[^ ]*'); do
		mkdir -p "$T/crun/rootfs$(dirname "$f")" && cp -L "$f" "$T/crun/rootfs$f"
	done
	(cd "$T/crun" && crun spec --rootless) &&
		sed -i -e 's/"terminal": *true/"terminal": false/' -e 's|^\([[:space:]]*\)"sh"$|\1"/bin/sleep", "600"|' \
			"$T/crun/config.json"
	# crun refuses this hybrid cgroup layout unless the controller list reads empty (see run.sh)
	: >"$T/empty"
	uflag=""
	[ "$(id -u)" != 0 ] && uflag=-Ur
	unshare $uflag -m --propagation private sh -c \
		'mount --bind "$1" /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; : >"$2"; exec sleep 100000' \
		sh "$T/empty" "$T/holder.ready" </dev/null >/dev/null 2>&1 &
	HOLDER_PID=$!
	for _ in $(seq 50); do [ -e "$T/holder.ready" ] && break; sleep 0.1; done
	CRUN=(+ns=/proc/$HOLDER_PID/ns/user +ns=/proc/$HOLDER_PID/ns/mnt crun --root "$T/crun-state" --cgroup-manager=disabled)
	[ "$(id -u)" = 0 ] && CRUN=(+ns=/proc/$HOLDER_PID/ns/mnt crun --root "$T/crun-state" --cgroup-manager=disabled)
	if "$TIMEIT" -r "$RUNS" -w 2 -g 30 @crun-detached "${CRUN[@]}" run --detach --bundle "$T/crun" "c{i}" \
		>"$T/crun-starts" 2>"$T/err/crun"; then
		crun_dt=$(med crun-detached "$T/crun-starts")
	else
		echo "crun: skipped: $(grep -v '^#' "$T/err/crun" | head -n 1)"
	fi
	for c in $(nsenter -t "$HOLDER_PID" -m crun --root "$T/crun-state" list -q 2>/dev/null); do
		nsenter -t "$HOLDER_PID" -m crun --root "$T/crun-state" delete -f "$c" >/dev/null 2>&1
	done
else
	echo "crun: skipped: not installed"
fi

echo
printf '%-34s %9s\n' "start (median ms)" ""
printf '%-34s %9.2f\n' "agentbox run (foreground)" "$fg"
printf '%-34s %9.2f   (%+.2f ms; ps shows it running: %s)\n' "agentbox run -d (detached)" "$dt" \
	"$(awk -v a="$dt" -v b="$fg" 'BEGIN { print a - b }')" "$seen"
[ -n "$crun_dt" ] && printf '%-34s %9.2f   (%.2fx agentbox -d)\n' "crun run --detach" "$crun_dt" \
	"$(awk -v a="$crun_dt" -v b="$dt" 'BEGIN { print a / b }')"

# ---- the supervisor's memory ------------------------------------------------------------
"$AB" run -d -q --name mem --workspace-mode rw -- sleep 60 >/dev/null
sup=$("$AB" inspect mem | sed -n 's/^  "supervisor_pid":\([0-9]*\).*/\1/p')
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$sup/status")
pss=$(awk '/^Pss:/ { print $2 }' "/proc/$sup/smaps_rollup")
priv=$(awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$sup/smaps_rollup")
echo
printf 'supervisor memory: RSS %d KiB, PSS %d KiB, private %d KiB\n' "$rss" "$pss" "$priv"

# ---- exec vs run ----------------------------------------------------------------------------
"$TIMEIT" -r "$RUNS" -w 3 \
	@exec "$AB" exec mem -- /bin/true :: \
	@run "$AB" run -q --workspace-mode rw -- /bin/true \
	>"$T/exec" 2>"$T/err/exec" || { cat "$T/err/exec"; exit 1; }
ex=$(med exec "$T/exec")
rn=$(med run "$T/exec")
crun_ex=""
if [ -n "$HOLDER_PID" ] && [ -n "$crun_dt" ]; then
	"$TIMEIT" -r 1 -w 0 @crun-detached "${CRUN[@]}" run --detach --bundle "$T/crun" cx >/dev/null 2>&1
	if "$TIMEIT" -r "$RUNS" -w 2 @crun-exec "${CRUN[@]}" exec cx /bin/true >"$T/crun-exec" 2>"$T/err/crun-exec"; then
		crun_ex=$(med crun-exec "$T/crun-exec")
	else
		echo "crun exec: skipped: $(grep -v '^#' "$T/err/crun-exec" | head -n 1)"
	fi
fi
"$AB" rm --force mem >/dev/null 2>&1
echo
printf '%-34s %9.2f\n' "agentbox exec" "$ex"
printf '%-34s %9.2f   (exec is %.2fx run)\n' "agentbox run" "$rn" "$(awk -v a="$ex" -v b="$rn" 'BEGIN { print a / b }')"
[ -n "$crun_ex" ] && printf '%-34s %9.2f   (%.2fx agentbox exec)\n' "crun exec" "$crun_ex" \
	"$(awk -v a="$crun_ex" -v b="$ex" 'BEGIN { print a / b }')"
echo
printf 'verdict: detached start %+.2f ms over foreground (target within 2 ms); supervisor PSS %d KiB (target under 2 MB);\n' \
	"$(awk -v a="$dt" -v b="$fg" 'BEGIN { print a - b }')" "$pss"
printf '         exec %.2f ms vs run %.2f ms (target: no slower)\n' "$ex" "$rn"
