#!/bin/bash
# Egress policy (--allow, --deny, --add-host, --network filtered; agentbox net log|allow|
# deny), against real servers on the host's loopback: an HTTP server, the same over
# HTTPS with a certificate made here, and a TCP echo server (tests/helpers/netserver.py),
# reached from inside the sandbox through names mapped with --add-host NAME:127.0.0.1.
# Loopback is a closed address class, so every policy that should reach them also says
# --allow 127.0.0.1.
#
#   sandbox                               host
#   curl (HTTP_PROXY) --> 127.0.0.1:3128 -+
#   curl --socks5     --> 127.0.0.1:1080 -+-> proxy --policy--> 127.0.0.1:{http,https,echo}
#   probe, node, curl --noproxy (captured)-+          \--> net.log (agentbox net log)
#   probe dns-query   --> :53 (answered by agentbox; nothing leaves)
#
# Covers: each way out for an allowed name (proxy variables, CONNECT, SOCKS5, captured
# HTTP and TLS, SNI and Host sniffing, Node's fetch); denials that are immediate and
# say so; wildcards and look-alikes; DNS for denied names; private, metadata and own
# addresses; live policy changes; UDP and ICMP; a flood of idle connections and a burst
# of hostile input; malformed rules; and a real `npm install` with and without the
# registry allowed.
# shellcheck disable=SC2016 # the scripts run in the sandbox expand their own arguments
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# ---- fixtures ---------------------------------------------------------------------------

NETSERVER=${NETSERVER:-}
for c in "$(dirname "$0")/../helpers/netserver.py" "$(dirname "$0")/netserver.py"; do
	[ -z "$NETSERVER" ] && [ -f "$c" ] && NETSERVER=$c
done
if [ -z "$NETSERVER" ] || ! command -v python3 >/dev/null || ! command -v openssl >/dev/null ||
	! command -v curl >/dev/null; then
	fail "the egress test has its tools" \
		"needs tests/helpers/netserver.py (or NETSERVER=), python3, openssl and curl" \
		"(scripts/install-deps.sh test installs them)"
	echo "Bail out! the egress test cannot run without its servers"
	done_testing
fi

# The certificate: for api.test and sub.allowed.test. In the workspace, which the
# sandbox sees at the same path.
CERT=$WS/test-ca.crt # not *.pem, which agentbox masks in a workspace
KEY=$T/key.pem
if ! openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=api.test \
	-addext subjectAltName=DNS:api.test,DNS:sub.allowed.test \
	-keyout "$KEY" -out "$CERT" >"$T/openssl.log" 2>&1; then
	echo "Bail out! openssl cannot make a certificate: $(tail -n 3 "$T/openssl.log")"
	exit 1
fi
chmod 0644 "$CERT"

CONNS=$T/conns.log # every connection the servers received
: >"$CONNS"
python3 "$NETSERVER" --cert "$CERT" --key "$KEY" --log "$CONNS" --timeout 1200 \
	>"$T/netserver.out" 2>&1 &
AB_BG_PIDS+=("$!")
disown "$!"
if ! wait_for_line "$T/netserver.out" '^ready ' 10; then
	echo "Bail out! netserver did not start: $(cat "$T/netserver.out")"
	exit 1
fi
read -r _ HTTP HTTPS ECHO < <(sed -n 's/^ready http=\([0-9]*\) https=\([0-9]*\) echo=\([0-9]*\)$/x \1 \2 \3/p' \
	"$T/netserver.out")

# The test can fail: the host reaches its own servers.
if [ "$(curl -sS --max-time 5 "http://127.0.0.1:$HTTP/hello" 2>&1)" = "hello from 127.0.0.1" ] &&
	[ "$(curl -sS --max-time 5 --cacert "$CERT" --resolve "api.test:$HTTPS:127.0.0.1" \
		"https://api.test:$HTTPS/hello" 2>&1)" = "hello from api.test" ]; then
	pass "the host reaches its own HTTP and HTTPS servers (ports $HTTP, $HTTPS; echo $ECHO)"
else
	fail "the host reaches its own HTTP and HTTPS servers" "$(cat "$T/netserver.out")"
fi

# get.sh TAG URL [CURL-OPTIONS...], run inside a sandbox: one request with curl (which
# reads the proxy variables unless told otherwise). Prints TAG_rc= TAG_code= TAG_time=
# (seconds) TAG_body= (the body's first line) TAG_err= (curl's first error line).
G=$WS/get.sh
cat >"$G" <<'EOF'
tag=$1 url=$2
shift 2
body=$(mktemp) err=$(mktemp)
w=$(curl -sS --max-time 15 -o "$body" -w 'code=%{http_code} time=%{time_total}' "$@" "$url" 2>"$err")
echo "${tag}_rc=$?"
for kv in $w; do echo "${tag}_$kv"; done
echo "${tag}_body=$(head -n 1 "$body")"
echo "${tag}_err=$(head -n 1 "$err")"
rm -f "$body" "$err"
EOF
chmod 0644 "$G"

# lt A B: the number A is below B.
lt() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && a + 0 < b + 0) }'
}

# expect_fast DESC KEY SECONDS: KEY's value (in seconds) is below SECONDS.
expect_fast() {
	local v
	v=$(out_value "$2")
	if lt "$v" "$3"; then
		pass "$1 (${v}s)"
	else
		fail "$1" "expected $2 below $3 s, got '$v'" "$(last_run)"
	fi
}

# expect_fast_ms DESC KEY MS: the same for a value in milliseconds.
expect_fast_ms() {
	local v
	v=$(out_value "$2")
	if lt "$v" "$3"; then
		pass "$1 (${v} ms)"
	else
		fail "$1" "expected $2 below $3 ms, got '$v'" "$(last_run)"
	fi
}

# expect_value_re DESC KEY REGEX: KEY's value matches the extended REGEX.
expect_value_re() {
	if out_value "$2" | grep -qE -- "$3"; then
		pass "$1"
	else
		fail "$1" "expected $2 to match /$3/" "$(last_run)"
	fi
}

# conns: how many lines the servers have logged so far.
conns() {
	wc -l <"$CONNS"
}

# netlog NAME: reads `agentbox net log NAME --json` into NETLOG (and NETLOG_RC).
netlog() {
	NETLOG=$("$AB" net log "$1" --json 2>&1)
	NETLOG_RC=$?
}

