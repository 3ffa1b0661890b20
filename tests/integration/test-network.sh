#!/bin/bash
# The network: loopback only by default, the host's network (with a warning) on request.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# A listener on the host's loopback, for the whole test.
"$PROBE" listen 127.0.0.1 0 60 >"$T/listener.out" 2>&1 &
listener=$!
AB_BG_PIDS+=("$listener")
if ! wait_for_line "$T/listener.out" '^port=' 5; then
	echo "Bail out! the host listener did not start: $(cat "$T/listener.out")"
	exit 1
fi
port=$(sed -n 's/^port=//p' "$T/listener.out")

# The test can fail: the host reaches its own listener.
host_connect=$("$PROBE" connect 127.0.0.1 "$port")
if [ "$host_connect" = connect=OK ]; then
	pass "the host reaches its listener on 127.0.0.1:$port"
else
	fail "the host reaches its listener on 127.0.0.1:$port" "$host_connect"
fi

# ---- default: a private namespace with loopback only ----
box -- "$P" ifaces
expect_rc "probe ifaces runs" 0
expect_line "loopback is there" "iface=lo"
expect_line "it is the only interface" "count=1"

box -- "$P" connect 127.0.0.1 "$port"
expect_value_not_in "the host's loopback listener is unreachable" connect OK

box -- "$P" connect 1.1.1.1 53
expect_value_not_in "the outside world is unreachable" connect OK

# Loopback inside works: a listener and a client, both in the sandbox.
box -- sh -c "\"$P\" listen 127.0.0.1 45123 3 & sleep 0.3; \"$P\" connect 127.0.0.1 45123"
expect_line "the sandbox's own loopback works" "connect=OK"

# ---- --network host ----
host_count=$("$PROBE" ifaces | sed -n 's/^count=//p')
box --network host -- "$P" ifaces
expect_rc "--network host runs" 0
expect_line "--network host shows the host's interfaces" "count=$host_count"
if err_has_re '[Ww]arn|WARN' && err_has_re 'network|host'; then
	pass "--network host warns"
else
	fail "--network host warns" "$(last_run)"
fi
box --network host -- "$P" connect 127.0.0.1 "$port"
expect_line "--network host reaches the host's loopback" "connect=OK"

done_testing
