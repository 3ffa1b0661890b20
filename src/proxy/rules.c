/* Egress policy: rule parsing, host normalisation, matching, and the address classes
 * that stay closed unless an address rule opens them. Pure: no I/O, no global state. */
#include "rules.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../shared/cleanup.h"

#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63
#define SPEC_MAX_LEN (AB_NET_RULE_TEXT_MAX + 64) /* longer specs are refused at once */

/* ---- names ---------------------------------------------------------------------- */

/* Why a name was refused, for messages. */
enum name_fault {
	NAME_OK,
	NAME_EMPTY,
	NAME_EMPTY_LABEL,
	NAME_LONG_LABEL,
	NAME_TOO_LONG,
	NAME_BAD_CHAR,
	NAME_NUMBER,
};

static const char *name_fault_text(enum name_fault f)
{
	switch (f) {
	case NAME_OK: return "";
	case NAME_EMPTY: return "the host name is empty";
	case NAME_EMPTY_LABEL: return "the host name has an empty label ('..', or a leading '.')";
	case NAME_LONG_LABEL: return "a label of the host name is longer than 63 characters";
	case NAME_TOO_LONG: return "the host name is longer than 253 characters";
	case NAME_BAD_CHAR: return "a host name holds only letters, digits, '-', '_' and '.' (write e.g. 'api.example.com')";
	case NAME_NUMBER: return "it is neither a host name nor an address (write an address as four numbers, e.g. '10.0.0.1')";
	}
	return "bad host name";
}

/* Checks in[0..len) as a host name and writes it lower-cased, one trailing dot dropped,
 * NUL-terminated, to out (which holds AB_HOST_MAX bytes). */
static enum name_fault name_normalize(const char *in, size_t len, char out[AB_HOST_MAX])
{
	size_t label = 0;
	bool numeric = true;
	struct in_addr ignored;

	if (len && in[len - 1] == '.')
		len--;
	if (len == 0)
		return NAME_EMPTY;
	if (len > NAME_MAX_LEN)
		return NAME_TOO_LONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c == '.') {
			if (label == 0)
				return NAME_EMPTY_LABEL;
			label = 0;
			numeric = true;
			out[i] = '.';
			continue;
		}
		if (!isascii(c) || (!isalnum(c) && c != '-' && c != '_'))
			return NAME_BAD_CHAR;
		if (++label > LABEL_MAX_LEN)
			return NAME_LONG_LABEL;
		if (!isdigit(c))
			numeric = false;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	if (label == 0)
		return NAME_EMPTY_LABEL;
	/* "10.1", "2130706433", "0x7f.1": a resolver or a libc may read these as addresses
	 * (inet_aton does), so they are no names of ours. */
	if (numeric || inet_aton(out, &ignored))
		return NAME_NUMBER;
	return NAME_OK;
}

/* A strict address literal: dotted quad, or inet_pton IPv6. len < 64. */
static int parse_addr(const char *in, size_t len, uint8_t addr[16])
{
	char buf[64];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, in, len);
	buf[len] = '\0';
	if (memchr(buf, ':', len))
		return inet_pton(AF_INET6, buf, addr) == 1 ? AF_INET6 : 0;
	return inet_pton(AF_INET, buf, addr) == 1 ? AF_INET : 0;
}

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t nat64_prefix[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };

/* An IPv4-mapped IPv6 address becomes the IPv4 address it carries. */
static int unmap(int family, const uint8_t *in, uint8_t out[16])
{
	if (family == AF_INET6 && memcmp(in, v4mapped_prefix, 12) == 0) {
		memset(out, 0, 16);
		memcpy(out, in + 12, 4);
		return AF_INET;
	}
	memset(out, 0, 16);
	memcpy(out, in, family == AF_INET ? 4 : 16);
	return family;
}

