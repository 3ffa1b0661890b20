/* Egress policy as data: rule parsing (and what the messages say), matching, host
 * normalisation, the closed address classes, the post-resolution address check,
 * --add-host entries, and the fake addresses of the sandbox's DNS. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/fakeip.h"
#include "proxy/rules.h"
#include "tap.h"

static const char *kind_name(enum ab_net_rule_kind k)
{
	switch (k) {
	case AB_NET_RULE_NAME: return "name";
	case AB_NET_RULE_SUFFIX: return "suffix";
	case AB_NET_RULE_ADDR: return "addr";
	}
	return "?";
}

static char *repeat(char c, size_t n)
{
	static char bufs[4][600];
	static int which;
	char *b = bufs[which++ % 4];
	memset(b, c, n);
	b[n] = '\0';
	return b;
}

/* A name of exactly n bytes: labels of 63 'a's (or fewer) joined by dots. */
static const char *name_of_len(size_t n)
{
	static char bufs[4][600];
	static int which;
	char *b = bufs[which++ % 4];
	size_t i = 0, label = 0;
	while (i < n) {
		if (label == 63 && i + 1 < n) {
			b[i++] = '.';
			label = 0;
			continue;
		}
		b[i++] = 'a';
		label++;
	}
	b[n] = '\0';
	return b;
}

static void test_parse_good(void)
{
	static const struct {
		const char *spec;
		const char *text;
		enum ab_net_rule_kind kind;
		unsigned port;
	} cases[] = {
		{ "api.example.com", "api.example.com", AB_NET_RULE_NAME, 0 },
		{ "API.Example.COM.", "api.example.com", AB_NET_RULE_NAME, 0 },
		{ "localhost", "localhost", AB_NET_RULE_NAME, 0 },
		{ "under_score-x.example", "under_score-x.example", AB_NET_RULE_NAME, 0 },
		{ "registry.example.org:443", "registry.example.org:443", AB_NET_RULE_NAME, 443 },
		{ "x:1", "x:1", AB_NET_RULE_NAME, 1 },
		{ "x:65535", "x:65535", AB_NET_RULE_NAME, 65535 },
		{ "x:00443", "x:443", AB_NET_RULE_NAME, 443 },
		{ "*.github.com", "*.github.com", AB_NET_RULE_SUFFIX, 0 },
		{ "*.GitHub.com.:443", "*.github.com:443", AB_NET_RULE_SUFFIX, 443 },
		{ "*.com", "*.com", AB_NET_RULE_SUFFIX, 0 },
		{ "10.1.2.3", "10.1.2.3", AB_NET_RULE_ADDR, 0 },
		{ "10.1.2.3:8080", "10.1.2.3:8080", AB_NET_RULE_ADDR, 8080 },
		{ "10.0.0.0/8", "10.0.0.0/8", AB_NET_RULE_ADDR, 0 },
		{ "10.1.2.3/8", "10.0.0.0/8", AB_NET_RULE_ADDR, 0 },
		{ "10.0.0.0/8:443", "10.0.0.0/8:443", AB_NET_RULE_ADDR, 443 },
		{ "0.0.0.0/0", "0.0.0.0/0", AB_NET_RULE_ADDR, 0 },
		{ "10.1.2.3/32", "10.1.2.3", AB_NET_RULE_ADDR, 0 },
		{ "::1", "::1", AB_NET_RULE_ADDR, 0 },
		{ "[::1]", "::1", AB_NET_RULE_ADDR, 0 },
		{ "[::1]:443", "[::1]:443", AB_NET_RULE_ADDR, 443 },
		{ "2001:DB8::1", "2001:db8::1", AB_NET_RULE_ADDR, 0 },
		{ "fd00::/8", "fd00::/8", AB_NET_RULE_ADDR, 0 },
		{ "fd12:3456::/8", "fd00::/8", AB_NET_RULE_ADDR, 0 },
		{ "[fd00::]/8:443", "[fd00::/8]:443", AB_NET_RULE_ADDR, 443 },
		{ "[fd00::/8]:443", "[fd00::/8]:443", AB_NET_RULE_ADDR, 443 },
		{ "::ffff:10.0.0.1", "10.0.0.1", AB_NET_RULE_ADDR, 0 },
		{ "[::ffff:10.0.0.0]/104:22", "10.0.0.0/8:22", AB_NET_RULE_ADDR, 22 },
	};
	struct ab_net_rule r;
	struct ab_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		int rc = ab_net_rule_parse(cases[i].spec, false, &r, &err);
		ok(rc == 0 && strcmp(r.text, cases[i].text) == 0 && r.kind == cases[i].kind && r.port == cases[i].port &&
			   !r.deny,
		   "rule '%s' -> %s '%s' port %u (%s)", cases[i].spec, kind_name(cases[i].kind), cases[i].text,
		   cases[i].port, rc == 0 ? r.text : err.msg);
		/* The normalised text reads back as the same rule. */
		struct ab_net_rule again;
		ok(rc == 0 && ab_net_rule_parse(r.text, true, &again, &err) == 0 && strcmp(again.text, r.text) == 0 &&
			   again.deny && again.kind == r.kind && again.prefix == r.prefix &&
			   memcmp(again.addr, r.addr, 16) == 0,
		   "rule text '%s' parses back to itself", cases[i].text);
	}
	ok(ab_net_rule_parse("*.github.com", false, &r, &err) == 0 && strcmp(r.host, "github.com") == 0,
	   "a suffix rule keeps the domain without '*.'");
	ok(ab_net_rule_parse("10.0.0.0/8", false, &r, &err) == 0 && r.family == AF_INET && r.prefix == 8 &&
		   r.addr[0] == 10,
	   "an address rule keeps family, prefix and bytes");
	ok(ab_net_rule_parse("[2001:db8::1]:443", false, &r, &err) == 0 && r.family == AF_INET6 && r.prefix == 128,
	   "an IPv6 address rule is a /128");
	ok(ab_net_rule_parse(name_of_len(253), false, &r, &err) == 0, "a 253-byte name is a rule");
	ok(ab_net_rule_parse(repeat('a', 63), false, &r, &err) == 0, "a 63-byte label is a rule");
}

