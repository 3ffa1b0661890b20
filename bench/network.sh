#!/usr/bin/env bash
# bench/network.sh BUILD_DIR [--quick]
#
# The egress proxy's cost, side by side in one run, against servers on the host's
# loopback (the probe's own: `probe serve-bytes`, `probe serve-echo`):
#   - throughput: one large HTTP download (1 GiB by default) with curl, bare on the
#     host, then inside agentbox through the proxy (HTTP_PROXY) and through the capture
#     (curl --noproxy '*': what a program that ignores the proxy variables gets), and, as
#     unfiltered baselines, inside agentbox --network host and bwrap --share-net;
#   - latency per new connection: `probe http-bench`, N fresh connections one after
#     another (connect, GET, whole response, close), median in microseconds, the same
#     rows; the added latency is the difference from bare;
#   - 1,000 concurrent connections through the proxy (captured, and through HTTP
#     CONNECT), all held open at once, each echoing its own line back.
# Prints medians and ratios against the targets (>= 70% of bare throughput, < 1 ms added
# per connection, 1,000 connections without error); not a pass/fail test, although it
# exits 1 when agentbox's filtered network could not be measured. Installs nothing.
set -u
set -o pipefail

prog=network.sh
usage() {
	cat <<'EOF'
usage: bench/network.sh [BUILD_DIR] [--quick]
  BUILD_DIR   holds agentbox and probe (default: build)
  --quick     256 MiB downloads, 1 round, 100 connections per latency run
environment:
  BENCH_NET_BYTES     bytes per download (default 1073741824; --quick 268435456)
  BENCH_NET_ROUNDS    download rounds, each row once per round (default 9; --quick 1)
  BENCH_NET_CONNS     connections per latency run (default 200; --quick 100)
  BENCH_NET_LAT_RUNS  latency runs per row (default 5; --quick 2)
  BENCH_NET_PARALLEL  concurrent echo connections (default 1000)
  BENCH_PEERS         peers to try (default "bwrap socat"; empty: none)
  BENCH_TIMEOUT       seconds before one command is killed (default 300)
  BENCH_TMPDIR        where the scratch directory goes (default $TMPDIR or /tmp)
EOF
}

B="" QUICK=0
for a in "$@"; do
	case $a in
	--quick) QUICK=1 ;;
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
if [ "$QUICK" = 1 ]; then
	d_bytes=268435456 d_rounds=1 d_conns=100 d_lat=2
else
	d_bytes=1073741824 d_rounds=9 d_conns=200 d_lat=5