int ab_net_host_normalize(const char *in, char *out, size_t out_size, uint8_t addr[16])
{
	uint8_t a[16] = { 0 };
	char buf[AB_HOST_MAX];
	size_t len;
	int family, kind;

	if (!in || !out)
		return -EINVAL;
	len = strnlen(in, AB_HOST_MAX + 1);
	if (len == 0 || len > AB_HOST_MAX)
		return -EINVAL;
	if (in[0] == '[') {
		if (len < 3 || in[len - 1] != ']' || parse_addr(in + 1, len - 2, a) != AF_INET6)
			return -EINVAL;
		family = AF_INET6;
	} else {
		family = parse_addr(in, len, a);
		if (!family && memchr(in, ':', len))
			return -EINVAL;
	}
	if (family) {
		if (!inet_ntop(family, a, buf, sizeof(buf)))
			return -EINVAL;
		kind = family == AF_INET ? AB_HOST_IPV4 : AB_HOST_IPV6;
	} else {
		if (name_normalize(in, len, buf) != NAME_OK)
			return -EINVAL;
		kind = AB_HOST_NAME;
	}
	if (strlen(buf) >= out_size)
		return -EINVAL;
	strcpy(out, buf);
	if (addr)
		memcpy(addr, a, 16);
	return kind;
}

/* ---- rules ---------------------------------------------------------------------- */

/* The spec as it may appear in a message: printable, at most 80 characters. */
static void shown(const char *spec, char out[96])
{
	size_t i = 0;

	for (; spec[i] && i < 80; i++)
		out[i] = isprint((unsigned char)spec[i]) ? spec[i] : '?';
	if (spec[i])
		memcpy(out + i, "...", 4);
	else
		out[i] = '\0';
}

