/* Egress policy as data: allow and deny rules for host names, "*.suffix" wildcards and
 * addresses (with an optional port), and the address classes that stay closed unless an
 * address rule opens them. Pure; fuzzed. */
#ifndef AB_PROXY_RULES_H
#define AB_PROXY_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "../shared/error.h"
#include "http.h" /* AB_HOST_MAX */

#define AB_NET_MAX_RULES 1024
#define AB_NET_RULE_TEXT_MAX (AB_HOST_MAX + 16)

enum ab_net_rule_kind {
	AB_NET_RULE_NAME,   /* "api.example.com": this name only */
	AB_NET_RULE_SUFFIX, /* "*.example.com": any name that ends in ".example.com" */
	AB_NET_RULE_ADDR,   /* "10.1.2.3", "10.0.0.0/8", "[::1]", "fd00::/8": addresses */
};

struct ab_net_rule {
	bool deny;
	enum ab_net_rule_kind kind;
	char host[AB_HOST_MAX]; /* NAME: the name; SUFFIX: "example.com" (no "*."); lower case */
	int family;             /* ADDR: AF_INET or AF_INET6 */
	uint8_t addr[16];       /* ADDR: network bytes (4 used for AF_INET) */
	unsigned prefix;        /* ADDR: prefix length (32/128 for a single address) */
	uint16_t port;          /* 0: any port */
	char text[AB_NET_RULE_TEXT_MAX]; /* normalised, as shown in logs: "*.github.com:443" */
};

/* Parses "HOST", "*.SUFFIX", "ADDR", "ADDR/PREFIX", each with an optional ":PORT"
 * (IPv6 addresses with a port in brackets: "[::1]:443"). Names are lower-cased, one
 * trailing dot dropped, labels of letters, digits, '-' and '_' of 1..63 bytes, 253 in all;
 * a name whose last label is all digits is refused (it is neither a name nor an address:
 * "10.1", "2130706433"). Refused with err naming the spec in quotes and saying what to
 * write instead: "", "*", "*.", "a.*.b", "http://x", "x/path", "x:0", "x:65536", "x:",
 * "[::1", "10.0.0.0/33". Returns 0 or < 0. */
int ab_net_rule_parse(const char *spec, bool deny, struct ab_net_rule *out, struct ab_error *err);

struct ab_net_policy {
	struct ab_net_rule *rules;
	size_t n;
};

/* Adds r; an existing rule with the same text is replaced (so "net allow X" after
 * "net deny X" turns it around). Returns 0, -ENOSPC past AB_NET_MAX_RULES, -ENOMEM. */
int ab_net_policy_add(struct ab_net_policy *p, const struct ab_net_rule *r);
void ab_net_policy_free(struct ab_net_policy *p);

/* What a destination written as text is. */
enum ab_host_kind { AB_HOST_NAME = 1, AB_HOST_IPV4, AB_HOST_IPV6 };

/* Validates and normalises a host from traffic (a CONNECT authority, a SOCKS5 name, an
 * SNI, a Host header, a DNS question): lower case, one trailing dot dropped, brackets of
 * an IPv6 literal removed. Only dotted-quad IPv4 ("1.2.3.4") and inet_pton IPv6 count as
 * addresses; "2130706433", "0x7f.1", "127.1" are refused (-EINVAL), as are empty names
 * and bad labels. Returns the kind, with out filled (and addr for addresses), or -EINVAL. */
int ab_net_host_normalize(const char *in, char *out, size_t out_size, uint8_t addr[16]);

/* The policy's verdict for a destination before resolution: host is normalised (a name
 * or an address literal). Deny rules win over allow rules; no match is a deny. *rule
 * gets the deciding rule, or NULL for the default. Names match NAME and SUFFIX rules
 * ("*.github.com" matches "a.github.com" and "a.b.github.com", not "github.com" nor
 * "evilgithub.com"); address literals match ADDR rules only. Port 0 in a rule matches
 * every port. */
bool ab_net_policy_allows(const struct ab_net_policy *p, const char *host, uint16_t port,
			  const struct ab_net_rule **rule);

/* For DNS: could some port of this name be allowed (an allow rule matches the name and
 * no port-less deny rule does)? *rule as above. */
bool ab_net_policy_allows_name_any_port(const struct ab_net_policy *p, const char *name,
					const struct ab_net_rule **rule);

/* A class of address that is closed unless an address rule opens it: "loopback",
 * "private", "link-local", "cloud metadata", "carrier-grade NAT", "unspecified",
 * "multicast", "reserved", "unique local" ..., or NULL for an ordinary address.
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry. */
const char *ab_net_addr_class(int family, const uint8_t *addr);

/* After resolution, for the address about to be connected to: refused when a deny ADDR
 * rule matches it, when it is in a closed class or among own[] (the host's own
 * addresses) and no allow ADDR rule matches it (with the port). *why gets a short reason
 * ("private address 10.1.2.3", "the host's own address 192.0.2.7", "denied by rule"),
 * *rule the deciding ADDR rule or NULL. Returns true when the connection may go. */
struct ab_net_addr {
	int family;
	uint8_t addr[16];
};
bool ab_net_policy_allows_addr(const struct ab_net_policy *p, const struct ab_net_addr *a,
			       uint16_t port, const struct ab_net_addr *own, size_t n_own,
			       char *why, size_t why_size, const struct ab_net_rule **rule);

/* "--add-host NAME:ADDR": the proxy resolves NAME to ADDR without asking DNS. */
struct ab_net_host_entry {
	char name[AB_HOST_MAX];
	struct ab_net_addr addr;
};
/* Parses "NAME:ADDR" (ADDR an IPv4 or IPv6 literal, IPv6 maybe in brackets). */
int ab_net_host_entry_parse(const char *spec, struct ab_net_host_entry *out, struct ab_error *err);

#endif