fi
BYTES=${BENCH_NET_BYTES:-$d_bytes}
ROUNDS=${BENCH_NET_ROUNDS:-$d_rounds}
CONNS=${BENCH_NET_CONNS:-$d_conns}
LAT_RUNS=${BENCH_NET_LAT_RUNS:-$d_lat}
PARALLEL=${BENCH_NET_PARALLEL:-1000}
TIMEOUT=${BENCH_TIMEOUT:-300}
PEERS=${BENCH_PEERS-bwrap socat}
for v in BYTES:BENCH_NET_BYTES ROUNDS:BENCH_NET_ROUNDS CONNS:BENCH_NET_CONNS \
	LAT_RUNS:BENCH_NET_LAT_RUNS PARALLEL:BENCH_NET_PARALLEL TIMEOUT:BENCH_TIMEOUT; do
	IFS=: read -r name env <<<"$v"
	val=${!name}
	case $val in
	'' | *[!0-9]*) echo "$prog: $env must be a whole number, not '$val'" >&2; exit 2 ;;
	esac
	if [ ${#val} -gt 12 ] || [ "$val" -lt 1 ]; then
		echo "$prog: $env must be between 1 and 999999999999" >&2; exit 2
	fi
done

have() { command -v "$1" >/dev/null 2>&1; }
peer_wanted() { case " $PEERS " in *" $1 "*) return 0 ;; esac; return 1; }

if [ ! -x "$B/probe" ] || [ ! -x "$B/agentbox" ]; then
	echo "$prog: $B/agentbox and $B/probe are needed (run make first)" >&2
	exit 2
fi
if ! have curl; then
	echo "$prog: curl is needed (scripts/install-deps.sh test installs it)" >&2
	exit 2
fi

# ---- scratch space and servers, cleaned on any exit ------------------------------------------

T=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/agentbox-netbench.XXXXXX") || exit 2
chmod 755 "$T"
export AGENTBOX_DATA_DIR=$T/data AGENTBOX_RUN_DIR=$T/run
SERVER_PIDS=()
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	local p
	for p in "${SERVER_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
WS=$T/ws
mkdir -p "$WS" "$T/err"
P=$WS/probe
cp "$B/probe" "$P" || exit 2
cd "$WS" || exit 2

# start_server NAME PROBE-ARGS...: starts a probe server; sets PORT.
start_server() {
	local name=$1 i
	shift
	"$P" "$@" >"$T/$name.out" 2>&1 &
	SERVER_PIDS+=("$!")
	for i in $(seq 100); do
		PORT=$(sed -n 's/^port=//p' "$T/$name.out")
		[ -n "$PORT" ] && return 0
		sleep 0.05
	done
	echo "$prog: the $name server did not start: $(cat "$T/$name.out")" >&2
	exit 2
}
start_server bytes serve-bytes 0 "$BYTES" 7200
BPORT=$PORT
start_server echo serve-echo 0 7200
EPORT=$PORT

# first_line FILE: the first useful line of an error log, for a "skipped: REASON" line.
first_line() {
	local line
	line=$(tr -d '\r' <"$1" 2>/dev/null | grep -m1 '[^[:space:]]' | sed 's/^[[:space:]]*//')
	printf '%.160s' "${line:-failed without a message}"
}

# ---- what is compared --------------------------------------------------------------------------

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1)
echo "agentbox network bench: every command below ran in this one session, interleaved"
echo "host: Linux $(uname -r) $(uname -m), $(nproc) CPUs (${cpu_model:-unknown CPU}), uid $(id -u)"
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)
awk -v l="$load" -v n="$(nproc)" 'BEGIN { if (l > n / 2)
	printf "warning: load average %s on %d CPUs: other work is running, expect noisy figures\n", l, n }'
echo "servers: probe serve-bytes on 127.0.0.1:$BPORT, probe serve-echo on 127.0.0.1:$EPORT"
echo "         (the sandboxes reach them as bench.test, mapped with --add-host bench.test:127.0.0.1)"
echo

# A row: a name, and a prefix that runs a command there. Inside agentbox the name
# bench.test leads to the host's loopback through the proxy; the unfiltered rows use
# 127.0.0.1 directly.
AB=("$B/agentbox" run -q --workspace-mode rw)
FILTER=(--add-host bench.test:127.0.0.1 --allow bench.test --allow 127.0.0.1)
ROW_NAMES=() ROW_PREFIX=() ROW_HOST=() ROW_PORT=() ROW_MODE=() SKIPPED=()
add_row() { # NAME HOST MODE PREFIX...  (MODE: direct, proxy, capture)
	ROW_NAMES+=("$1")
	ROW_HOST+=("$2")
	ROW_PORT+=("$BPORT")
	ROW_MODE+=("$3")
	shift 3
	ROW_PREFIX+=("${*@Q}")
}
add_row bare 127.0.0.1 direct
if timeout "$TIMEOUT" "${AB[@]}" "${FILTER[@]}" -- "$P" http-get bench.test "$BPORT" /bytes/1 \
	>"$T/err/ab-check" 2>&1 && grep -q '^status=200$' "$T/err/ab-check"; then
	add_row "agentbox proxy" bench.test proxy "${AB[@]}" "${FILTER[@]}" --
	add_row "agentbox capture" bench.test capture "${AB[@]}" "${FILTER[@]}" --
	AB_OK=1
else
	SKIPPED+=("agentbox (filtered): skipped: $(grep -v '^addr=' "$T/err/ab-check" | first_line /dev/stdin)")
	AB_OK=0
fi
if timeout "$TIMEOUT" "${AB[@]}" --network host -- /bin/true >"$T/err/ab-host" 2>&1; then
	add_row "agentbox --network host" 127.0.0.1 direct "${AB[@]}" --network host --
else
	SKIPPED+=("agentbox --network host: skipped: $(first_line "$T/err/ab-host")")