static void test_parse_bad(void)
{
	static const struct {
		const char *spec;
		const char *needle; /* the whole message when it starts with "bad" */
	} cases[] = {
		{ "", "bad network rule ''" },
		{ "*", "'*'" },
		{ "*.", "bad network rule '*.': a wildcard needs a domain after '*.' (write '*.example.com')" },
		{ "a.*.b", "'*' may only stand first" },
		{ "*.*.b", "'*' may only stand first" },
		{ "**.b", "'*' may only stand first" },
		{ "*x.b", "'*' may only stand first" },
		{ "http://x", "bad network rule 'http://x': write a host name, not a URL (write 'x' or 'x:443')" },
		{ "https://api.example.com/v1", "(write 'api.example.com' or 'api.example.com:443')" },
		{ "http://u@x:8080/p", "(write 'x' or 'x:8080')" },
		{ "x/path", "write a host name without a path (write 'x')" },
		{ "x/", "without a path" },
		{ "x:0", "the port must be 1-65535" },
		{ "x:65536", "the port must be 1-65535" },
		{ "x:70000", "bad network rule 'x:70000': the port must be 1-65535" },
		{ "x:999999", "the port must be 1-65535" },
		{ "x:+1", "the port must be 1-65535" },
		{ "x:1a", "the port must be 1-65535" },
		{ "x:", "the port is missing after ':' (write 'x' for every port, or 'x:443')" },
		{ ":443", "the host is missing" },
		{ "[::1]:", "(write '[::1]' for every port, or '[::1]:443')" },
		{ "[::1", "a '[' needs its ']'" },
		{ "[::1]x", "after ']'" },
		{ "[example.com]:443", "brackets hold an IPv6 address only" },
		{ "[1.2.3.4]", "brackets hold an IPv6 address only" },
		{ "10.0.0.0/33", "the prefix length must be 0-32" },
		{ "10.0.0.0/", "the prefix length must be 0-32" },
		{ "10.0.0.0/x", "the prefix length must be 0-32" },
		{ "fd00::/129", "the prefix length must be 0-128" },
		{ "1:2:3", "not an IPv6 address" },
		{ "x:443:1", "not an IPv6 address" },
		{ "10.1", "neither a host name nor an address" },
		{ "2130706433", "neither a host name nor an address" },
		{ "0x7f.1", "neither a host name nor an address" },
		{ "0x7f.0.0.1", "neither a host name nor an address" },
		{ "010.0.0.1", "neither a host name nor an address" },
		{ "1.2.3.4.", "neither a host name nor an address" },
		{ "*.10.1", "neither a host name nor an address" },
		{ "a..b", "empty label" },
		{ ".a", "empty label" },
		{ "a b", "without spaces" },
		{ "a\tb", "without spaces" },
		{ "a\xc3\xa9.com", "in ASCII" },
		{ "ex!ample.com", "letters, digits" },
		{ "fe80::1%eth0", "not an IPv6 address" },
	};
	struct ab_net_rule r;
	struct ab_error err;
	char buf[600];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		int rc = ab_net_rule_parse(cases[i].spec, false, &r, &err);
		bool whole = strncmp(cases[i].needle, "bad", 3) == 0 && strchr(cases[i].needle, ':');
		ok(rc < 0 && (whole ? strcmp(err.msg, cases[i].needle) == 0 : strstr(err.msg, cases[i].needle) != NULL),
		   "bad rule '%s' refused: %s", cases[i].spec, err.msg);
	}
	snprintf(buf, sizeof(buf), "%s.com", repeat('a', 64));
	ok(ab_net_rule_parse(buf, false, &r, &err) < 0 && strstr(err.msg, "longer than 63"), "a 64-byte label: %s",
	   err.msg);
	ok(ab_net_rule_parse(name_of_len(254), false, &r, &err) < 0 && strstr(err.msg, "longer than 253"),
	   "a 254-byte name: %.60s...", err.msg);
	ok(ab_net_rule_parse(repeat('a', 590), false, &r, &err) < 0 && strlen(err.msg) < 400,
	   "a very long spec is refused with a short message");
	memset(&err, 0, sizeof(err));
	ok(ab_net_rule_parse("a\nb", false, &r, &err) < 0 && !strchr(err.msg, '\n'), "control characters are not echoed: %s",
	   err.msg);
	ok(ab_net_rule_parse(NULL, false, &r, &err) < 0, "NULL refused");
}