static bool all_digits(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* "scheme://[user@]host[:port][/...]" -> the advice of what to write instead. */
static int refuse_url(const char *spec, const char *show, struct ab_error *err)
{
	const char *auth = strstr(spec, "://") + 3;
	size_t n = strcspn(auth, "/?#");
	const char *at = memchr(auth, '@', n);
	char host[96] = "", port[8] = "443";
	const char *colon;

	if (at) {
		n -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	colon = auth[0] == '[' ? NULL : memchr(auth, ':', n);
	if (auth[0] == '[') {
		const char *close = memchr(auth, ']', n);
		if (close && close[1] == ':' && all_digits(close + 2, n - (size_t)(close + 2 - auth)) &&
		    n - (size_t)(close + 2 - auth) < sizeof(port)) {
			snprintf(port, sizeof(port), "%.*s", (int)(n - (size_t)(close + 2 - auth)), close + 2);
			n = (size_t)(close + 1 - auth);
		}
	} else if (colon && all_digits(colon + 1, n - (size_t)(colon + 1 - auth)) &&
		   n - (size_t)(colon + 1 - auth) < sizeof(port)) {
		snprintf(port, sizeof(port), "%.*s", (int)(n - (size_t)(colon + 1 - auth)), colon + 1);
		n = (size_t)(colon - auth);
	}
	for (size_t i = 0; i < n && i < 80; i++)
		host[i] = isprint((unsigned char)auth[i]) ? auth[i] : '?';
	host[n < 80 ? n : 80] = '\0';
	if (!host[0])
		return ab_error_set(err, 0,
				    "bad network rule '%s': write a host name, not a URL (write 'example.com' or 'example.com:443')",
				    show);
	return ab_error_set(err, 0, "bad network rule '%s': write a host name, not a URL (write '%s' or '%s:%s')", show,
			    host, host, port);
}

static void mask_prefix(uint8_t *addr, unsigned bytes, unsigned prefix)
{
	for (unsigned i = 0; i < bytes; i++) {
		unsigned bits = prefix > 8 * i ? prefix - 8 * i : 0;
		if (bits < 8)
			addr[i] &= (uint8_t)(0xff00u >> bits);
	}
}

/* Builds r->text from the parsed fields. */
static void rule_text(struct ab_net_rule *r)
{
	char port[8] = "";

	if (r->port)
		snprintf(port, sizeof(port), ":%u", (unsigned)r->port);
	switch (r->kind) {
	case AB_NET_RULE_NAME:
		snprintf(r->text, sizeof(r->text), "%s%s", r->host, port);
		return;
	case AB_NET_RULE_SUFFIX:
		snprintf(r->text, sizeof(r->text), "*.%s%s", r->host, port);
		return;
	case AB_NET_RULE_ADDR: {
		char a[INET6_ADDRSTRLEN] = "?", host[INET6_ADDRSTRLEN + 8];
		unsigned full = r->family == AF_INET ? 32 : 128;
		inet_ntop(r->family, r->addr, a, sizeof(a));
		if (r->prefix == full)
			snprintf(host, sizeof(host), "%s", a);
		else
			snprintf(host, sizeof(host), "%s/%u", a, r->prefix);
		snprintf(r->host, sizeof(r->host), "%s", host);
		if (r->family == AF_INET6 && r->port)
			snprintf(r->text, sizeof(r->text), "[%s]%s", host, port);
		else
			snprintf(r->text, sizeof(r->text), "%s%s", host, port);
		return;
	}
	}
}

int ab_net_rule_parse(const char *spec, bool deny, struct ab_net_rule *out, struct ab_error *err)
{
	char show[96];
	const char *host, *port_s = NULL, *prefix_s = NULL;
	size_t host_len, port_len = 0, prefix_len = 0, len;
	bool bracketed = false;
	uint8_t a[16] = { 0 };
	int family = 0;

	memset(out, 0, sizeof(*out));
	out->deny = deny;
	if (!spec || !*spec)
		return ab_error_set(err, 0,
				    "bad network rule '': write a host name ('api.example.com'), a domain ('*.example.com') or an address ('10.0.0.1'), with ':PORT' if you like");
	shown(spec, show);
	len = strlen(spec);
	if (len > SPEC_MAX_LEN)
		return ab_error_set(err, 0, "bad network rule '%s': it is longer than %d characters", show, SPEC_MAX_LEN);
	if (strstr(spec, "://"))
		return refuse_url(spec, show, err);
	for (size_t i = 0; i < len; i++)
		if (!isgraph((unsigned char)spec[i]))
			return ab_error_set(err, 0,
					    "bad network rule '%s': write one host per rule, in ASCII, without spaces (e.g. 'api.example.com'; an international name in its 'xn--' form)",
					    show);

	/* Split HOST, /PREFIX and :PORT. */
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		const char *rest;
		if (!close)
			return ab_error_set(err, 0,
					    "bad network rule '%s': a '[' needs its ']' (write '[::1]' or '[::1]:443')", show);
		bracketed = true;
		host = spec + 1;
		host_len = (size_t)(close - host);
		rest = close + 1;
		if (*rest == '/') {
			prefix_s = rest + 1;
			prefix_len = strcspn(prefix_s, ":");
			rest = prefix_s + prefix_len;
		}
		if (*rest == ':') {
			port_s = rest + 1;
			port_len = strlen(port_s);
		} else if (*rest) {
			return ab_error_set(err, 0,
					    "bad network rule '%s': after ']' write ':PORT' or nothing (e.g. '[2001:db8::1]:443')",
					    show);
		}
		if (memchr(host, '/', host_len)) {
			if (prefix_s)
				return ab_error_set(err, 0, "bad network rule '%s': give the prefix length once", show);
			const char *slash = memchr(host, '/', host_len);
			prefix_s = slash + 1;
			prefix_len = host_len - (size_t)(prefix_s - host);
			host_len = (size_t)(slash - host);
		}
	} else {
		size_t colons = 0;
		for (size_t i = 0; i < len; i++)
			colons += spec[i] == ':';
		host = spec;
		host_len = len;
		if (colons == 1) {
			const char *colon = strchr(spec, ':');
			host_len = (size_t)(colon - spec);
			port_s = colon + 1;
			port_len = strlen(port_s);
		}
		if (memchr(host, '/', host_len)) {
			const char *slash = memchr(host, '/', host_len);
			prefix_s = slash + 1;
			prefix_len = host_len - (size_t)(prefix_s - host);
			host_len = (size_t)(slash - host);
		}
	}

	if (port_s) {
		unsigned long v = 0;
		if (port_len == 0) {
			/* The advice: the spec without its ':' (with brackets, "[::1]:" -> "[::1]"). */
			int n = (int)(port_s - 1 - spec) < 80 ? (int)(port_s - 1 - spec) : 80;
			return ab_error_set(err, 0,
					    "bad network rule '%s': the port is missing after ':' (write '%.*s' for every port, or '%.*s:443')",
					    show, n, spec, n, spec);
		}
		if (port_len > 5 || !all_digits(port_s, port_len))
			return ab_error_set(err, 0, "bad network rule '%s': the port must be 1-65535", show);
		for (size_t i = 0; i < port_len; i++)
			v = v * 10 + (unsigned long)(port_s[i] - '0');
		if (v < 1 || v > 65535)
			return ab_error_set(err, 0, "bad network rule '%s': the port must be 1-65535", show);
		out->port = (uint16_t)v;
	}
	if (host_len == 0)
		return ab_error_set(err, 0, "bad network rule '%s': the host is missing (write 'example.com:443')", show);

	family = parse_addr(host, host_len, a);
	if (bracketed && family != AF_INET6)
		return ab_error_set(err, 0,
				    "bad network rule '%s': brackets hold an IPv6 address only (write '[2001:db8::1]:443', or a name without brackets)",
				    show);
	if (!family && memchr(host, ':', host_len))
		return ab_error_set(err, 0,
				    "bad network rule '%s': not an IPv6 address (write an IPv6 address with a port as '[2001:db8::1]:443')",
				    show);

	if (prefix_s) {
		unsigned long v = 0;
		unsigned full = family == AF_INET ? 32 : 128;
		if (!family)
			return ab_error_set(err, 0,
					    "bad network rule '%s': write a host name without a path (write '%.*s')", show,
					    (int)(host_len < 80 ? host_len : 80), spec);
		if (prefix_len == 0 || prefix_len > 3 || !all_digits(prefix_s, prefix_len))
			return ab_error_set(err, 0, "bad network rule '%s': the prefix length must be 0-%u", show, full);
		for (size_t i = 0; i < prefix_len; i++)
			v = v * 10 + (unsigned long)(prefix_s[i] - '0');
		if (v > full)
			return ab_error_set(err, 0, "bad network rule '%s': the prefix length must be 0-%u", show, full);
		out->prefix = (unsigned)v;
	}

	if (family) {
		out->kind = AB_NET_RULE_ADDR;
		if (!prefix_s)
			out->prefix = family == AF_INET ? 32 : 128;
		/* "::ffff:10.0.0.1" is the IPv4 address it carries. */
		if (family == AF_INET6 && out->prefix >= 96 && memcmp(a, v4mapped_prefix, 12) == 0) {
			memmove(a, a + 12, 4);
			memset(a + 4, 0, 12);
			family = AF_INET;
			out->prefix -= 96;
		}
		out->family = family;
		mask_prefix(a, family == AF_INET ? 4 : 16, out->prefix);
		memcpy(out->addr, a, 16);
		rule_text(out);
		return 0;
	}

	if (memchr(host, '*', host_len)) {
		enum name_fault f;
		if (host_len == 1)
			return ab_error_set(err, 0,
					    "bad network rule '%s': '*' alone would allow every host (write names, or '*.example.com' for a domain's subdomains)",
					    show);
		if (host_len < 2 || host[0] != '*' || host[1] != '.' || memchr(host + 1, '*', host_len - 1))
			return ab_error_set(err, 0,
					    "bad network rule '%s': '*' may only stand first, followed by '.' (write '*.example.com')",
					    show);
		if (host_len == 2)
			return ab_error_set(err, 0,
					    "bad network rule '%s': a wildcard needs a domain after '*.' (write '*.example.com')",
					    show);
		f = name_normalize(host + 2, host_len - 2, out->host);
		if (f != NAME_OK)
			return ab_error_set(err, 0, "bad network rule '%s': %s", show, name_fault_text(f));
		out->kind = AB_NET_RULE_SUFFIX;
		rule_text(out);
		return 0;
	}

	{
		enum name_fault f = name_normalize(host, host_len, out->host);
		if (f != NAME_OK)
			return ab_error_set(err, 0, "bad network rule '%s': %s", show, name_fault_text(f));
	}
	out->kind = AB_NET_RULE_NAME;
	rule_text(out);
	return 0;
}

int ab_net_policy_add(struct ab_net_policy *p, const struct ab_net_rule *r)
{
	struct ab_net_rule *grown;

	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->rules[i].text, r->text) == 0) {
			p->rules[i] = *r;
			return 0;
		}
	if (p->n >= AB_NET_MAX_RULES)
		return -ENOSPC;
	grown = realloc(p->rules, (p->n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	grown[p->n++] = *r;
	p->rules = grown;
	return 0;
}

void ab_net_policy_free(struct ab_net_policy *p)
{
	if (!p)
		return;
	free(p->rules);
	p->rules = NULL;
	p->n = 0;
}

/* ---- matching ------------------------------------------------------------------- */

static bool port_matches(const struct ab_net_rule *r, uint16_t port)
{
	return r->port == 0 || r->port == port;
}

static bool name_matches(const struct ab_net_rule *r, const char *name, size_t len)
{
	size_t sl;

	if (r->kind == AB_NET_RULE_NAME)
		return strcmp(r->host, name) == 0;
	if (r->kind != AB_NET_RULE_SUFFIX)
		return false;
	sl = strlen(r->host);
	return len > sl + 1 && name[len - sl - 1] == '.' && memcmp(name + len - sl, r->host, sl) == 0;
}

/* family/addr already unmapped. */
static bool addr_matches(const struct ab_net_rule *r, int family, const uint8_t *addr)
{
	unsigned full, bytes, bits;

	if (r->kind != AB_NET_RULE_ADDR || r->family != family)
		return false;
	full = family == AF_INET ? 32 : 128;
	if (r->prefix > full)
		return false;
	bytes = r->prefix / 8;
	bits = r->prefix % 8;
	if (memcmp(r->addr, addr, bytes) != 0)
		return false;
	if (bits) {
		uint8_t m = (uint8_t)(0xff00u >> bits);
		if ((r->addr[bytes] & m) != (addr[bytes] & m))
			return false;
	}
	return true;
}

/* Among several matching rules, the one named as deciding is the most specific: an exact
 * name, then the longest suffix or prefix, then one with a port. */
static unsigned specificity(const struct ab_net_rule *r)
{
	unsigned s = r->port ? 1 : 0;

	switch (r->kind) {
	case AB_NET_RULE_NAME: return s + 4000;
	case AB_NET_RULE_SUFFIX: return s + 1000 + 2 * (unsigned)strlen(r->host);
	case AB_NET_RULE_ADDR: return s + 2 * r->prefix;
	}
	return s;
}

/* Deny rules win over allow rules; any_port: the port does not matter, and only port-less
 * deny rules count. */
static bool decide(const struct ab_net_policy *p, int kind, const char *name, int family, const uint8_t *addr,
		   uint16_t port, bool any_port, const struct ab_net_rule **rule)
{
	const struct ab_net_rule *allow = NULL, *deny = NULL;
	size_t len = name ? strlen(name) : 0;

	for (size_t i = 0; p && i < p->n; i++) {
		const struct ab_net_rule *r = &p->rules[i];
		const struct ab_net_rule **best = r->deny ? &deny : &allow;
		bool match;
		if (any_port ? (r->deny && r->port != 0) : !port_matches(r, port))
			continue;
		match = kind == AB_HOST_NAME ? name_matches(r, name, len) : addr_matches(r, family, addr);
		if (match && (!*best || specificity(r) > specificity(*best)))
			*best = r;
	}
	*rule = deny ? deny : allow;
	return !deny && allow;
}

bool ab_net_policy_allows(const struct ab_net_policy *p, const char *host, uint16_t port,
			  const struct ab_net_rule **rule)
{
	const struct ab_net_rule *ignored;
	char norm[AB_HOST_MAX];
	uint8_t a[16], u[16];
	int kind, family;

	if (!rule)
		rule = &ignored;
	*rule = NULL;
	kind = host ? ab_net_host_normalize(host, norm, sizeof(norm), a) : -EINVAL;
	if (kind < 0)
		return false;
	family = unmap(kind == AB_HOST_IPV4 ? AF_INET : AF_INET6, a, u);
	return decide(p, kind, norm, family, u, port, false, rule);
}

bool ab_net_policy_allows_name_any_port(const struct ab_net_policy *p, const char *name,
					const struct ab_net_rule **rule)
{
	const struct ab_net_rule *ignored;
	char norm[AB_HOST_MAX];

	if (!rule)
		rule = &ignored;
	*rule = NULL;
	if (!name || ab_net_host_normalize(name, norm, sizeof(norm), NULL) != AB_HOST_NAME)
		return false;
	return decide(p, AB_HOST_NAME, norm, 0, NULL, 0, true, rule);
}

/* ---- address classes ------------------------------------------------------------ */

static const char *v4_class(const uint8_t *a)
{
	uint32_t x = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	static const struct {
		uint32_t net;
		unsigned prefix;
		const char *what;
	} table[] = {
		/* Single addresses first: they sit inside the ranges below. */
		{ 0xa9fea9fe, 32, "cloud metadata" },    /* 169.254.169.254 */
		{ 0x646464c8, 32, "cloud metadata" },    /* 100.100.100.200 (Alibaba) */
		{ 0xffffffff, 32, "reserved" },          /* limited broadcast */
		{ 0x00000000, 8, "unspecified" },        /* 0.0.0.0/8 */
		{ 0x0a000000, 8, "private" },            /* 10/8 */
		{ 0xac100000, 12, "private" },           /* 172.16/12 */
		{ 0xc0a80000, 16, "private" },           /* 192.168/16 */
		{ 0x7f000000, 8, "loopback" },           /* 127/8 */
		{ 0xa9fe0000, 16, "link-local" },        /* 169.254/16 */
		{ 0x64400000, 10, "carrier-grade NAT" }, /* 100.64/10 */
		{ 0xc0000000, 24, "reserved" },          /* 192.0.0.0/24 IETF protocol assignments */
		{ 0xc0000200, 24, "reserved" },          /* 192.0.2/24 TEST-NET-1 */
		{ 0xc6336400, 24, "reserved" },          /* 198.51.100/24 TEST-NET-2 */
		{ 0xcb007100, 24, "reserved" },          /* 203.0.113/24 TEST-NET-3 */
		{ 0xc6120000, 15, "reserved" },          /* 198.18/15 benchmarks (our fake addresses) */
		{ 0xe0000000, 4, "multicast" },          /* 224/4 */
		{ 0xf0000000, 4, "reserved" },           /* 240/4 */
	};

	for (size_t i = 0; i < AB_ELEMENTSOF(table); i++) {
		uint32_t mask = table[i].prefix ? 0xffffffffu << (32 - table[i].prefix) : 0;
		if ((x & mask) == table[i].net)
			return table[i].what;
	}
	return NULL;
}

const char *ab_net_addr_class(int family, const uint8_t *a)
{
	static const uint8_t any[16], loop[16] = { [15] = 1 };
	static const uint8_t ec2_metadata[16] = { 0xfd, 0x00, 0x0e, 0xc2, [15] = 0x54, [14] = 0x02 };
	static const uint8_t discard[8] = { 0x01, 0x00 }; /* 100::/64 */

	if (!a)
		return "unspecified";
	if (family == AF_INET)
		return v4_class(a);
	if (family != AF_INET6)
		return "unspecified";
	if (memcmp(a, v4mapped_prefix, 12) == 0 || memcmp(a, nat64_prefix, 12) == 0)
		return v4_class(a + 12);
	if (memcmp(a, any, 16) == 0)
		return "unspecified";
	if (memcmp(a, loop, 16) == 0)
		return "loopback";
	if (memcmp(a, any, 12) == 0)
		return "reserved"; /* ::/96, the deprecated IPv4-compatible addresses */
	if (memcmp(a, ec2_metadata, 16) == 0)
		return "cloud metadata";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "link-local"; /* fe80::/10 */
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
		return "reserved"; /* fec0::/10, the deprecated site-local addresses */
	if ((a[0] & 0xfe) == 0xfc)
		return "unique local"; /* fc00::/7 */
	if (a[0] == 0xff)
		return "multicast";
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8)
		return "reserved"; /* 2001:db8::/32 documentation */
	if (memcmp(a, discard, 8) == 0)
		return "reserved";
	if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0x00 && a[5] == 0x01)
		return "reserved"; /* 64:ff9b:1::/48, local-use NAT64: the IPv4 inside is not at a fixed place */
	return NULL;
}