# log_count KEY=VALUE...: how many JSON lines of NETLOG have every KEY equal to VALUE
# (compared as text; KEY~TEXT: the value contains TEXT).
log_count() {
	python3 -c '
import json, sys
want = sys.argv[1:]
n = 0
for line in sys.stdin:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    ok = True
    for w in want:
        if "~" in w and ("=" not in w or w.index("~") < w.index("=")):
            k, v = w.split("~", 1)
            ok = ok and v in str(o.get(k, ""))
        else:
            k, v = w.split("=", 1)
            ok = ok and str(o.get(k, "")) == v
    n += ok
print(n)' "$@" <<<"$NETLOG"
}

# expect_log DESC KEY=VALUE...: NETLOG has such a line.
expect_log() {
	local desc=$1
	shift
	if [ "$NETLOG_RC" = 0 ] && [ "$(log_count "$@")" -gt 0 ]; then
		pass "$desc"
	else
		fail "$desc" "no line of 'agentbox net log --json' has: $*" \
			"exit $NETLOG_RC; the log:" "$(head -c 4000 <<<"$NETLOG")"
	fi
}

# The policy most runs use: api.test allowed, denied.test only mapped.
BASE=(--add-host api.test:127.0.0.1 --add-host denied.test:127.0.0.1 --allow 127.0.0.1
	--allow api.test)

# ---- is the feature there at all? --------------------------------------------------------

box "${BASE[@]}" -- "$P" env HTTP_PROXY
if [ "$AB_RC" != 0 ]; then
	fail "agentbox runs with --allow and --add-host" "$(last_run)"
	echo "Bail out! agentbox has no egress policy: every check below would fail"
	done_testing
fi
pass "agentbox runs with --allow and --add-host"

# ---- an allowed host through the proxy variables: HTTP, CONNECT, SOCKS5 ------------------

# The sandbox's lo carries everything the proxy relays to the sandbox: it takes packets of
# 256 KiB (lo's default is 64 KiB), set by agentbox in the filtered namespace only.
box "${BASE[@]}" -- "$P" link-gso lo
expect_line "a filtered sandbox's lo takes 256 KiB packets" "gso_max_size=262144"
case $(out_value gso_ipv4_max_size) in
absent) skip "IPv4 packets of 256 KiB on the sandbox's lo" "the kernel has no IPv4 size of its own (Linux < 6.3)" ;;
*) expect_line "IPv4 packets of 256 KiB on the sandbox's lo" "gso_ipv4_max_size=262144" ;;
esac
box -- "$P" link-gso lo
expect_line "--network none keeps lo's own packet size" "gso_max_size=65536"

sni_before=$(grep -c '^tls sni=api.test$' "$CONNS")
box --name via-proxy "${BASE[@]}" -- sh -c '
	"$1" env HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY http_proxy https_proxy all_proxy no_proxy
	sh "$2" http "http://api.test:$3/hello"
	sh "$2" https "https://api.test:$4/hello" --cacert "$5"
	sh "$2" socks "http://api.test:$3/hello" --socks5-hostname 127.0.0.1:1080
	env -u http_proxy -u HTTP_PROXY sh "$2" allproxy "http://api.test:$3/hello"
' sh "$P" "$G" "$HTTP" "$HTTPS" "$CERT"
expect_line "HTTP_PROXY points at the proxy" "HTTP_PROXY=http://127.0.0.1:3128"
expect_line "HTTPS_PROXY points at the proxy" "HTTPS_PROXY=http://127.0.0.1:3128"
expect_line "ALL_PROXY points at the SOCKS5 listener (names resolved by the proxy)" \
	"ALL_PROXY=socks5h://127.0.0.1:1080"
expect_value_re "NO_PROXY keeps loopback direct" NO_PROXY '(^|,)127\.0\.0\.1(,|$)'

if [ "$(out_value http_proxy)" = "$(out_value HTTP_PROXY)" ] &&
	[ "$(out_value https_proxy)" = "$(out_value HTTPS_PROXY)" ] &&
	[ "$(out_value all_proxy)" = "$(out_value ALL_PROXY)" ] &&
	[ "$(out_value no_proxy)" = "$(out_value NO_PROXY)" ] && [ -n "$(out_value http_proxy)" ]; then
	pass "the lower-case forms are set alike"
else
	fail "the lower-case forms are set alike" "$(last_run)"
fi
expect_line "curl with HTTP_PROXY: an allowed host answers" "http_body=hello from api.test"
expect_line "curl with HTTP_PROXY: status 200" "http_code=200"
expect_line "curl https through CONNECT: the server's own certificate, end to end" \
	"https_body=hello from api.test"
expect_line "curl --socks5-hostname: an allowed host answers" "socks_body=hello from api.test"
expect_line "curl with ALL_PROXY only (SOCKS5): an allowed host answers" \
	"allproxy_body=hello from api.test"
if [ "$(grep -c '^tls sni=api.test$' "$CONNS")" -gt "$sni_before" ]; then
	pass "the HTTPS server saw the name in the tunnelled ClientHello (SNI api.test)"
else
	fail "the HTTPS server saw the name in the tunnelled ClientHello (SNI api.test)" \
		"$(tail -n 20 "$CONNS")"
fi
netlog via-proxy
expect_log "net log: the HTTP request, allowed, via proxy" via=proxy host=api.test \
	port="$HTTP" decision=allow method=GET
expect_log "net log: the CONNECT, allowed, via proxy" via=proxy host=api.test port="$HTTPS" \
	decision=allow method=CONNECT
expect_log "net log: the SOCKS5 connection, allowed, via socks" via=socks host=api.test \
	port="$HTTP" decision=allow