static struct ab_net_policy make_policy(const char *const *allow, const char *const *deny)
{
	struct ab_net_policy p = { 0 };
	struct ab_net_rule r;
	struct ab_error err;

	for (size_t i = 0; allow && allow[i]; i++)
		if (ab_net_rule_parse(allow[i], false, &r, &err) < 0 || ab_net_policy_add(&p, &r) < 0)
			printf("# cannot add allow %s: %s\n", allow[i], err.msg);
	for (size_t i = 0; deny && deny[i]; i++)
		if (ab_net_rule_parse(deny[i], true, &r, &err) < 0 || ab_net_policy_add(&p, &r) < 0)
			printf("# cannot add deny %s: %s\n", deny[i], err.msg);
	return p;
}

static void test_matching(void)
{
	static const char *const allow[] = {
		"api.example.com", "*.github.com", "registry.example.org:443", "10.1.2.3",
		"*.example.net:8443", "[2001:db8::1]:443", "x.github.com", NULL,
	};
	static const char *const deny[] = { "x.github.com:22", "*.evil.github.com", NULL };
	static const struct {
		const char *host;
		unsigned port;
		bool allowed;
		const char *rule; /* NULL: the default */
	} cases[] = {
		{ "api.example.com", 443, true, "api.example.com" },
		{ "API.Example.com.", 80, true, "api.example.com" },
		{ "sub.api.example.com", 443, false, NULL },
		{ "example.com", 443, false, NULL },
		{ "a.github.com", 443, true, "*.github.com" },
		{ "a.b.github.com", 443, true, "*.github.com" },
		{ "A.B.GITHUB.COM.", 443, true, "*.github.com" },
		{ "github.com", 443, false, NULL },
		{ "evilgithub.com", 443, false, NULL },
		{ "xgithub.com", 443, false, NULL },
		{ "github.com.evil.com", 443, false, NULL },
		{ "a.github.com.evil", 443, false, NULL },
		{ "x.github.com", 443, true, "x.github.com" },
		{ "x.github.com", 22, false, "x.github.com:22" },
		{ "evil.github.com", 443, true, "*.github.com" },
		{ "a.evil.github.com", 443, false, "*.evil.github.com" },
		{ "a.b.evil.github.com", 80, false, "*.evil.github.com" },
		{ "registry.example.org", 443, true, "registry.example.org:443" },
		{ "registry.example.org", 80, false, NULL },
		{ "a.example.net", 8443, true, "*.example.net:8443" },
		{ "a.example.net", 443, false, NULL },
		{ "example.net", 8443, false, NULL },
		{ "10.1.2.3", 22, true, "10.1.2.3" },
		{ "::ffff:10.1.2.3", 22, true, "10.1.2.3" },
		{ "10.1.2.4", 22, false, NULL },
		{ "[2001:db8::1]", 443, true, "[2001:db8::1]:443" },
		{ "2001:db8::1", 443, true, "[2001:db8::1]:443" },
		{ "2001:db8::1", 80, false, NULL },
		{ "2130706433", 80, false, NULL },
		{ "0x7f.1", 80, false, NULL },
		{ "", 80, false, NULL },
		{ "a..github.com", 443, false, NULL },
	};
	struct ab_net_policy p = make_policy(allow, deny);
	struct ab_net_policy empty = { 0 };
	const struct ab_net_rule *rule;

	ok(p.n == 9, "policy holds 9 rules");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool got = ab_net_policy_allows(&p, cases[i].host, (uint16_t)cases[i].port, &rule);
		ok(got == cases[i].allowed &&
			   (cases[i].rule ? rule && strcmp(rule->text, cases[i].rule) == 0 : rule == NULL),
		   "%s:%u %s by %s (got %s by %s)", cases[i].host, cases[i].port, cases[i].allowed ? "allowed" : "denied",
		   cases[i].rule ? cases[i].rule : "default", got ? "allowed" : "denied", rule ? rule->text : "default");
	}
	ok(!ab_net_policy_allows(&empty, "api.example.com", 443, &rule) && rule == NULL, "no rules: default deny");
	ok(!ab_net_policy_allows(NULL, "api.example.com", 443, &rule) && rule == NULL, "no policy: default deny");
	ok(ab_net_policy_allows(&p, "api.example.com", 443, NULL), "rule pointer is optional");

	/* A deny wins whatever the order. */
	{
		static const char *const a2[] = { "*.example.com", NULL };
		static const char *const d2[] = { "bad.example.com", NULL };
		struct ab_net_policy q = make_policy(NULL, d2);
		struct ab_net_rule r;
		struct ab_error err;
		ab_net_rule_parse(a2[0], false, &r, &err);
		ab_net_policy_add(&q, &r);
		ok(!ab_net_policy_allows(&q, "bad.example.com", 443, &rule) && rule && rule->deny,
		   "deny added before allow still wins");
		ok(ab_net_policy_allows(&q, "good.example.com", 443, &rule), "the allow covers the rest");
		ab_net_policy_free(&q);
	}

	/* DNS: could any port be allowed? */
	ok(ab_net_policy_allows_name_any_port(&p, "x.github.com", &rule) && rule,
	   "DNS: a deny with a port does not close the name");
	ok(!ab_net_policy_allows_name_any_port(&p, "a.evil.github.com", &rule) && rule &&
		   strcmp(rule->text, "*.evil.github.com") == 0,
	   "DNS: a port-less deny closes the name");
	ok(ab_net_policy_allows_name_any_port(&p, "registry.example.org", &rule) && rule &&
		   strcmp(rule->text, "registry.example.org:443") == 0,
	   "DNS: an allow with a port opens the name");
	ok(ab_net_policy_allows_name_any_port(&p, "Deep.A.GitHub.com.", &rule), "DNS: case and trailing dot");
	ok(!ab_net_policy_allows_name_any_port(&p, "github.com", &rule) && rule == NULL, "DNS: the bare suffix is denied");
	ok(!ab_net_policy_allows_name_any_port(&p, "nope.example", &rule) && rule == NULL, "DNS: an unknown name is denied");
	ok(!ab_net_policy_allows_name_any_port(&p, "10.1.2.3", &rule), "DNS: an address is no name");
	ok(!ab_net_policy_allows_name_any_port(&empty, "api.example.com", &rule), "DNS: no rules, no names");
	ab_net_policy_free(&p);
	ab_net_policy_free(&p);
	ok(p.n == 0 && p.rules == NULL, "policy free is idempotent");
}

