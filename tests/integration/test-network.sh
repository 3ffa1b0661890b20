#!/bin/bash
# The network: loopback only by default, the host's network (with a warning) on request.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# A listener on the host's loopback, for the whole test.
"$PROBE" listen 127.0.0.1 0 60 >"$T/listener.out" 2>&1 &
AB_BG_PIDS+=("$!")
disown "$!" # no job notice when the cleanup kills it
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
box -- sh -c '"$1" listen 127.0.0.1 45123 5 >/dev/null &
	i=0
	while [ $i -lt 40 ]; do
		r=$("$1" connect 127.0.0.1 45123)
		[ "$r" = connect=OK ] && break
		sleep 0.1
		i=$((i + 1))
	done
	echo "$r"' sh "$P"
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

# ---- abstract unix sockets (a display server, a session bus) ----
# They belong to the network namespace: --network host would share them, unless
# Landlock scopes them to the sandbox.
abstract=@agentbox-test-$$-$RANDOM
"$PROBE" listen-unix "$abstract" 60 >"$T/unix-listener.out" 2>&1 &
AB_BG_PIDS+=("$!")
disown "$!"
if wait_for_line "$T/unix-listener.out" '^listen=OK' 5; then
	host_connect=$("$PROBE" connect-unix "$abstract")
	if [ "$host_connect" = connect=OK ]; then
		pass "the host reaches its abstract socket"
	else
		fail "the host reaches its abstract socket" "$host_connect"
	fi
	box -- "$P" connect-unix "$abstract"
	expect_value_not_in "the host's abstract socket is unreachable" connect OK
	box --network host -- "$P" connect-unix "$abstract"
	expect_value_not_in "--network host: the host's abstract socket is still unreachable" \
		connect OK
else
	fail "the host listens on an abstract socket" "$(cat "$T/unix-listener.out")"
fi

done_testing