if [ "$(python3 -c '
import json, sys
best = 0
for line in sys.stdin:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if o.get("method") == "CONNECT" and o.get("decision") == "allow":
        best = max(best, min(int(o.get("bytes_in", 0)), int(o.get("bytes_out", 0))))
print(best)' <<<"$NETLOG")" -gt 100 ]; then
	pass "net log: an allowed connection counts its bytes each way"
else
	fail "net log: an allowed connection counts its bytes each way" "$NETLOG"
fi

# Python's urllib takes the proxy from the same variables.
box --name urllib "${BASE[@]}" -- python3 -c '
import sys, urllib.request, urllib.error
print("ok_body=" + urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())
try:
    urllib.request.urlopen(sys.argv[2], timeout=10)
except urllib.error.HTTPError as e:
    print("deny_code=%d" % e.code)
    print("deny_body=" + e.read().decode().strip())
' "http://api.test:$HTTP/hello" "http://denied.test:$HTTP/hello"
expect_line "Python's urllib reaches an allowed host through HTTP_PROXY" "ok_body=hello from api.test"
expect_line "Python's urllib gets the 403 for a denied host" "deny_code=403"
expect_line "... whose body names the denial" \
	"deny_body=agentbox: egress to denied.test:$HTTP denied by policy (default deny: no rule allows it)"

# ---- programs that ignore the proxy variables: captured ----------------------------------

box --name capture "${BASE[@]}" -- sh -c '
	"$1" http-get api.test "$3" /hello | sed "s/^/raw_/"
	sh "$2" tls "https://api.test:$4/hello" --noproxy "*" --cacert "$5"
	sh "$2" sni "https://api.test:$4/hello" --noproxy "*" --cacert "$5" \
		--resolve "api.test:$4:203.0.113.9"
	sh "$2" host "http://api.test:$3/hello" --noproxy "*" --resolve "api.test:$3:203.0.113.9"
	sh "$2" snideny "https://denied.test:$4/hello" --noproxy "*" -k \
		--resolve "denied.test:$4:203.0.113.9"
	sh "$2" hostdeny "http://denied.test:$3/hello" --noproxy "*" \
		--resolve "denied.test:$3:203.0.113.9"
	"$1" http-get 203.0.113.9 "$3" /hello | sed "s/^/lit_/"
' sh "$P" "$G" "$HTTP" "$HTTPS" "$CERT"
expect_line "a raw socket client (probe http-get) reaches an allowed host" \
	"raw_body=hello from api.test"
expect_value_re "... through the sandbox's DNS: the name got an address in 198.18.0.0/15" \
	raw_addr '^198\.1[89]\.'
expect_line "curl --noproxy (captured TLS to the name's address) works end to end" \
	"tls_body=hello from api.test"
expect_line "captured TLS to an address literal: the SNI decides, the proxy connects to its own resolution" \
	"sni_body=hello from api.test"
expect_line "captured plain HTTP to an address literal: the Host header decides" \
	"host_body=hello from api.test"
expect_value_not_in "captured TLS with a denied SNI is refused" snideny_rc 0
expect_fast "... at once" snideny_time 2
expect_value_not_in "captured HTTP with a denied Host is refused" hostdeny_rc 0
expect_fast "... at once" hostdeny_time 2
expect_value_in "a captured address literal with no name and no address rule is refused" \
	lit_error ECONNRESET ECONNREFUSED ECONNABORTED EPIPE
expect_fast_ms "... at once" lit_ms 2000
if grep -q 'denied.test' "$CONNS" || grep -q 'sni=denied.test' "$CONNS"; then
	fail "the servers never saw a denied name" "$(grep denied.test "$CONNS")"
else
	pass "the servers never saw a denied name"
fi
netlog capture
expect_log "net log: the raw client's connection, allowed, via capture" via=capture \
	host=api.test port="$HTTP" decision=allow
expect_log "net log: the denied SNI, via capture" via=capture host=denied.test decision=deny

if command -v node >/dev/null 2>&1; then
	box --name node "${BASE[@]}" -- node -e '
		fetch(process.argv[1])
			.then(r => r.text().then(t => console.log("status=" + r.status + "\nbody=" + t.trim())))
			.catch(e => console.log("error=" + ((e.cause && e.cause.code) || e.message)))
	' "http://api.test:$HTTP/hello"
	expect_line "Node's fetch (which ignores HTTP_PROXY) reaches an allowed host" \
		"body=hello from api.test"
	netlog node
	expect_log "net log: Node's connection went through the capture" via=capture \
		host=api.test decision=allow
	box --name node-deny "${BASE[@]}" -- node -e '
		const t0 = Date.now();
		fetch(process.argv[1])
			.then(r => console.log("status=" + r.status))
			.catch(e => console.log("error=" + ((e.cause && e.cause.code) || e.message)))
			.finally(() => console.log("ms=" + (Date.now() - t0)))
	' "http://denied.test:$HTTP/hello"
	expect_value_in "Node's fetch to a denied name fails (the name does not resolve)" error \
		ENOTFOUND EAI_AGAIN ECONNRESET ECONNREFUSED
	expect_fast_ms "... at once" ms 2000
else
	skip "Node's fetch through the capture" "node is not installed"
fi

# ---- a denied host: at once, with the reason, logged -------------------------------------

before=$(conns)
box --name deny "${BASE[@]}" -- sh -c '
	sh "$2" http "http://denied.test:$3/hello"
	sh "$2" https "https://denied.test:$4/hello" --cacert "$5"
	sh "$2" socks "http://denied.test:$3/hello" --socks5-hostname 127.0.0.1:1080
	"$1" http-get denied.test "$3" /hello | sed "s/^/raw_/"
	"$1" dns-query denied.test | sed "s/^/dns_/"
	"$1" dns-query api.test | sed "s/^/dnsok_/"
	"$1" dns-query api.test AAAA | sed "s/^/dns6_/"
	"$1" dns-query registry.npmjs.org | sed "s/^/dnsreal_/"
' sh "$P" "$G" "$HTTP" "$HTTPS" "$CERT"
expect_line "a denied host: HTTP 403 from the proxy" "http_code=403"
expect_line "... whose body says it is a denial, and which rule decided" \
	"http_body=agentbox: egress to denied.test:$HTTP denied by policy (default deny: no rule allows it)"
expect_fast "... at once" http_time 2
expect_value_in "a denied CONNECT: curl fails (CONNECT tunnel refused)" https_rc 56 7 35
if out_value https_err | grep -q 403; then
	pass "... with the 403"
else
	fail "... with the 403" "$(last_run)"
fi
expect_fast "... at once" https_time 2
expect_value_not_in "a denied SOCKS5 request fails" socks_rc 0
expect_fast "... at once" socks_time 2
expect_line "a raw client: the denied name does not resolve" "raw_error=EAI_NONAME"
expect_fast_ms "... at once" raw_ms 2000
expect_line "DNS: a denied name gets NXDOMAIN" "dns_rcode=3"
expect_line "DNS: an allowed name resolves" "dnsok_rcode=0"
expect_value_re "... to an address in 198.18.0.0/15" dnsok_addr '^198\.1[89]\.'
if out_has "dns6_rcode=0" && out_has "dns6_answers=0"; then
	pass "DNS: AAAA for an allowed name is an empty NOERROR"
else
	fail "DNS: AAAA for an allowed name is an empty NOERROR" "$(last_run)"
fi
expect_line "DNS: a real name that is not allowed gets NXDOMAIN (nothing is forwarded)" \
	"dnsreal_rcode=3"
after=$(conns)
if [ "$before" = "$after" ]; then
	pass "the servers received nothing during the denied run"
else
	fail "the servers received nothing during the denied run" "$(tail -n +"$((before + 1))" "$CONNS")"
fi
netlog deny
expect_log "net log --json: the HTTP denial" via=proxy host=denied.test port="$HTTP" \
	decision=deny
expect_log "net log --json: the CONNECT denial" via=proxy host=denied.test port="$HTTPS" \
	decision=deny method=CONNECT
expect_log "net log --json: the SOCKS5 denial" via=socks host=denied.test decision=deny
expect_log "net log --json: the DNS denial" via=dns host=denied.test decision=deny
ab net log deny
if [ "$AB_RC" = 0 ] && head -n 1 <<<"$AB_OUT" | grep -q DECISION &&
	grep -E 'deny' <<<"$AB_OUT" | grep -q "denied.test"; then
	pass "net log (table): a header and the denials"
else
	fail "net log (table): a header and the denials" "$(last_run)"
fi
ab net log no-such-sandbox
if [ "$AB_RC" != 0 ] && err_has_re "no-such-sandbox"; then
	pass "net log of a sandbox that does not exist fails, naming it"
else
	fail "net log of a sandbox that does not exist fails, naming it" "$(last_run)"
fi

# --network filtered with no rules: everything is denied.
box --network filtered --add-host api.test:127.0.0.1 -- sh "$G" all "http://api.test:$HTTP/hello"
expect_line "--network filtered without rules denies everything" "all_code=403"

# ---- wildcards, deny over allow, ports ---------------------------------------------------

WILD=(--allow 127.0.0.1 --allow '*.allowed.test' --deny bad.allowed.test
	--allow "api.test:$HTTP")
for n in sub.allowed.test a.b.allowed.test allowed.test evilallowed.test bad.allowed.test api.test; do
	WILD+=(--add-host "$n:127.0.0.1")
done
box --name wild "${WILD[@]}" -- sh -c '
	for n in sub.allowed.test a.b.allowed.test allowed.test evilallowed.test bad.allowed.test; do
		sh "$2" "$(echo "$n" | tr . _)" "http://$n:$3/hello"
		"$1" dns-query "$n" | sed "s/^/dns_$(echo "$n" | tr . _)_/"
	done
	sh "$2" subtls "https://sub.allowed.test:$4/hello" --cacert "$5"
	sh "$2" port "http://api.test:$3/hello"
	sh "$2" otherport "https://api.test:$4/hello" --cacert "$5"
' sh "$P" "$G" "$HTTP" "$HTTPS" "$CERT"
expect_line "*.allowed.test matches sub.allowed.test" "sub_allowed_test_body=hello from sub.allowed.test"
expect_line "*.allowed.test matches a.b.allowed.test" "a_b_allowed_test_body=hello from a.b.allowed.test"
expect_line "*.allowed.test does not match allowed.test itself" "allowed_test_code=403"
expect_line "*.allowed.test does not match evilallowed.test" "evilallowed_test_code=403"
expect_line "a deny rule wins over a matching wildcard allow" "bad_allowed_test_code=403"
expect_value_re "... and the 403 names the deny rule" bad_allowed_test_body \
	'^agentbox: egress to bad\.allowed\.test:[0-9]+ denied by policy \(.*bad\.allowed\.test.*\)$'
expect_line "HTTPS through CONNECT to a wildcard-allowed name" "subtls_body=hello from sub.allowed.test"
expect_line "DNS: the wildcard's subdomain resolves" "dns_sub_allowed_test_rcode=0"
expect_line "DNS: the deeper subdomain resolves" "dns_a_b_allowed_test_rcode=0"
expect_line "DNS: the bare suffix is NXDOMAIN" "dns_allowed_test_rcode=3"
expect_line "DNS: the look-alike is NXDOMAIN" "dns_evilallowed_test_rcode=3"
expect_line "DNS: the denied subdomain is NXDOMAIN" "dns_bad_allowed_test_rcode=3"
expect_line "a rule with a port allows that port" "port_body=hello from api.test"
expect_line "... and no other" "otherport_rc=56"

# ---- private, metadata and the host's own addresses --------------------------------------

CLASSES=(--add-host meta.test:169.254.169.254 --add-host lan.test:10.1.2.3
	--add-host meta6.test:fd00:ec2::254 --add-host cgnat.test:100.100.100.200
	--allow meta.test --allow lan.test --allow meta6.test --allow cgnat.test
	--add-host loop.test:127.0.0.1 --allow loop.test)
own=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+(\.[0-9]+){3}$' | head -n 1)
if [ -n "$own" ]; then
	CLASSES+=(--add-host "self.test:$own" --allow self.test)
fi
box --name classes "${CLASSES[@]}" -- sh -c '
	sh "$2" meta http://meta.test/latest/meta-data/
	sh "$2" meta6 http://meta6.test/latest/meta-data/
	sh "$2" lan http://lan.test:8080/
	sh "$2" cgnat http://cgnat.test/
	sh "$2" loop "http://loop.test:$4/hello"
	sh "$2" metalit http://169.254.169.254/latest/meta-data/
	[ -n "$3" ] && sh "$2" self "http://self.test:$4/hello"
	"$1" http-get meta.test 80 /latest/meta-data/ | sed "s/^/raw_/"
' sh "$P" "$G" "$own" "$HTTP"
expect_line "a name allowed by policy but mapped to 169.254.169.254 is refused" "meta_code=403"
expect_value_re "... and the 403 names the address class" meta_body \
	'^agentbox: egress to meta\.test:80 denied by policy \(.*(metadata|link-local).*169\.254\.169\.254.*\)$'
expect_fast "... at once" meta_time 2
expect_line "a name mapped to fd00:ec2::254 (IPv6 metadata) is refused" "meta6_code=403"
expect_value_re "... naming the class" meta6_body 'denied by policy \(.*(metadata|unique local|private).*\)'
expect_line "a name mapped to a private address (10.1.2.3) is refused" "lan_code=403"
expect_value_re "... naming the class and the address" lan_body \
	'^agentbox: egress to lan\.test:8080 denied by policy \(.*private.*10\.1\.2\.3.*\)$'
expect_fast "... at once (no connection attempt to 10.1.2.3)" lan_time 2
expect_line "a name mapped to 100.100.100.200 (cloud metadata) is refused" "cgnat_code=403"
expect_line "the metadata address literal through the proxy is refused" "metalit_code=403"
expect_line "a name mapped to 127.0.0.1 does not reach the host's own loopback server" "loop_code=403"
expect_value_re "... naming loopback" loop_body 'denied by policy \(.*loopback.*127\.0\.0\.1.*\)'
if [ -n "$own" ]; then
	expect_line "a name mapped to the host's own address ($own) is refused" "self_code=403"
	# (an own address in a closed class, as on a VM with a TEST-NET address, is named by
	# its class instead)
	expect_value_re "... naming the address" self_body "denied by policy \\(.*${own//./\\.}.*\\)"
else
	skip "a name mapped to the host's own address is refused" "the host has no IPv4 address"
fi
expect_value_in "a raw client to the metadata name: refused" raw_error ECONNRESET ECONNREFUSED \
	ECONNABORTED EPIPE
expect_fast_ms "... at once" raw_ms 2000

# The host's own address, apart from every closed class: agentbox runs in a network
# namespace of the test's own whose only address besides 127.0.0.1 is a public one
# (11.22.33.44, on its loopback interface). Root only: the namespace is made with plain
# unshare.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v unshare >/dev/null; then
	cat >"$T/own-netns.sh" <<'EOF'
set -e
ip link set lo up
ip addr add 11.22.33.44/32 dev lo
exec "$@"
EOF
	(cd "$WS" && timeout -k 5 "$AB_TIMEOUT" unshare -n sh "$T/own-netns.sh" "$AB" run --name ownaddr \
		--add-host own.test:11.22.33.44 --allow own.test --allow 11.22.33.44:8081 -- sh -c '
			sh "$1" own http://own.test:8080/
			sh "$1" ownlit http://11.22.33.44:8081/
		' sh "$G" </dev/null >"$AB_OUT_FILE" 2>"$AB_ERR_FILE")
	AB_RC=$?
	AB_CMD="unshare -n (11.22.33.44 on lo) agentbox run --allow own.test ..."
	AB_OUT=$(cat "$AB_OUT_FILE")
	AB_ERR=$(cat "$AB_ERR_FILE")
	expect_line "a public address that is the host's own is refused (a name allowed by policy)" "own_code=403"
	expect_value_re "... saying it is the host's own" own_body "denied by policy \(the host's own address 11\.22\.33\.44\)"
	if out_has "ownlit_code=502" && grep -q "11.22.33.44:8081" <<<"$(out_value ownlit_body)"; then
		pass "... unless an address rule allows it: the proxy connects (nothing listens there: 502)"
	else
		fail "... unless an address rule allows it: the proxy connects" "$(last_run)"
	fi
else
	skip "the host's own public address is refused" "needs root, ip and unshare for a network namespace"
fi

# ---- live policy: net allow / net deny on a running sandbox -------------------------------

ab run -d --name live --add-host later.test:127.0.0.1 "${BASE[@]}" -- sleep 300
if [ "$AB_RC" = 0 ] && wait_status live running 10; then
	pass "a detached filtered sandbox runs"
else
	fail "a detached filtered sandbox runs" "$(last_run)"
fi
ab inspect live
if python3 -c 'import json,sys; n=json.load(sys.stdin)["network"]; sys.exit(not (n["mode"] == "filtered" and "api.test" in n["allow"] and "later.test:127.0.0.1" in n["hosts"] and n["log"].endswith("/net.log")))' <<<"$AB_OUT"; then
	pass "inspect shows the network: filtered, its rules, its mapped hosts and its log"
else
	fail "inspect shows the network: filtered, its rules, its mapped hosts and its log" "$(last_run)"
fi
PX=(-x http://127.0.0.1:3128)
ab exec live -- "$P" env HTTP_PROXY
expect_line "exec gets the proxy variables too" "HTTP_PROXY=http://127.0.0.1:3128"
ab exec live -- sh "$G" before "http://later.test:$HTTP/hello" "${PX[@]}"
expect_line "before net allow: later.test is denied" "before_code=403"
ab exec live -- "$P" dns-query later.test
expect_line "... and does not resolve" "rcode=3"
ab net allow live later.test
expect_rc "net allow NAME RULE succeeds" 0
ab exec live -- sh "$G" after "http://later.test:$HTTP/hello" "${PX[@]}"
expect_line "after net allow: later.test works, without a restart" "after_body=hello from later.test"
ab exec live -- "$P" http-get later.test "$HTTP" /hello
expect_line "... also for a raw client (the sandbox's DNS answers it now)" "body=hello from later.test"
netlog live
expect_log "net log: the policy change is logged" event=policy action=allow rule=later.test
expect_log "net log: the request after it, allowed" host=later.test decision=allow
ab net deny live later.test
expect_rc "net deny NAME RULE succeeds" 0
ab exec live -- sh "$G" denied "http://later.test:$HTTP/hello" "${PX[@]}"
expect_line "after net deny: later.test is denied again" "denied_code=403"
expect_value_re "... by that rule" denied_body 'denied by policy \(.*later\.test.*\)'
ab net deny live api.test
ab exec live -- sh "$G" api "http://api.test:$HTTP/hello" "${PX[@]}"
expect_line "net deny beats an allow given at start (api.test)" "api_code=403"
netlog live
expect_log "net log: the deny is logged" event=policy action=deny rule=later.test
ab net allow live 'http://x'
if [ "$AB_RC" != 0 ] && err_has_re "'http://x'"; then
	pass "net allow refuses a malformed rule, naming it"
else
	fail "net allow refuses a malformed rule, naming it" "$(last_run)"
fi
ab net allow no-such-sandbox x.test
if [ "$AB_RC" != 0 ] && err_has_re "no-such-sandbox"; then
	pass "net allow on a sandbox that does not exist fails, naming it"
else
	fail "net allow on a sandbox that does not exist fails, naming it" "$(last_run)"
fi
"$AB" rm --force live >/dev/null 2>&1

# ---- the log rotates while the proxy runs, and `net log -f` follows it across ------------
# AGENTBOX_NET_LOG_MAX=65536: net.log and net.log.1 take 32 KiB each; four bursts of 100
# refused DNS queries (about 25 KiB each) rotate the log once per burst or less.
AGENTBOX_NET_LOG_MAX=65536 ab run -d --name rot "${BASE[@]}" -- sleep 300
if [ "$AB_RC" = 0 ] && wait_status rot running 10; then
	ab_bg "$T/follow.out" "$T/follow.err" net log rot -f --json
	follow_pid=$AB_BG_PID
	for b in 0 1 2 3; do
		ab exec rot -- sh -c "i=$((b * 100)); while [ \$i -lt $((b * 100 + 100)) ]; do '$P' dns-query h\$i.rot.test >/dev/null; i=\$((i + 1)); done"
		sleep 0.5
	done
	rlog=$AGENTBOX_RUN_DIR/rot/net.log
	size=$(stat -c %s "$rlog" 2>/dev/null || echo 0)
	size1=$(stat -c %s "$rlog.1" 2>/dev/null || echo 0)
	if [ "$size" -le 32768 ] && [ "$size1" -le 32768 ] && [ "$size1" -gt 16384 ] &&
		head -n 1 "$rlog" | grep -q '"event":"log rotated"'; then
		pass "the proxy rotates its log as it runs: net.log $size, net.log.1 $size1 bytes, at most half the cap each"
	else
		fail "the proxy rotates its log as it runs" "net.log $size bytes, net.log.1 $size1; first line: $(head -n 1 "$rlog")"
	fi
	"$AB" rm --force rot >/dev/null 2>&1
	wait_pid_timeout "$follow_pid" 10
	seen=$(grep -o '"host":"h[0-9]*\.rot\.test"' "$T/follow.out" | sort | uniq -c)
	n_hosts=$(wc -l <<<"$seen")
	n_twice=$(awk '$1 != 1' <<<"$seen" | wc -l)
	if [ "$n_hosts" = 400 ] && [ "$n_twice" = 0 ]; then
		pass "net log -f follows the log across its rotations: each of the 400 decisions once"
	else
		fail "net log -f follows the log across its rotations" "$n_hosts hosts seen, $n_twice more than once; $(tail -c 600 "$T/follow.err")"
	fi
	AGENTBOX_NET_LOG_MAX=1k ab run "${BASE[@]}" -- true
	expect_bad_input "a malformed AGENTBOX_NET_LOG_MAX is refused before the sandbox starts" "1k"
else
	fail "a detached sandbox with a small network log runs" "$(last_run)"
fi

# ---- UDP, ICMP and raw sockets do not leave -----------------------------------------------

box --name udp "${BASE[@]}" -- sh -c '
	"$1" udp-send 192.0.2.1 9 | sed "s/^/udp_/"
	"$1" udp-send 1.1.1.1 123 | sed "s/^/ntp_/"
	"$1" udp-send 2001:db8::1 9 | sed "s/^/udp6_/"
	"$1" ping-raw 192.0.2.1
' sh "$P"
for k in udp ntp udp6; do
	s=$(out_value "${k}_send")
	a=$(out_value "${k}_async")
	if [ -n "$s" ] && { [ "$s" != OK ] || { [ -n "$a" ] && [ "$a" != none ]; }; }; then
		pass "UDP ($k) is refused inside the sandbox: send=$s${a:+ async=$a}"
	else
		fail "UDP ($k) is refused inside the sandbox" "$(last_run)"
	fi
	expect_fast_ms "... at once" "${k}_ms" 1000
done
if grep -qE '^(raw|dgram)_socket=' <<<"$AB_OUT" && ! grep -qE '^(raw|dgram)_(send|reply)=OK$' <<<"$AB_OUT"; then
	pass "ICMP (raw and ping sockets) cannot send: $(grep -E '^(raw|dgram)_' <<<"$AB_OUT" | tr '\n' ' ')"
else
	fail "ICMP (raw and ping sockets) cannot send" "$(last_run)"
fi

# ---- a flood of idle connections ----------------------------------------------------------

hard=$(ulimit -Hn)
flood=10000
if [ "$hard" != unlimited ] && [ "$hard" -lt $((flood + 2000)) ]; then
	flood=$((hard - 2000))
fi
if [ "$flood" -lt 2000 ]; then
	skip "the proxy survives a flood of idle connections" "the open files limit ($hard) is too low"
else
	AB_TIMEOUT=150 box --name flood --ulimit "nofile=$((flood + 1000))" "${BASE[@]}" -- sh -c '
		"$1" hold-conns 127.0.0.1 3128 "$4" 20 >/tmp/hold.out 2>&1 &
		i=0
		until grep -q "^held=" /tmp/hold.out || [ $i -ge 1300 ]; do sleep 0.1; i=$((i + 1)); done
		sed "s/^/hold_/" /tmp/hold.out
		sh "$2" during "http://api.test:$3/hello"
		sh "$2" sduring "http://api.test:$3/hello" --socks5-hostname 127.0.0.1:1080
		"$1" http-get api.test "$3" /hello | sed "s/^/rawduring_/"
		wait
		sh "$2" after "http://api.test:$3/hello"
	' sh "$P" "$G" "$HTTP" "$flood"
	held=$(out_value hold_held)
	if [ -n "$held" ] && [ "$held" -ge 1000 ]; then
		pass "$held idle connections to the proxy were opened (of $flood; failed: $(out_value hold_failed))"
	else
		fail "thousands of idle connections to the proxy were opened" "$(last_run)"
	fi
	expect_line "during the flood: a request through the proxy works" "during_body=hello from api.test"
	expect_fast "... promptly" during_time 3
	expect_line "during the flood: SOCKS5 works" "sduring_body=hello from api.test"
	expect_line "during the flood: a captured connection works" "rawduring_body=hello from api.test"
	expect_line "after the flood: the proxy still works" "after_body=hello from api.test"
	netlog flood
	expect_log "connections that sent nothing for 10 s are closed, and logged" via=proxy decision=error \
		"reason=no complete HTTP request within 10 s"
fi

# ---- a relayed connection that idles is kept, with TCP keepalive on both ends ------------

if command -v ss >/dev/null 2>&1; then
	ab_bg "$T/ka.out" "$T/ka.err" run --name keepalive "${BASE[@]}" -- \
		sh -c "printf 'hi\n' | '$P' send-raw api.test $ECHO 6"
	ka=""
	for _ in $(seq 60); do
		ka=$(ss -tnoH state established "( dport = :$ECHO )" 2>/dev/null)
		[ -n "$ka" ] && break
		sleep 0.1
	done
	if grep -q 'timer:(keepalive' <<<"$ka"; then
		pass "the proxy's side of a relayed connection has TCP keepalive on"
	else
		fail "the proxy's side of a relayed connection has TCP keepalive on" "ss: ${ka:-no connection to port $ECHO}"
	fi
	wait_pid_timeout "$AB_BG_PID" 20
	if grep -q '^received=3' "$T/ka.out" && ! grep -q '^error=' "$T/ka.out"; then
		pass "... and the connection itself relays, idles, and ends normally"
	else
		fail "... and the connection itself relays, idles, and ends normally" "$(cat "$T/ka.out" "$T/ka.err")"
	fi
else
	skip "the proxy's side of a relayed connection has TCP keepalive on" "ss (iproute2) is not installed"
fi

# ---- a burst of hostile and mangled input -------------------------------------------------

if python3 "$NETSERVER" fuzz-cases "$WS/fuzz" --port "$HTTP" >"$T/fuzz.out" 2>&1; then
	pass "fuzz cases made: $(cat "$T/fuzz.out")"
else
	fail "fuzz cases made" "$(cat "$T/fuzz.out")"
fi
chmod -R a+rX "$WS/fuzz"
AB_TIMEOUT=180 box --name fuzz "${BASE[@]}" -- sh -c '
	P=$1 G=$2 H=$3 S=$4
	n=0
	for f in "$5"/*; do
		case ${f##*/} in
		http-*) "$P" send-raw 127.0.0.1 3128 0 <"$f" ;;
		socks-*) "$P" send-raw 127.0.0.1 1080 0 <"$f" ;;
		tls-*) "$P" send-raw 203.0.113.9 "$S" 0 <"$f" ;;
		plain-*) "$P" send-raw 203.0.113.9 "$H" 0 <"$f" ;;
		esac >/dev/null
		n=$((n + 1))
	done
	echo "sent_cases=$n"
	head -c 3000000 /dev/urandom | "$P" send-raw 127.0.0.1 3128 0 >/dev/null
	head -c 3000000 /dev/urandom | "$P" send-raw 127.0.0.1 1080 0 >/dev/null
	head -c 3000000 /dev/urandom | "$P" send-raw 203.0.113.9 443 0 >/dev/null
	# Hostile inputs whose answers are checked.
	{ printf "GET http://api.test:%s/hello HTTP/1.1\r\nX-Big: " "$H"
	  head -c 100000 /dev/zero | tr "\0" a; printf "\r\n\r\n"; } |
		"$P" send-raw 127.0.0.1 3128 3 | sed "s/^/big_/"
	printf "CONNECT 2130706433:80 HTTP/1.1\r\n\r\n" | "$P" send-raw 127.0.0.1 3128 3 | sed "s/^/num_/"
	printf "CONNECT api.test:99999 HTTP/1.1\r\n\r\n" | "$P" send-raw 127.0.0.1 3128 3 | sed "s/^/port_/"
	printf "GET https://api.test:%s/ HTTP/1.1\r\nHost: api.test\r\n\r\n" "$S" |
		"$P" send-raw 127.0.0.1 3128 3 | sed "s/^/https_/"
	{ printf "\005\001\000\005\001\000\003\377"; head -c 255 /dev/zero | tr "\0" a; printf "\000\120"; } |
		"$P" send-raw 127.0.0.1 1080 3 | sed "s/^/s255_/"
	printf "\026\003\001\002\000\001\000\001\374\003\003" | "$P" send-raw 203.0.113.9 443 5 | sed "s/^/hello_/"
	printf "GET / HTTP/1.1\r\nHo" | "$P" send-raw 203.0.113.9 80 5 | sed "s/^/partial_/"
	printf "GET http://api.test/ HTTP/1.1\r\nHo" | "$P" send-raw 127.0.0.1 3128 1 >/dev/null
	printf "\005\001\000" | "$P" send-raw 127.0.0.1 1080 1 >/dev/null
	sh "$G" after "http://api.test:$H/hello"
	sh "$G" aftertls "https://api.test:$S/hello" --cacert "$6"
	sh "$G" aftersocks "http://api.test:$H/hello" --socks5-hostname 127.0.0.1:1080
	"$P" http-get api.test "$H" /hello | sed "s/^/afterraw_/"