static void test_normalize(void)
{
	static const struct {
		const char *in;
		int kind; /* < 0: refused */
		const char *out;
	} cases[] = {
		{ "2130706433", -EINVAL, NULL },
		{ "0x7f.1", -EINVAL, NULL },
		{ "0x7f.0x1", -EINVAL, NULL },
		{ "0x7f000001", -EINVAL, NULL },
		{ "127.1", -EINVAL, NULL },
		{ "017.0.0.1", -EINVAL, NULL },
		{ "1.2.3.4", AB_HOST_IPV4, "1.2.3.4" },
		{ "255.255.255.255", AB_HOST_IPV4, "255.255.255.255" },
		{ "1.2.3.256", -EINVAL, NULL },
		{ "[::1]", AB_HOST_IPV6, "::1" },
		{ "::1", AB_HOST_IPV6, "::1" },
		{ "[2001:DB8:0:0::1]", AB_HOST_IPV6, "2001:db8::1" },
		{ "::ffff:127.0.0.1", AB_HOST_IPV6, "::ffff:127.0.0.1" },
		{ "[1.2.3.4]", -EINVAL, NULL },
		{ "[::1", -EINVAL, NULL },
		{ "[]", -EINVAL, NULL },
		{ "fe80::1%eth0", -EINVAL, NULL },
		{ "a..b", -EINVAL, NULL },
		{ ".a", -EINVAL, NULL },
		{ "a.", AB_HOST_NAME, "a" },
		{ "a..", -EINVAL, NULL },
		{ ".", -EINVAL, NULL },
		{ "", -EINVAL, NULL },
		{ "Example.COM.", AB_HOST_NAME, "example.com" },
		{ "under_score.example", AB_HOST_NAME, "under_score.example" },
		{ "a b", -EINVAL, NULL },
		{ "a\xc3\xa9", -EINVAL, NULL },
		{ "*.example.com", -EINVAL, NULL },
		{ "example.com:443", -EINVAL, NULL },
	};
	char out[AB_HOST_MAX], small[4], big[400];
	uint8_t addr[16];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int k = ab_net_host_normalize(cases[i].in, out, sizeof(out), addr);
		ok(k == cases[i].kind && (k < 0 || strcmp(out, cases[i].out) == 0), "host '%s' -> %d '%s' (got %d '%s')",
		   cases[i].in, cases[i].kind, cases[i].out ? cases[i].out : "", k, k >= 0 ? out : "");
	}
	ok(ab_net_host_normalize("1.2.3.4", out, sizeof(out), addr) == AB_HOST_IPV4 && addr[0] == 1 && addr[3] == 4,
	   "an IPv4 literal fills addr");
	ok(ab_net_host_normalize("[::1]", out, sizeof(out), addr) == AB_HOST_IPV6 && addr[15] == 1 && addr[0] == 0,
	   "an IPv6 literal fills addr");
	ok(ab_net_host_normalize("example.com", out, sizeof(out), NULL) == AB_HOST_NAME, "addr may be NULL");
	ok(ab_net_host_normalize("example.com", small, sizeof(small), NULL) == -EINVAL, "too small an output refused");
	snprintf(big, sizeof(big), "%s.com", repeat('a', 63));
	ok(ab_net_host_normalize(big, out, sizeof(out), NULL) == AB_HOST_NAME, "a 63-byte label passes");
	snprintf(big, sizeof(big), "%s.com", repeat('a', 64));
	ok(ab_net_host_normalize(big, out, sizeof(out), NULL) == -EINVAL, "a 64-byte label is refused");
	ok(ab_net_host_normalize(name_of_len(253), out, sizeof(out), NULL) == AB_HOST_NAME, "a 253-byte name passes");
	snprintf(big, sizeof(big), "%s.", name_of_len(253));
	ok(ab_net_host_normalize(big, out, sizeof(out), NULL) == AB_HOST_NAME && strlen(out) == 253,
	   "a 253-byte name with its trailing dot passes");
	ok(ab_net_host_normalize(name_of_len(254), out, sizeof(out), NULL) == -EINVAL, "a 254-byte name is refused");
	ok(ab_net_host_normalize(repeat('a', 390), out, sizeof(out), NULL) == -EINVAL, "a 390-byte input is refused");
	ok(ab_net_host_normalize(NULL, out, sizeof(out), NULL) == -EINVAL, "NULL refused");
}

