#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [--quick] [--variants]
#
# Start-up time and per-syscall cost of agentbox, measured side by side with bare
# execution and with the peers that are installed (bwrap, crun, firejail, runsc), all in
# this one run. Prints medians and ratios; it is not a pass/fail test, although it exits 1
# when agentbox itself could not be measured. It installs nothing: a missing or broken
# peer is reported as "skipped" with the reason. See bench/README.md.
set -u
set -o pipefail

prog=bench
usage() {
	cat <<'EOF'
usage: bench/run.sh [BUILD_DIR] [--quick] [--variants]
  BUILD_DIR    holds agentbox and probe (default: build)
  --quick      a fast smoke run (20 start-ups, 3 syscall runs of 200000 calls)
  --variants   also time agentbox with --seccomp strict and --seccomp unconfined
environment:
  BENCH_RUNS            timed start-ups per command (default 200; --quick 20)
  BENCH_WARMUP          untimed start-ups per command first (default 10; --quick 2)
  BENCH_SYSCALL_RUNS    syscall-bench runs per sandbox (default 10; --quick 3)
  BENCH_SYSCALL_CALLS   getppid calls per syscall-bench run (default 2000000; --quick 200000)
  BENCH_PEERS           peers to try (default "bwrap crun firejail runsc"; empty: none)
  BENCH_TIMEOUT         seconds before one run is killed (default 60)
  BENCH_TMPDIR          where the temporary workspace goes (default $TMPDIR or /tmp)
  BENCH_RAW             a file to keep every timed start-up in ("label wall_us cpu_us")
EOF
}

B=""
QUICK=0
VARIANTS=0
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
	--variants) VARIANTS=1 ;;
	-h | --help) usage; exit 0 ;;
	-*) echo "$prog: unknown option '$a'" >&2; usage >&2; exit 2 ;;
	*)
		if [ -n "$B" ]; then
			echo "$prog: one build directory only" >&2; exit 2
		fi
		B=$a
		;;
	esac
done
B=${B:-build}
if [ ! -d "$B" ]; then
	echo "$prog: build directory '$B' does not exist (run make first)" >&2
	exit 2
fi
B=$(cd "$B" && pwd)
SRC=$(cd "$(dirname "$0")" && pwd)

if [ "$QUICK" = 1 ]; then
	d_runs=20 d_warm=2 d_scruns=3 d_calls=200000
else
	d_runs=200 d_warm=10 d_scruns=10 d_calls=2000000