' sh "$P" "$G" "$HTTP" "$HTTPS" "$WS/fuzz" "$CERT"
expect_value_re "every fuzz case was sent" sent_cases '^[0-9]{3,}$'
expect_value_re "an oversized header gets 431 (or 400)" big_reply '^HTTP/1\.[01] (431|400)'
expect_value_re "CONNECT to a number (2130706433) is refused with 400 or 403" num_reply \
	'^HTTP/1\.[01] (400|403)'
expect_value_re "CONNECT to port 99999 is refused with 400" port_reply '^HTTP/1\.[01] 400'
expect_value_re "an https:// URI is refused with 400 (use CONNECT)" https_reply '^HTTP/1\.[01] 400'
if [ "$(out_value s255_reply_hex | cut -c1-6)" = 050005 ] &&
	[ "$(out_value s255_reply_hex | cut -c7-8)" != 00 ]; then
	pass "SOCKS5 with a 255-byte name: an error reply ($(out_value s255_reply_hex | cut -c7-8)), no crash"
else
	fail "SOCKS5 with a 255-byte name: an error reply" "$(last_run)"
fi
if out_has "hello_closed=1" || [ -n "$(out_value hello_error)" ]; then
	pass "a truncated ClientHello to a captured address is closed, not left hanging"
else
	fail "a truncated ClientHello to a captured address is closed, not left hanging" "$(last_run)"