static int addr_of(const char *text, struct ab_net_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = strchr(text, ':') ? AF_INET6 : AF_INET;
	return inet_pton(a->family, text, a->addr) == 1 ? 0 : -1;
}

static void test_classes(void)
{
	static const struct {
		const char *addr;
		const char *cls; /* NULL: ordinary */
	} cases[] = {
		{ "0.0.0.0", "unspecified" },
		{ "0.1.2.3", "unspecified" },
		{ "10.0.0.1", "private" },
		{ "10.255.255.255", "private" },
		{ "172.16.0.1", "private" },
		{ "172.31.255.255", "private" },
		{ "172.15.255.255", NULL },
		{ "172.32.0.0", NULL },
		{ "192.168.1.1", "private" },
		{ "192.169.0.0", NULL },
		{ "127.0.0.1", "loopback" },
		{ "127.255.0.9", "loopback" },
		{ "169.254.1.1", "link-local" },
		{ "169.254.169.254", "cloud metadata" },
		{ "100.64.0.1", "carrier-grade NAT" },
		{ "100.127.255.255", "carrier-grade NAT" },
		{ "100.100.100.200", "cloud metadata" },
		{ "100.63.255.255", NULL },
		{ "100.128.0.0", NULL },
		{ "192.0.0.8", "reserved" },
		{ "192.0.2.7", "reserved" },
		{ "198.51.100.1", "reserved" },
		{ "203.0.113.9", "reserved" },
		{ "198.18.0.1", "reserved" },
		{ "198.19.255.255", "reserved" },
		{ "198.17.255.255", NULL },
		{ "198.20.0.0", NULL },
		{ "224.0.0.1", "multicast" },
		{ "239.255.255.255", "multicast" },
		{ "240.0.0.1", "reserved" },
		{ "255.255.255.255", "reserved" },
		{ "223.255.255.255", NULL },
		{ "8.8.8.8", NULL },
		{ "1.1.1.1", NULL },
		{ "::", "unspecified" },
		{ "::1", "loopback" },
		{ "fe80::1", "link-local" },
		{ "febf::1", "link-local" },
		{ "fc00::1", "unique local" },
		{ "fdff::1", "unique local" },
		{ "fd00:ec2::254", "cloud metadata" },
		{ "ff02::1", "multicast" },
		{ "2001:db8::1", "reserved" },
		{ "2001:db9::1", NULL },
		{ "2606:4700:4700::1111", NULL },
		{ "::ffff:127.0.0.1", "loopback" },
		{ "::ffff:10.1.2.3", "private" },
		{ "::ffff:169.254.169.254", "cloud metadata" },
		{ "::ffff:100.100.100.200", "cloud metadata" },
		{ "::ffff:8.8.8.8", NULL },
		{ "64:ff9b::127.0.0.1", "loopback" },
		{ "64:ff9b::a9fe:a9fe", "cloud metadata" },
		{ "64:ff9b::10.0.0.1", "private" },
		{ "64:ff9b::8.8.8.8", NULL },
		{ "::127.0.0.1", "reserved" },
	};
	struct ab_net_addr a;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = addr_of(cases[i].addr, &a) == 0 ? ab_net_addr_class(a.family, a.addr) : "(bad test)";
		ok(cases[i].cls ? got && strcmp(got, cases[i].cls) == 0 : got == NULL, "%s is %s (got %s)", cases[i].addr,
		   cases[i].cls ? cases[i].cls : "ordinary", got ? got : "ordinary");
	}
	ok(ab_net_addr_class(AF_UNIX, a.addr) != NULL, "an unknown family is closed");
}