fi
if peer_wanted bwrap; then
	# the workspace may sit under /tmp, which bwrap replaces with a tmpfs
	BWRAP=(bwrap --unshare-all --share-net --die-with-parent --ro-bind / / --dev /dev
		--proc /proc --tmpfs /tmp --ro-bind "$WS" "$WS")
	if ! have bwrap; then
		SKIPPED+=("bwrap --share-net: skipped: not installed (bubblewrap)")
	elif "${BWRAP[@]}" /bin/true >"$T/err/bwrap" 2>&1; then
		add_row "bwrap --share-net" 127.0.0.1 direct "${BWRAP[@]}"
	else
		SKIPPED+=("bwrap --share-net: skipped: $(first_line "$T/err/bwrap")")
	fi
fi
# socat: a plain userspace TCP relay on the host (1 MiB buffers, a process per
# connection), no sandbox and no policy: what relaying alone costs on this machine.
if peer_wanted socat; then
	if ! have socat; then
		SKIPPED+=("socat relay: skipped: not installed")
	else
		for _ in 1 2 3 4 5; do
			rport=$((20000 + RANDOM % 20000))
			socat -b 1048576 "TCP-LISTEN:$rport,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$BPORT" \
				2>"$T/err/socat" </dev/null &
			spid=$!
			sleep 0.2
			if kill -0 "$spid" 2>/dev/null && "$P" connect 127.0.0.1 "$rport" | grep -q '^connect=OK$'; then
				SERVER_PIDS+=("$spid")
				add_row "socat relay" 127.0.0.1 direct
				ROW_PORT[${#ROW_PORT[@]} - 1]=$rport
				break
			fi
			kill "$spid" 2>/dev/null
			wait "$spid" 2>/dev/null
			spid=""
		done
		[ -z "$spid" ] && SKIPPED+=("socat relay: skipped: $(first_line "$T/err/socat")")
	fi
fi
NROWS=${#ROW_NAMES[@]}

# in_row I CMD...: runs CMD in row I (a sandbox, or bare) with the time limit.
in_row() {
	local i=$1
	shift
	eval "timeout --foreground $TIMEOUT ${ROW_PREFIX[$i]} ${*@Q}" </dev/null
}

# median of the numbers on stdin
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit 1
		printf "%.1f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---- throughput --------------------------------------------------------------------------------

mib=$(awk -v b="$BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')
echo "== throughput: curl downloads $mib MiB from 127.0.0.1, $ROUNDS round(s), rows rotated (MB/s, 10^6 bytes) =="
for ((r = 0; r < ROUNDS; r++)); do
	for ((k = 0; k < NROWS; k++)); do
		i=$(((r + k) % NROWS))
		url="http://${ROW_HOST[$i]}:${ROW_PORT[$i]}/bytes/$BYTES"
		extra=()
		[ "${ROW_MODE[$i]}" = capture ] && extra=(--noproxy '*')
		out=$(in_row "$i" curl -sS -o /dev/null -w 'speed=%{speed_download} size=%{size_download}\n' \
			"${extra[@]+"${extra[@]}"}" "$url" 2>"$T/err/dl-last")
		speed=$(sed -n 's/^speed=\([0-9.]*\) size=\([0-9]*\)$/\1 \2/p' <<<"$out")
		if [ -n "$speed" ] && [ "${speed#* }" = "$BYTES" ]; then
			echo "${speed% *}" >>"$T/dl-$i"
		elif [ ! -e "$T/err/dl-$i" ]; then
			{ cat "$T/err/dl-last"; echo "$out"; } >"$T/err/dl-$i"
		fi
	done
done
printf '%-26s %10s %10s %10s %8s\n' name median best worst "x bare"
DL_BARE="" DL_PROXY="" DL_CAPTURE="" DL_SOCAT="" DB_BARE="" DB_PROXY="" DB_SOCAT=""
for ((i = 0; i < NROWS; i++)); do
	name=${ROW_NAMES[$i]}
	if [ ! -s "$T/dl-$i" ]; then
		echo "$name: failed: $(first_line "$T/err/dl-$i")"
		continue
	fi
	med=$(median <"$T/dl-$i")
	best=$(sort -g "$T/dl-$i" | tail -n1)
	worst=$(sort -g "$T/dl-$i" | head -n1)
	[ "$i" = 0 ] && DL_BARE=$med DB_BARE=$best
	[ "$name" = "agentbox proxy" ] && DL_PROXY=$med DB_PROXY=$best
	[ "$name" = "agentbox capture" ] && DL_CAPTURE=$med
	[ "$name" = "socat relay" ] && DL_SOCAT=$med DB_SOCAT=$best
	awk -v n="$name" -v m="$med" -v b="$best" -v w="$worst" -v base="$DL_BARE" -v cnt="$(wc -l <"$T/dl-$i")" -v want="$ROUNDS" 'BEGIN {
		printf "%-26s %10.1f %10.1f %10.1f %8s%s\n", n, m / 1e6, b / 1e6, w / 1e6,
			(base > 0 ? sprintf("%.2f", m / base) : "-"),
			(cnt < want ? sprintf("  (%d of %d rounds failed)", want - cnt, want) : "") }'
done

# ---- latency per new connection ---------------------------------------------------------------

echo
echo "== latency per new connection: probe http-bench, $CONNS connections one after another, $LAT_RUNS run(s) per row (us) =="
for ((r = 0; r < LAT_RUNS; r++)); do
	for ((k = 0; k < NROWS; k++)); do
		i=$(((r + k) % NROWS))
		args=("$P" http-bench "${ROW_HOST[$i]}" "${ROW_PORT[$i]}" /bytes/1 "$CONNS")
		[ "${ROW_MODE[$i]}" = proxy ] && args+=(127.0.0.1:3128)
		out=$(in_row "$i" "${args[@]}" 2>"$T/err/lat-last")
		m=$(sed -n 's/^median_us=//p' <<<"$out")
		e=$(sed -n 's/^errors=//p' <<<"$out")
		if [ -n "$m" ] && [ "$e" = 0 ]; then
			echo "$m $(sed -n 's/^p90_us=//p' <<<"$out")" >>"$T/lat-$i"
		elif [ ! -e "$T/err/lat-$i" ]; then
			{ cat "$T/err/lat-last"; grep -v '^[a-z0-9_]*_us=' <<<"$out"; } >"$T/err/lat-$i"
		fi
	done
done
printf '%-26s %10s %10s %10s %12s %12s\n' name median best p90 "added" "added best"
LAT_BARE="" LAT_PROXY="" LAT_CAPTURE="" LB_BARE="" LB_PROXY=""
for ((i = 0; i < NROWS; i++)); do
	name=${ROW_NAMES[$i]}
	if [ ! -s "$T/lat-$i" ]; then
		echo "$name: failed: $(first_line "$T/err/lat-$i")"
		continue
	fi
	med=$(cut -d' ' -f1 "$T/lat-$i" | median)
	best=$(cut -d' ' -f1 "$T/lat-$i" | sort -g | head -n1)
	p90=$(cut -d' ' -f2 "$T/lat-$i" | median)
	if [ "$i" = 0 ]; then
		LAT_BARE=$med LB_BARE=$best
	fi
	[ "$name" = "agentbox proxy" ] && LAT_PROXY=$med LB_PROXY=$best
	[ "$name" = "agentbox capture" ] && LAT_CAPTURE=$med
	awk -v n="$name" -v m="$med" -v b="$best" -v p="$p90" -v base="$LAT_BARE" -v bb="$LB_BARE" 'BEGIN {
		printf "%-26s %10.0f %10.0f %10.0f %12s %12s\n", n, m, b, p,
			(base != "" ? sprintf("%+.0f", m - base) : "-"), (bb != "" ? sprintf("%+.0f", b - bb) : "-") }'
done
echo "(median: over the runs, of each run's median; best: the lowest run median, the run least"
echo " disturbed by other work; added: the difference from bare's)"

# ---- concurrent connections -------------------------------------------------------------------

echo
echo "== $PARALLEL concurrent connections to an echo server, all open at once, each echoing its own line =="
printf '%-26s %10s %8s %8s %10s %10s  %s\n' name connected echoed errors setup_ms echo_ms first_error
CONC_ERR="" CONC_OK=0
conc_row() { # NAME ROW-INDEX ECHO-CONNS-ARGS...
	local name=$1 i=$2 out
	shift 2
	out=$(in_row "$i" "$@" 2>"$T/err/conc")
	local c e x s m f
	c=$(sed -n 's/^connected=//p' <<<"$out")
	e=$(sed -n 's/^echoed=//p' <<<"$out")
	x=$(sed -n 's/^errors=//p' <<<"$out")
	s=$(sed -n 's/^setup_ms=//p' <<<"$out")
	m=$(sed -n 's/^echo_ms=//p' <<<"$out")
	f=$(sed -n 's/^first_error=//p' <<<"$out")
	if [ -z "$c" ]; then
		echo "$name: failed: $( { cat "$T/err/conc"; echo "$out"; } | first_line /dev/stdin)"
		[[ $name == agentbox* ]] && CONC_ERR="${CONC_ERR:+$CONC_ERR; }$name not measured"
		return
	fi
	printf '%-26s %10s %8s %8s %10s %10s  %s\n' "$name" "$c" "$e" "$x" "$s" "$m" "${f:--}"
	if [[ $name == agentbox* ]]; then
		if [ "$x" = 0 ] && [ "$e" = "$PARALLEL" ]; then
			CONC_OK=$((CONC_OK + 1))
		else
			CONC_ERR="${CONC_ERR:+$CONC_ERR; }$name: errors=$x echoed=$e"
		fi
	fi
}
nofile=$((PARALLEL + 200))
conc_row bare 0 "$P" echo-conns 127.0.0.1 "$EPORT" "$PARALLEL"
if [ "$AB_OK" = 1 ]; then
	# the agentbox rows are 1 and 2; with a larger open files limit for the probe
	ROW_PREFIX[1]="${AB[*]@Q} --ulimit nofile=$nofile ${FILTER[*]@Q} --"
	conc_row "agentbox capture" 1 "$P" echo-conns bench.test "$EPORT" "$PARALLEL"
	conc_row "agentbox CONNECT" 1 "$P" echo-conns bench.test "$EPORT" "$PARALLEL" 127.0.0.1:3128
fi

# ---- verdicts ---------------------------------------------------------------------------------

echo
for s in "${SKIPPED[@]+"${SKIPPED[@]}"}"; do
	echo "$s"
done
echo "compared: bare is curl/probe on the host; 'agentbox proxy' and 'agentbox capture' go through the"
echo "egress proxy (policy, logging, read/write relay) from a loopback-only namespace; 'agentbox --network host'"
echo "and 'bwrap --share-net' share the host's network and filter nothing: they show what a sandbox costs"
echo "without a proxy, not a competing filter; 'socat relay' is a plain TCP relay on the host (no sandbox,"
echo "no policy, a process per connection): what one extra hop through user space costs here."
if [ "$AB_OK" != 1 ]; then
	echo "verdict: agentbox's filtered network not measured"
	exit 1
fi
awk -v p="$DL_PROXY" -v c="$DL_CAPTURE" -v b="$DL_BARE" -v pb="$DB_PROXY" -v bb="$DB_BARE" \
	-v s="$DL_SOCAT" -v sb="$DB_SOCAT" 'BEGIN {
	if (p == "" || b == "") { print "verdict: throughput not measured"; exit }
	printf "verdict: throughput through the proxy %.0f MB/s vs bare %.0f MB/s: %.2f of bare (target >= 0.70): %s",
		p / 1e6, b / 1e6, p / b, (p / b >= 0.70 ? "met" : "NOT met")
	printf "; best runs %.2f", pb / bb
	if (c != "") printf "; captured %.2f", c / b
	printf "\n"
	if (s != "")
		printf "         (a plain relay, socat, reaches %.2f of bare here; best runs %.2f)\n", s / b, sb / bb }'
awk -v p="$LAT_PROXY" -v c="$LAT_CAPTURE" -v b="$LAT_BARE" -v pb="$LB_PROXY" -v bb="$LB_BARE" 'BEGIN {
	if (p == "" || b == "") { print "verdict: latency not measured"; exit }
	printf "verdict: added latency per new connection %+.0f us through the proxy (target < 1000 us): %s",
		p - b, (p - b < 1000 ? "met" : "NOT met")
	if (pb != "" && bb != "") printf " (best runs %+.0f us)", pb - bb
	if (c != "") printf "; %+.0f us captured", c - b
	printf "\n" }'
if [ -z "$CONC_ERR" ] && [ "$CONC_OK" = 2 ]; then
	echo "verdict: $PARALLEL concurrent connections through the proxy, captured and CONNECT: errors=0: met"
else
	echo "verdict: $PARALLEL concurrent connections through the proxy: NOT met ($CONC_ERR)"
fi