fi
expect_fast_ms "... within the sniffing time" hello_ms 3000
if out_has "partial_closed=1" || [ -n "$(out_value partial_error)" ]; then
	pass "a truncated request head to a captured address is closed"
else
	fail "a truncated request head to a captured address is closed" "$(last_run)"
fi
expect_line "after the burst: HTTP through the proxy works" "after_body=hello from api.test"
expect_line "after the burst: CONNECT works" "aftertls_body=hello from api.test"
expect_line "after the burst: SOCKS5 works" "aftersocks_body=hello from api.test"
expect_line "after the burst: captured traffic works" "afterraw_body=hello from api.test"
netlog fuzz
if [ "$NETLOG_RC" = 0 ] && [ -n "$NETLOG" ] && python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    json.loads(line)
    n += 1
sys.exit(0 if n > 10 else 1)' <<<"$NETLOG" 2>"$T/json.err"; then
	pass "after hostile input every line of the audit log is valid JSON ($(wc -l <<<"$NETLOG") lines)"
else
	fail "after hostile input every line of the audit log is valid JSON" "$(cat "$T/json.err")" \
		"$(head -c 2000 <<<"$NETLOG")"
fi
expect_log "a request cut off before its end is logged (HTTP proxy)" via=proxy decision=error \
	"reason=the client closed before its request was complete"