static void test_allows_addr(void)
{
	static const char *const allow[] = { "10.0.0.0/8", "192.168.1.5:443", "*.internal.example", "93.184.216.34",
					     "fd00::/8", NULL };
	static const char *const deny[] = { "10.9.0.0/16", "1.1.1.1", NULL };
	struct ab_net_policy empty = { 0 };
	struct ab_net_policy p = make_policy(allow, deny);
	struct ab_net_addr a, own[2];
	const struct ab_net_rule *rule;
	char why[128];

	addr_of("93.184.216.34", &own[0]);
	addr_of("2001:4860::8888", &own[1]);

	addr_of("10.1.2.3", &a);
	ok(!ab_net_policy_allows_addr(&empty, &a, 443, NULL, 0, why, sizeof(why), &rule) && rule == NULL &&
		   strcmp(why, "private address 10.1.2.3") == 0,
	   "a private address is refused without a rule: %s", why);
	ok(ab_net_policy_allows_addr(&p, &a, 443, own, 2, why, sizeof(why), &rule) && rule &&
		   strcmp(rule->text, "10.0.0.0/8") == 0 && why[0] == '\0',
	   "an ADDR allow opens a private address");
	addr_of("10.9.1.1", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 443, own, 2, why, sizeof(why), &rule) && rule && rule->deny &&
		   strcmp(why, "denied by rule") == 0,
	   "a deny ADDR wins over a wider allow: %s", why);
	addr_of("1.1.1.1", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 53, own, 2, why, sizeof(why), &rule) && rule &&
		   strcmp(rule->text, "1.1.1.1") == 0,
	   "a deny ADDR closes an ordinary address");
	addr_of("192.168.1.5", &a);
	ok(ab_net_policy_allows_addr(&p, &a, 443, NULL, 0, why, sizeof(why), &rule), "an ADDR allow with its port");
	ok(!ab_net_policy_allows_addr(&p, &a, 80, NULL, 0, why, sizeof(why), &rule) && rule == NULL &&
		   strcmp(why, "private address 192.168.1.5") == 0,
	   "... not on another port: %s", why);
	addr_of("169.254.169.254", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 80, own, 2, why, sizeof(why), &rule) &&
		   strcmp(why, "cloud metadata address 169.254.169.254") == 0,
	   "the metadata address is refused: %s", why);
	addr_of("::ffff:169.254.169.254", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 80, own, 2, why, sizeof(why), &rule) && strstr(why, "cloud metadata"),
	   "... also IPv4-mapped: %s", why);
	addr_of("::ffff:10.1.2.3", &a);
	ok(ab_net_policy_allows_addr(&p, &a, 80, own, 2, why, sizeof(why), &rule) && rule &&
		   strcmp(rule->text, "10.0.0.0/8") == 0,
	   "an IPv4-mapped address matches the IPv4 rule");
	addr_of("fd00:ec2::254", &a);
	ok(ab_net_policy_allows_addr(&p, &a, 80, own, 2, why, sizeof(why), &rule),
	   "an explicit ADDR allow opens even a metadata address (fd00::/8)");
	ok(!ab_net_policy_allows_addr(&empty, &a, 80, own, 2, why, sizeof(why), &rule) &&
		   strcmp(why, "cloud metadata address fd00:ec2::254") == 0,
	   "fd00:ec2::254 is refused without a rule: %s", why);
	addr_of("127.0.0.1", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 80, own, 2, why, sizeof(why), &rule) &&
		   strcmp(why, "loopback address 127.0.0.1") == 0,
	   "a NAME rule does not open loopback: %s", why);
	addr_of("2001:4860::8888", &a);
	ok(!ab_net_policy_allows_addr(&p, &a, 443, own, 2, why, sizeof(why), &rule) &&
		   strcmp(why, "the host's own address 2001:4860::8888") == 0,
	   "the host's own address is refused: %s", why);
	addr_of("93.184.216.34", &a);
	ok(ab_net_policy_allows_addr(&p, &a, 443, own, 2, why, sizeof(why), &rule) && rule,
	   "an ADDR allow opens an own address");
	ok(!ab_net_policy_allows_addr(&empty, &a, 443, own, 2, why, sizeof(why), &rule) &&
		   strcmp(why, "the host's own address 93.184.216.34") == 0,
	   "an own address without a rule: %s", why);
	addr_of("::ffff:93.184.216.34", &a);
	ok(!ab_net_policy_allows_addr(&empty, &a, 443, own, 2, why, sizeof(why), &rule) &&
		   strstr(why, "the host's own address"),
	   "an own address, IPv4-mapped: %s", why);
	addr_of("8.8.8.8", &a);
	ok(ab_net_policy_allows_addr(&empty, &a, 443, own, 2, why, sizeof(why), &rule) && rule == NULL && !why[0],
	   "an ordinary address goes (the name was decided before)");
	ok(ab_net_policy_allows_addr(&empty, &a, 443, own, 2, NULL, 0, NULL), "why and rule are optional");
	a.family = AF_UNIX;
	ok(!ab_net_policy_allows_addr(&p, &a, 443, own, 2, why, sizeof(why), &rule), "an unknown family is refused");
	ok(!ab_net_policy_allows_addr(&p, NULL, 443, own, 2, why, sizeof(why), &rule), "no address is refused");
	ab_net_policy_free(&p);
}