bool ab_net_policy_allows_addr(const struct ab_net_policy *p, const struct ab_net_addr *a,
			       uint16_t port, const struct ab_net_addr *own, size_t n_own,
			       char *why, size_t why_size, const struct ab_net_rule **rule)
{
	const struct ab_net_rule *ignored, *decided = NULL;
	char text[INET6_ADDRSTRLEN] = "?";
	const char *cls;
	uint8_t u[16];
	int family;

	if (!rule)
		rule = &ignored;
	*rule = NULL;
	if (why && why_size)
		why[0] = '\0';
	if (!a || (a->family != AF_INET && a->family != AF_INET6)) {
		if (why && why_size)
			snprintf(why, why_size, "not an internet address");
		return false;
	}
	inet_ntop(a->family, a->addr, text, sizeof(text));
	family = unmap(a->family, a->addr, u);
	/* An ADDR rule decides first: a deny closes, an allow opens even a closed class. */
	if (decide(p, AB_HOST_IPV4, NULL, family, u, port, false, &decided)) {
		*rule = decided;
		return true;
	}
	if (decided) {
		*rule = decided;
		if (why && why_size)
			snprintf(why, why_size, "denied by rule");
		return false;
	}
	cls = ab_net_addr_class(a->family, a->addr);
	if (cls) {
		if (why && why_size)
			snprintf(why, why_size, "%s address %s", cls, text);
		return false;
	}
	for (size_t i = 0; own && i < n_own; i++) {
		uint8_t o[16];
		int of;
		if (own[i].family != AF_INET && own[i].family != AF_INET6)
			continue;
		of = unmap(own[i].family, own[i].addr, o);
		if (of == family && memcmp(o, u, family == AF_INET ? 4 : 16) == 0) {
			if (why && why_size)
				snprintf(why, why_size, "the host's own address %s", text);
			return false;
		}
	}
	return true;
}