expect_log "... and through SOCKS5, after the greeting" via=socks decision=error \
	"reason=the client closed before its request was complete"

# ---- malformed rules are refused before the sandbox starts --------------------------------

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
refused "--allow '*.' is refused" '\*\.' --allow '*.'
refused "--allow 'http://x' is refused" 'http://x' --allow 'http://x'
refused "--allow 'x:70000' is refused" 'x:70000' --allow 'x:70000'
refused "--allow 'x:0' is refused" 'x:0' --allow 'x:0'
refused "--allow '' is refused" '' --allow ''
refused "--deny 'a.*.b' is refused" 'a\.\*\.b' --deny 'a.*.b'
refused "--add-host without an address is refused" 'nohost.test' --add-host nohost.test
refused "--add-host with a name as the address is refused" '[^'"'"']*example\.com[^'"'"']*' \
	--add-host x.test:example.com
ab run --network none --allow x.test -- "$P" write "$WS/must-not-exist"
if [ "$AB_RC" = 125 ] && [ ! -e "$WS/must-not-exist" ] && err_has_re "none|--allow"; then
	pass "--network none with --allow is refused"
else
	fail "--network none with --allow is refused" "$(last_run)"
fi
ab run --network host --deny x.test -- "$P" write "$WS/must-not-exist"
if [ "$AB_RC" = 125 ] && [ ! -e "$WS/must-not-exist" ]; then
	pass "--network host with --deny is refused"