static void test_policy_add(void)
{
	struct ab_net_policy p = { 0 };
	struct ab_net_rule r;
	struct ab_error err;
	const struct ab_net_rule *rule;
	char spec[32];
	int rc = 0;

	ab_net_rule_parse("api.example.com", true, &r, &err);
	ok(ab_net_policy_add(&p, &r) == 0 && p.n == 1, "a deny added");
	ok(!ab_net_policy_allows(&p, "api.example.com", 443, &rule), "denied");
	ab_net_rule_parse("API.example.com.", false, &r, &err);
	ok(ab_net_policy_add(&p, &r) == 0 && p.n == 1 && !p.rules[0].deny, "allowing the same rule replaces the deny");
	ok(ab_net_policy_allows(&p, "api.example.com", 443, &rule), "now allowed");
	ab_net_rule_parse("api.example.com:443", true, &r, &err);
	ok(ab_net_policy_add(&p, &r) == 0 && p.n == 2, "a rule with a port is another rule");
	ok(!ab_net_policy_allows(&p, "api.example.com", 443, &rule) && ab_net_policy_allows(&p, "api.example.com", 80, &rule),
	   "its deny closes that port only");
	ab_net_policy_free(&p);

	for (int i = 0; i < AB_NET_MAX_RULES && rc == 0; i++) {
		snprintf(spec, sizeof(spec), "h%d.example", i);
		ab_net_rule_parse(spec, false, &r, &err);
		rc = ab_net_policy_add(&p, &r);
	}
	ok(rc == 0 && p.n == AB_NET_MAX_RULES, "%d rules fit", AB_NET_MAX_RULES);
	ab_net_rule_parse("one-more.example", false, &r, &err);
	ok(ab_net_policy_add(&p, &r) == -ENOSPC, "one more is -ENOSPC");
	ab_net_rule_parse("h7.example", true, &r, &err);
	ok(ab_net_policy_add(&p, &r) == 0 && !ab_net_policy_allows(&p, "h7.example", 1, &rule),
	   "a full policy still takes a replacement");
	ab_net_policy_free(&p);
}

static void test_host_entries(void)
{
	static const struct {
		const char *spec;
		const char *name; /* NULL: refused, and the message holds `addr` */
		const char *addr;
	} cases[] = {
		{ "api.test:127.0.0.1", "api.test", "127.0.0.1" },
		{ "API.Test.:10.0.0.1", "api.test", "10.0.0.1" },
		{ "api.test:[::1]", "api.test", "::1" },
		{ "api.test:::1", "api.test", "::1" },
		{ "v6.test:2001:DB8::7", "v6.test", "2001:db8::7" },
		{ "", NULL, "NAME:ADDRESS" },
		{ "api.test", NULL, "NAME:ADDRESS" },
		{ ":1.2.3.4", NULL, "the name is missing" },
		{ "api.test:", NULL, "the address is missing" },
		{ "api.test:example.com", NULL, "must be an IPv4 address" },
		{ "api.test:1.2.3", NULL, "must be an IPv4 address" },
		{ "api.test:[::1", NULL, "needs its ']'" },
		{ "api.test:[1.2.3.4]", NULL, "IPv6 address only" },
		{ "*.test:1.2.3.4", NULL, "letters, digits" },
		{ "10.1:1.2.3.4", NULL, "neither a host name" },
		{ "a..b:1.2.3.4", NULL, "empty label" },
	};
	struct ab_net_host_entry e;
	struct ab_error err;
	char text[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		int rc = ab_net_host_entry_parse(cases[i].spec, &e, &err);
		if (cases[i].name) {
			inet_ntop(e.addr.family, e.addr.addr, text, sizeof(text));
			ok(rc == 0 && strcmp(e.name, cases[i].name) == 0 && strcmp(text, cases[i].addr) == 0,
			   "--add-host '%s' -> %s = %s (%s)", cases[i].spec, cases[i].name, cases[i].addr,
			   rc == 0 ? text : err.msg);
		} else {
			ok(rc < 0 && strstr(err.msg, cases[i].addr) && strstr(err.msg, "'"), "--add-host '%s' refused: %s",
			   cases[i].spec, err.msg);
		}
	}
}