/* ---- --add-host ----------------------------------------------------------------- */

int ab_net_host_entry_parse(const char *spec, struct ab_net_host_entry *out, struct ab_error *err)
{
	char show[96], name[AB_HOST_MAX];
	const char *colon, *addr;
	size_t name_len, addr_len;
	enum name_fault f;
	int family;

	memset(out, 0, sizeof(*out));
	if (!spec || !*spec)
		return ab_error_set(err, 0, "bad --add-host '': write NAME:ADDRESS (e.g. 'api.test:127.0.0.1')");
	shown(spec, show);
	if (strlen(spec) > SPEC_MAX_LEN)
		return ab_error_set(err, 0, "bad --add-host '%s': it is longer than %d characters", show, SPEC_MAX_LEN);
	colon = strchr(spec, ':');
	if (!colon)
		return ab_error_set(err, 0, "bad --add-host '%s': write NAME:ADDRESS (e.g. 'api.test:127.0.0.1')", show);
	name_len = (size_t)(colon - spec);
	addr = colon + 1;
	addr_len = strlen(addr);
	if (name_len == 0)
		return ab_error_set(err, 0, "bad --add-host '%s': the name is missing before ':' (e.g. 'api.test:127.0.0.1')",
				    show);
	if (addr_len == 0)
		return ab_error_set(err, 0, "bad --add-host '%s': the address is missing after ':' (e.g. 'api.test:127.0.0.1')",
				    show);
	f = name_normalize(spec, name_len, name);
	if (f != NAME_OK)
		return ab_error_set(err, 0, "bad --add-host '%s': %s", show, name_fault_text(f));
	if (addr[0] == '[') {
		if (addr_len < 3 || addr[addr_len - 1] != ']')
			return ab_error_set(err, 0, "bad --add-host '%s': a '[' needs its ']' (write 'NAME:[2001:db8::1]')",
					    show);
		family = parse_addr(addr + 1, addr_len - 2, out->addr.addr);
		if (family != AF_INET6)
			return ab_error_set(err, 0, "bad --add-host '%s': brackets hold an IPv6 address only", show);
	} else {
		family = parse_addr(addr, addr_len, out->addr.addr);
	}
	if (!family)
		return ab_error_set(err, 0,
				    "bad --add-host '%s': the address must be an IPv4 address ('127.0.0.1') or an IPv6 address ('::1')",
				    show);
	out->addr.family = family;
	memcpy(out->name, name, sizeof(name));
	return 0;
}