else
	fail "--network host with --deny is refused" "$(last_run)"
fi
rm -f "$WS/must-not-exist"

# ---- npm install of a real package, allowed and not --------------------------------------

npm_skip=""
if ! command -v npm >/dev/null 2>&1; then
	npm_skip="npm is not installed (scripts/install-deps.sh test installs it)"
else
	registry=$(npm config get registry 2>/dev/null)
	registry=${registry:-https://registry.npmjs.org/}
	reghost=$(sed -E 's|^[a-z]+://([^/:]+).*|\1|' <<<"$registry")
	code=$(curl -sS -o /dev/null --max-time 20 -w '%{http_code}' "${registry%/}/is-number" 2>"$T/curl.err")
	if [ "$code" != 200 ]; then
		npm_skip="the registry $registry is unreachable from the host itself (HTTP '$code': $(head -n 1 "$T/curl.err"))"
	fi
fi
if [ -n "$npm_skip" ]; then
	skip "npm install with the registry allowed" "$npm_skip"
	skip "npm install without the registry allowed fails with a denial" "$npm_skip"
else
	# The proxy refuses addresses in closed classes (private, reserved, ...) unless an
	# address rule opens them. Some machines reach the registry through such an address
	# (an intercepting gateway): then both runs also allow exactly those addresses, so
	# that the name rule is the only difference between them.
	NPM_ADDR=()
	for a in $(getent ahostsv4 "$reghost" | awk '{ print $1 }' | sort -u); do
		if grep -qE '^(10|127)\.|^0\.|^100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|^169\.254\.|^172\.(1[6-9]|2[0-9]|3[01])\.|^192\.168\.|^192\.0\.[02]\.|^198\.1[89]\.|^198\.51\.100\.|^203\.0\.113\.|^2(2[4-9]|[3-5][0-9])\.' <<<"$a"; then
			NPM_ADDR+=(--allow "$a")
		fi
	done
	if [ ${#NPM_ADDR[@]} -gt 0 ]; then
		diag "this machine's DNS answers $reghost with a closed-class address; both npm runs also pass: ${NPM_ADDR[*]}"
	fi
	mkdir -p "$WS/npmproj"
	printf '{ "name": "egress-test", "version": "1.0.0", "private": true }\n' >"$WS/npmproj/package.json"
	chmod -R a+rwX "$WS/npmproj"
	NPM_SCRIPT='
		cd "$1" || exit 1
		export HOME=/tmp/npmhome npm_config_cache=/tmp/npmhome/.npm
		mkdir -p "$HOME"
		s=$(date +%s)
		npm install --no-audit --no-fund --no-save --registry "$2" --fetch-retries=0 \
			--fetch-timeout=20000 --fetch-retry-mintimeout=1000 --fetch-retry-maxtimeout=2000 \
			is-number@7.0.0 >/tmp/npm.out 2>&1
		echo "npm_rc=$?"
		echo "npm_secs=$(( $(date +%s) - s ))"
		sed "s/^/npm_out: /" /tmp/npm.out | tail -n 15
		if [ -f node_modules/is-number/package.json ]; then echo installed=yes; else echo installed=no; fi'
	AB_TIMEOUT=240 box --name npm-ok --allow "$reghost" "${NPM_ADDR[@]}" -- \
		sh -c "$NPM_SCRIPT" sh "$WS/npmproj" "$registry"
	expect_line "npm install is-number@7.0.0 with only the registry allowed succeeds" "npm_rc=0"
	expect_line "... and node_modules/is-number is there in the sandbox's view" "installed=yes"
	netlog npm-ok
	expect_log "net log: the registry connection, allowed" host="$reghost" decision=allow
	AB_TIMEOUT=240 box --name npm-deny "${NPM_ADDR[@]}" -- \
		sh -c "$NPM_SCRIPT" sh "$WS/npmproj" "$registry"
	expect_value_not_in "npm install without the registry allowed fails" npm_rc 0
	expect_line "... and installs nothing" "installed=no"
	if lt "$(out_value npm_secs)" 60; then
		pass "... fast ($(out_value npm_secs) s), not after minutes of retries"
	else
		fail "... fast, not after minutes of retries" "$(last_run)"
	fi
	if grep -qiE '403|denied|forbidden|ECONNRESET|tunnel' <<<"$AB_OUT"; then
		pass "... and npm's error shows the refusal"
	else
		fail "... and npm's error shows the refusal" "$(last_run)"
	fi
	netlog npm-deny
	expect_log "net log: the registry connection, denied" host="$reghost" decision=deny
fi

done_testing