static void test_fakeip(void)
{
	struct ab_fakeip *m = ab_fakeip_new();
	uint8_t a[4], b[4], c[4];
	static const uint8_t zero[4] = { 198, 18, 0, 0 }, last[4] = { 198, 19, 255, 255 },
			     below[4] = { 198, 17, 255, 255 }, above[4] = { 198, 20, 0, 0 };
	enum { N = 40000 };
	static uint8_t addrs[N][4];
	char name[32];
	size_t cap = 0;
	bool all_ok = true;

	ok(m != NULL, "a table");
	ok(ab_fakeip_for_name(m, "a.example.com", a) == 0 && ab_fakeip_in_range(a) && memcmp(a, zero, 4) != 0,
	   "a name gets an address in 198.18.0.0/15 other than 198.18.0.0: %u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	ok(ab_fakeip_for_name(m, "a.example.com", b) == 0 && memcmp(a, b, 4) == 0, "the same name, the same address");
	ok(ab_fakeip_for_name(m, "b.example.com", c) == 0 && memcmp(a, c, 4) != 0, "another name, another address");
	is_str(ab_fakeip_name(m, a), "a.example.com", "the address leads back to its name");
	is_str(ab_fakeip_name(m, c), "b.example.com", "... for each name");
	ok(ab_fakeip_name(m, zero) == NULL, "198.18.0.0 has no name");
	ok(ab_fakeip_name(m, last) == NULL, "an address not handed out has no name");
	ok(ab_fakeip_name(m, below) == NULL && ab_fakeip_name(m, above) == NULL, "addresses outside have none");
	ok(ab_fakeip_in_range(zero) && ab_fakeip_in_range(last) && !ab_fakeip_in_range(below) &&
		   !ab_fakeip_in_range(above),
	   "the range is 198.18.0.0/15");
	ok(ab_fakeip_for_name(m, "", a) == -EINVAL && ab_fakeip_for_name(m, NULL, a) == -EINVAL &&
		   ab_fakeip_for_name(m, repeat('a', 300), a) == -EINVAL,
	   "empty and overlong names refused");
	ab_fakeip_free(m);

	/* Fill it past its capacity: the least recently handed out addresses are reused. */
	m = ab_fakeip_new();
	for (size_t i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%zu.example", i);
		if (ab_fakeip_for_name(m, name, addrs[i]) < 0 || !ab_fakeip_in_range(addrs[i]) ||
		    memcmp(addrs[i], zero, 4) == 0)
			all_ok = false;
		if (!cap && i > 0 && memcmp(addrs[i], addrs[0], 4) == 0)
			cap = i;
	}
	ok(all_ok, "%d names all got addresses in range", N);
	ok(cap >= 4096 && cap < N, "the table holds %zu names, then reuses", cap);
	{
		static uint8_t seen[1 << 17];
		bool distinct = true, back = true;
		for (size_t i = 0; i < cap; i++) {
			size_t off = (size_t)(addrs[i][1] - 18) << 16 | (size_t)addrs[i][2] << 8 | addrs[i][3];
			if (seen[off]++)
				distinct = false;
		}
		for (size_t i = N - cap; i < N; i++) {
			snprintf(name, sizeof(name), "n%zu.example", i);
			const char *got = ab_fakeip_name(m, addrs[i]);
			if (!got || strcmp(got, name) != 0)
				back = false;
		}
		ok(distinct, "the first %zu names got distinct addresses", cap);
		ok(back, "the %zu most recent names all map back", cap);
		for (size_t i = N - cap; i < N && back; i++) {
			snprintf(name, sizeof(name), "n%zu.example", i);
			if (ab_fakeip_for_name(m, name, a) < 0 || memcmp(a, addrs[i], 4) != 0)
				back = false;
		}
		ok(back, "asking again for each of them gives the same address (no new allocation)");
		snprintf(name, sizeof(name), "n%zu.example", (size_t)0);
		ok(ab_fakeip_name(m, addrs[0]) && strcmp(ab_fakeip_name(m, addrs[0]), name) != 0,
		   "the first name's address went to a later name");
	}
	/* Use order: touch the oldest, add a new name: the second oldest goes. */
	{
		size_t oldest = N - cap, second = N - cap + 1;
		char oldest_name[32], second_name[32];
		snprintf(oldest_name, sizeof(oldest_name), "n%zu.example", oldest);
		snprintf(second_name, sizeof(second_name), "n%zu.example", second);
		ok(ab_fakeip_for_name(m, oldest_name, a) == 0 && memcmp(a, addrs[oldest], 4) == 0, "touch the oldest");
		ok(ab_fakeip_for_name(m, "fresh.example", b) == 0 && memcmp(b, addrs[second], 4) == 0,
		   "a new name takes the least recently handed out address");
		const char *kept = ab_fakeip_name(m, addrs[oldest]);
		ok(kept && strcmp(kept, oldest_name) == 0, "the touched name kept its address");
		is_str(ab_fakeip_name(m, b), "fresh.example", "the reused address leads to the new name");
	}
	ab_fakeip_free(m);
	ab_fakeip_free(NULL);
	ok(ab_fakeip_name(NULL, a) == NULL, "no table, no name");
}

int main(void)
{
	test_parse_good();
	test_parse_bad();
	test_matching();
	test_normalize();
	test_classes();
	test_allows_addr();
	test_policy_add();
	test_host_entries();
	test_fakeip();
	return tap_done();
}