fi
RUNS=${BENCH_RUNS:-$d_runs}
WARMUP=${BENCH_WARMUP:-$d_warm}
SC_RUNS=${BENCH_SYSCALL_RUNS:-$d_scruns}
SC_CALLS=${BENCH_SYSCALL_CALLS:-$d_calls}
TIMEOUT=${BENCH_TIMEOUT:-60}
PEERS=${BENCH_PEERS-bwrap crun firejail runsc}
for v in RUNS:BENCH_RUNS:1 WARMUP:BENCH_WARMUP:0 SC_RUNS:BENCH_SYSCALL_RUNS:1 \
	SC_CALLS:BENCH_SYSCALL_CALLS:1 TIMEOUT:BENCH_TIMEOUT:1; do
	IFS=: read -r name env min <<<"$v"
	val=${!name}
	case $val in
	'' | *[!0-9]*) echo "$prog: $env must be a whole number, not '$val'" >&2; exit 2 ;;
	esac
	if [ ${#val} -gt 9 ] || [ "$val" -lt "$min" ]; then
		echo "$prog: $env must be between $min and 999999999" >&2; exit 2
	fi
done

# ---- scratch space, cleaned on any exit --------------------------------------------------

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/agentbox-bench.XXXXXX") || exit 2
HOLDER_PID=""
TIMEIT_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$TIMEIT_PID" ]; then
		kill -TERM "$TIMEIT_PID" 2>/dev/null
		wait "$TIMEIT_PID" 2>/dev/null
	fi
	if [ -n "$HOLDER_PID" ]; then
		kill "$HOLDER_PID" 2>/dev/null
		wait "$HOLDER_PID" 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

WS=$T/ws # the workspace agentbox runs in
mkdir -p "$WS" "$T/err"

# ---- the timer -----------------------------------------------------------------------------

# Built next to agentbox; in the scratch directory when the build tree is not ours to write.
TIMEIT=$B/bench/timeit
if [ ! -x "$TIMEIT" ] || [ "$SRC/timeit.c" -nt "$TIMEIT" ]; then
	if ! { mkdir -p "$B/bench" && [ -w "$B/bench" ]; } 2>/dev/null; then
		TIMEIT=$T/timeit
	fi
	if ! ${CC:-cc} -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$TIMEIT" "$SRC/timeit.c"; then
		echo "$prog: cannot compile $SRC/timeit.c" >&2
		exit 2
	fi
fi

# ---- helpers ---------------------------------------------------------------------------------

# first_line FILE: the first useful line of an error log, for a "skipped: REASON" line.
# The command's own words come first; timeit's "run failed: exit status N" is the fallback.
first_line() {
	local line
	line=$(grep -v '^timeit: ' "$1" 2>/dev/null | tr -d '\r' | grep -m1 '[^[:space:]]')
	[ -n "$line" ] || line=$(sed -n 's/^timeit: [^:]*: //p' "$1" 2>/dev/null | head -n1)
	[ -n "$line" ] || line="failed without a message"
	line=$(printf '%s' "$line" | sed 's/^[[:space:]]*//')
	printf '%.160s' "$line"
}

# precheck LABEL TIMEIT-SPEC...: runs the spec once; 0 when it succeeded. The error log is
# left in $T/err/LABEL.
precheck() {
	local label=$1
	shift
	: >"$T/err/$label"
	"$TIMEIT" -r 1 -w 0 -t "$TIMEOUT" -e "$T/err/$label" "@$label" "$@" \
		>/dev/null 2>>"$T/err/$label" </dev/null
}

SPECS=()      # the start-up specs, joined by "::" for one interleaved timeit
NOTES=()      # footnotes under the start-up table
SKIPPED=()    # "name: skipped: reason" lines
add_spec() {
	[ ${#SPECS[@]} -gt 0 ] && SPECS+=("::")
	SPECS+=("$@")
}
skip() {
	SKIPPED+=("$1: skipped: $2")
}

have() { command -v "$1" >/dev/null 2>&1; }
peer_wanted() { case " $PEERS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- what is being measured, where ---------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
cgmode="cgroup v1"
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
	cgmode="cgroup v2"
elif [ -d /sys/fs/cgroup/unified ]; then
	cgmode="hybrid cgroups"
fi
echo "agentbox bench: every command below ran in this one session, interleaved"
echo "host: Linux $(uname -r) $(uname -m), $(nproc) CPUs (${cpu_model:-unknown CPU}), uid $(id -u), $cgmode"
# Other work on the machine makes every figure noisy; say so rather than hide it.
busy_check() {
	local load
	load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null) || return 0
	awk -v l="$load" -v n="$(nproc)" -v w="$1" 'BEGIN {
		if (l > n / 2) printf "warning: load average %s on %d CPUs %s: other work is running, expect noisy figures\n", l, n, w }'
}
busy_check "at start"
echo "start-up: $RUNS timed runs per command after $WARMUP untimed, round-robin;" \
	"syscall: $SC_RUNS runs of $SC_CALLS getppid calls per sandbox"
vers=()
for p in bwrap crun firejail runsc; do
	have "$p" || continue
	v=$("$p" --version 2>/dev/null </dev/null | head -n1)
	[ -n "$v" ] && vers+=("$v")
done
if [ ${#vers[@]} -gt 0 ]; then
	(IFS=,; echo "peers: ${vers[*]}" | sed 's/,/, /g')
fi
echo

# All commands run from the workspace directory: agentbox takes it as its workspace.
cd "$WS" || exit 2

# ---- start-up candidates ---------------------------------------------------------------------

if precheck true /bin/true; then
	add_spec @true /bin/true
else
	echo "$prog: even /bin/true fails here: $(first_line "$T/err/true")" >&2
	exit 2
fi

AB_OK=0
AB_RUN=() # how agentbox runs a command, for the syscall part too
if [ ! -x "$B/agentbox" ]; then
	skip agentbox "$B/agentbox not found (run make first)"
else
	# The workspace as a plain bind: none of the peers has a copy-on-write layer, whose
	# cost bench/workspace.sh measures on its own.
	if precheck agentbox "$B/agentbox" run -q --workspace-mode rw -- /bin/true; then
		AB_RUN=("$B/agentbox" run -q --workspace-mode rw --)
	elif precheck agentbox "$B/agentbox" run -q -- /bin/true; then
		AB_RUN=("$B/agentbox" run -q --) # a build without workspace modes
	fi
	if [ ${#AB_RUN[@]} -gt 0 ]; then
		AB_OK=1
		add_spec @agentbox "${AB_RUN[@]}" /bin/true
		if [ "$VARIANTS" = 1 ]; then
			# the same, with only the seccomp layer changed
			AB_BASE=("${AB_RUN[@]:0:${#AB_RUN[@]}-1}")
			for m in strict unconfined; do
				if precheck "agentbox-$m" "${AB_BASE[@]}" --seccomp "$m" -- /bin/true; then
					add_spec "@agentbox:seccomp=$m" "${AB_BASE[@]}" --seccomp "$m" -- /bin/true
				else
					skip "agentbox --seccomp $m" "$(first_line "$T/err/agentbox-$m")"
				fi
			done
		fi
	else
		skip agentbox "$(first_line "$T/err/agentbox")"
	fi
fi

BWRAP=(bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp)
BWRAP_OK=0
if peer_wanted bwrap; then
	if ! have bwrap; then
		skip bwrap "not installed (bubblewrap)"
	elif precheck bwrap "${BWRAP[@]}" /bin/true; then
		BWRAP_OK=1
		add_spec @bwrap "${BWRAP[@]}" /bin/true
	else
		skip bwrap "$(first_line "$T/err/bwrap")"
	fi
fi

# crun needs an OCI bundle: the stock rootless spec (user, mount, pid, ipc, uts, network
# namespaces; no capabilities beyond three; read-only root) running the host's own
# /bin/true, copied into a private rootfs together with the libraries it loads.
make_crun_bundle() {
	local dir=$1 f
	mkdir -p "$dir/rootfs/bin" || return 1
	cp -L /bin/true "$dir/rootfs/bin/true" || return 1
	for f in $(ldd /bin/true 2>/dev/null | grep -o '/[^ ]*'); do
		mkdir -p "$dir/rootfs$(dirname "$f")" && cp -L "$f" "$dir/rootfs$f" || return 1
	done
	(cd "$dir" && crun spec --rootless) || return 1
	sed -i -e 's/"terminal": *true/"terminal": false/' \
		-e 's|^\([[:space:]]*\)"sh"$|\1"/bin/true"|' "$dir/config.json" || return 1
	grep -q '"terminal": *false' "$dir/config.json" && grep -q '"/bin/true"' "$dir/config.json"
}

# A process whose mount namespace hides the cgroup2 controller list from crun: crun refuses
# hybrid cgroup hierarchies whenever /sys/fs/cgroup/unified lists a controller, even with
# --cgroup-manager=disabled. timeit enters that namespace with setns() before exec, which
# costs microseconds, so crun's own start-up is what gets measured.
start_holder() {
	: >"$T/empty"
	local uflag=""
	HOLDER_KIND="mount "
	if [ "$(id -u)" != 0 ]; then
		uflag=-Ur
		HOLDER_KIND="user and mount "
	fi
	# shellcheck disable=SC2016 # $1 and $2 belong to the inner shell
	unshare $uflag -m --propagation private sh -c \
		'mount --bind "$1" /sys/fs/cgroup/unified/cgroup.controllers && : >"$2" && exec sleep 1000000' \
		sh "$T/empty" "$T/holder.ready" </dev/null >/dev/null 2>"$T/err/holder" &
	HOLDER_PID=$!
	local i
	for i in $(seq 50); do
		[ -e "$T/holder.ready" ] && return 0
		kill -0 "$HOLDER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill "$HOLDER_PID" 2>/dev/null
	wait "$HOLDER_PID" 2>/dev/null
	HOLDER_PID=""
	return 1
}

if peer_wanted crun; then
	if ! have crun; then
		skip crun "not installed"
	elif ! make_crun_bundle "$T/crun" 2>"$T/err/crun-bundle"; then
		skip crun "cannot build an OCI bundle: $(first_line "$T/err/crun-bundle")"
	else
		CRUN=(crun --root "$T/crun-state" --cgroup-manager=disabled run --bundle "$T/crun" "ab-bench-{i}")
		if precheck crun "${CRUN[@]}"; then
			add_spec @crun "${CRUN[@]}"
		else
			reason=$(first_line "$T/err/crun")
			if [[ $reason == *"hybrid mode"* ]] && start_holder; then
				NS=()
				[ "$(id -u)" != 0 ] && NS+=("+ns=/proc/$HOLDER_PID/ns/user")
				NS+=("+ns=/proc/$HOLDER_PID/ns/mnt")
				if precheck crun-hidden "${NS[@]}" "${CRUN[@]}"; then
					add_spec "@crun*" "${NS[@]}" "${CRUN[@]}"
					NOTES+=("crun*: crun refuses this host as is (\"$reason\"), so it runs in a ${HOLDER_KIND}namespace where /sys/fs/cgroup/unified/cgroup.controllers reads empty")
				else
					skip crun "$reason; with the controller list hidden: $(first_line "$T/err/crun-hidden")"
				fi
			else
				skip crun "$reason"
			fi
		fi
	fi
fi

if peer_wanted firejail; then
	FIREJAIL=(firejail --quiet --noprofile --net=none /bin/true)
	if ! have firejail; then
		skip firejail "not installed"
	elif precheck firejail "${FIREJAIL[@]}"; then
		add_spec @firejail "${FIREJAIL[@]}"
	else
		skip firejail "$(first_line "$T/err/firejail")"
	fi
fi

if peer_wanted runsc; then
	RUNSC=(runsc --rootless --network=none --root "$T/runsc-state" "do" /bin/true)
	if ! have runsc; then
		skip runsc "not installed (gVisor)"
	elif precheck runsc "${RUNSC[@]}"; then
		add_spec @runsc "${RUNSC[@]}"
	else
		skip runsc "$(first_line "$T/err/runsc")"
	fi
fi

# ---- start-up ---------------------------------------------------------------------------------

echo "== start-up: wall time of one sandboxed /bin/true, fork to reap (ms) =="
# in the background, so that a signal to this script stops the timer at once
RAW=()
[ -n "${BENCH_RAW:-}" ] && RAW=(-d "$BENCH_RAW")
"$TIMEIT" -r "$RUNS" -w "$WARMUP" -t "$TIMEOUT" -e "$T/err/startup" "${RAW[@]+"${RAW[@]}"}" "${SPECS[@]}" \
	>"$T/startup.txt" 2>>"$T/err/startup" </dev/null &
TIMEIT_PID=$!
wait "$TIMEIT_PID"
trc=$?
TIMEIT_PID=""
if [ $trc -ge 2 ]; then
	echo "$prog: timeit failed ($trc): $(first_line "$T/err/startup")" >&2
	exit 2
fi
awk -v notes="$(printf '%s\n' "${NOTES[@]+"${NOTES[@]}"}")" '
	/^#/ { next }
	{ n++; name[n] = $1; runs[n] = $2; fail[n] = $3; med[n] = $4; p10[n] = $5; p90[n] = $6; cpu[n] = $9
	  if ($1 == "true") base = $4
	  if ($1 == "bwrap") bw = $4 }
	function ratio(a, b) { return (b > 0 && a != "-") ? sprintf("%.2f", a / b) : "-" }
	function ms(x) { return x == "-" ? "-" : sprintf("%.2f", x / 1000) }
	END {
		printf "%-28s %9s %9s %9s %8s %8s %8s\n", "name", "median", "p10", "p90", "x true", "x bwrap", "cpu"
		for (i = 1; i <= n; i++) {
			extra = fail[i] > 0 ? sprintf("  (%d of %d runs failed)", fail[i], fail[i] + runs[i]) : ""
			printf "%-28s %9s %9s %9s %8s %8s %8s%s\n", name[i], ms(med[i]), ms(p10[i]), ms(p90[i]),
				ratio(med[i], base), ratio(med[i], bw), ms(cpu[i]), extra
		}
		if (notes != "") print notes
	}' "$T/startup.txt"
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do
	echo "$s"
done
if [ $trc -ne 0 ]; then
	echo "note: some runs failed, first reason: $(first_line "$T/err/startup")"
fi

med_of() { awk -v n="$1" '$1 == n && $4 != "-" { print $4 }' "$T/startup.txt"; }
ab_med=$(med_of agentbox)
bw_med=$(med_of bwrap)
if [ -z "$ab_med" ]; then
	echo "verdict: agentbox start-up not measured"
	AB_OK=0
elif [ -z "$bw_med" ]; then
	echo "verdict: agentbox start-up $(awk -v a="$ab_med" 'BEGIN { printf "%.2f", a / 1000 }') ms median; bwrap not available to compare"
else
	awk -v a="$ab_med" -v b="$bw_med" 'BEGIN {
		d = (a - b) / 1000
		printf "verdict: agentbox start-up %.2f ms vs bwrap %.2f ms median: %.2fx bwrap, %.2f ms %s\n",
			a / 1000, b / 1000, a / b, d < 0 ? -d : d, d <= 0 ? "faster" : "slower"
	}'
fi
echo

# ---- cost per syscall ------------------------------------------------------------------------

echo "== syscall cost: getppid inside each sandbox, probe syscall-bench $SC_CALLS (ns/call) =="
SC_OK=0
if [ ! -x "$B/probe" ]; then
	echo "syscall: skipped: $B/probe not found (make $(basename "$B")/probe)"
else
	cp "$B/probe" "$WS/probe" || exit 2
	P=("$WS/probe" syscall-bench "$SC_CALLS")
	SC_NAMES=(bare)
	SC_CMDS=("${P[*]@Q}")
	if [ $AB_OK = 1 ]; then
		SC_NAMES+=(agentbox)
		SC_CMDS+=("${AB_RUN[*]@Q} ${P[*]@Q}")
		if [ "$VARIANTS" = 1 ]; then
			for m in strict unconfined; do
				if awk -v n="agentbox:seccomp=$m" '$1 == n { f = 1 } END { exit !f }' "$T/startup.txt"; then
					SC_NAMES+=("agentbox:seccomp=$m")
					SC_CMDS+=("${AB_BASE[*]@Q} --seccomp $m -- ${P[*]@Q}")
				fi
			done
		fi
	fi
	if [ $BWRAP_OK = 1 ]; then
		SC_NAMES+=(bwrap)
		# the workspace may sit under /tmp, which bwrap replaces with a tmpfs
		SC_CMDS+=("${BWRAP[*]@Q} --ro-bind ${WS@Q} ${WS@Q} ${P[*]@Q}")
	fi
	n=${#SC_NAMES[@]}
	for ((r = 0; r < SC_RUNS; r++)); do
		for ((k = 0; k < n; k++)); do
			i=$(((r + k) % n))
			name=${SC_NAMES[$i]}
			out=$(eval "timeout --foreground $TIMEOUT ${SC_CMDS[$i]}" </dev/null 2>"$T/err/sc-last")
			val=$(printf '%s\n' "$out" | sed -n 's/^ns_per_call=//p' | head -n1)
			if [ -n "$val" ]; then
				echo "$val" >>"$T/sc-$i"
			elif [ ! -e "$T/err/sc-$i" ]; then
				{ cat "$T/err/sc-last"; printf '%s\n' "$out"; } >"$T/err/sc-$i"
			fi
		done
	done
	printf '%-28s %9s %9s %9s %8s %10s\n' name median min max "x bare" "x bare min"
	base="" base_min=""
	for ((i = 0; i < n; i++)); do
		name=${SC_NAMES[$i]}
		if [ ! -s "$T/sc-$i" ]; then
			echo "$name: skipped: $(first_line "$T/err/sc-$i")"
			continue
		fi
		stats=$(sort -g "$T/sc-$i" | awk '{ v[NR] = $1 } END {
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.2f %.2f %.2f %d", m, v[1], v[NR], NR }')
		read -r med min max cnt <<<"$stats"
		if [ "$i" = 0 ]; then
			base=$med
			base_min=$min
		fi
		extra=""
		[ "$cnt" -lt "$SC_RUNS" ] && extra="  ($((SC_RUNS - cnt)) of $SC_RUNS runs failed: $(first_line "$T/err/sc-$i"))"
		printf '%-28s %9s %9s %9s %8s %10s%s\n' "$name" "$med" "$min" "$max" \
			"$(awk -v a="$med" -v b="$base" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')" \
			"$(awk -v a="$min" -v b="$base_min" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }')" "$extra"
		if [ "$name" = agentbox ]; then
			SC_OK=1
			ab_ns=$med
			ab_min=$min
		fi
	done
	if [ $SC_OK = 1 ] && [ -n "$base" ]; then
		awk -v a="$ab_ns" -v b="$base" -v am="$ab_min" -v bm="$base_min" 'BEGIN {
			r = a / b
			printf "verdict: agentbox %.2f ns/call vs bare %.2f median: %.3fx (%+.1f%%; best runs %+.1f%%), target within 5%%: %s\n",
				a, b, r, (r - 1) * 100, (am / bm - 1) * 100, r <= 1.05 ? "met" : "NOT met"
		}'
	else
		echo "verdict: agentbox syscall cost not measured"
	fi
fi

busy_check "at the end"
[ $AB_OK = 1 ] && [ $SC_OK = 1 ] && exit 0
exit 1
