#include "netfilter.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "../proxy/proxy.h"
#include "../shared/cleanup.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* ---- the ruleset, as data ------------------------------------------------------------
 *
 * It lives in the sandbox's own network namespace, where the only interface is "lo" and
 * the default routes lead to it (netns.c): a packet to anywhere is routed, and these rules
 * decide. In nft's words (ab_netfilter_listing prints it from the tables below):
 *
 *   table inet agentbox {
 *           chain nat_output {
 *                   type nat hook output priority -100; policy accept;
 *                   udp dport 53 redirect to :53
 *                   ip daddr 127.0.0.0/8 return
 *                   ip6 daddr ::1 return
 *                   meta l4proto tcp redirect to :15001
 *           }
 *
 *           chain filter_output {
 *                   type filter hook output priority filter; policy drop;
 *                   ip daddr 127.0.0.0/8 accept
 *                   ip6 daddr ::1 accept
 *                   reject with icmpx admin-prohibited
 *           }
 *   }
 *
 * nat_output (priority -100, the NAT hook, before the filter sees the packet):
 *   - UDP to port 53, whatever the address: to the DNS listener. No query leaves.
 *   - anything to loopback: left alone (the proxy's listeners, the sandbox's own servers).
 *   - every other TCP connection: to the capture listener, which reads the original
 *     destination from conntrack (SO_ORIGINAL_DST).
 * filter_output (priority 0): what still is not for loopback after NAT (UDP but DNS, ICMP,
 *   raw sockets, SCTP...) is refused with an error the sender sees at once, never dropped
 *   in silence; the chain's policy drops whatever the reject could not answer.
 * Only the first packet of a connection passes the NAT chain; conntrack rewrites the
 * others the same way before the filter chain sees them. */

#define AB_NFT_TABLE "agentbox" /* of the inet family: IPv4 and IPv6 alike */

enum chain_id { NAT_OUTPUT, FILTER_OUTPUT };

static const struct nf_chain {
	const char *name;
	const char *type;  /* "nat" or "filter" */
	uint32_t hook;     /* NF_INET_* */
	int32_t priority;
	uint32_t policy;   /* NF_ACCEPT or NF_DROP: what happens to a packet no rule decides */
	const char *nft;   /* the chain's settings as nft lists them */
} chains[] = {
	[NAT_OUTPUT] = { "nat_output", "nat", NF_INET_LOCAL_OUT, -100, NF_ACCEPT,
			 "type nat hook output priority -100; policy accept;" },
	[FILTER_OUTPUT] = { "filter_output", "filter", NF_INET_LOCAL_OUT, 0, NF_DROP,
			    "type filter hook output priority filter; policy drop;" },
};

enum verdict {
	V_ACCEPT,   /* let the packet through */
	V_RETURN,   /* leave this chain: the NAT chain leaves the packet as it is */
	V_REDIRECT, /* NAT: to to_port on loopback, the original destination kept by conntrack */
	V_REJECT,   /* refuse with an ICMP (ICMPv6 for IPv6) "administratively prohibited" */
};

/* A rule's matches, all of which must hold (a zero field matches anything), and its
 * verdict. `nft` is the rule as nft lists it; the test checks that the kernel, asked by
 * nft, lists exactly that. */
static const struct nf_rule {
	enum chain_id chain;
	uint8_t nfproto;      /* meta nfproto: NFPROTO_IPV4 or NFPROTO_IPV6 */
	uint8_t daddr_prefix; /* with nfproto: the destination address starts with the first
			       * daddr_prefix bits of daddr, a whole number of bytes */
	uint8_t daddr[16];
	uint8_t l4proto;      /* meta l4proto: IPPROTO_TCP or IPPROTO_UDP */
	uint16_t dport;       /* with l4proto: the destination port */
	enum verdict verdict;
	uint16_t to_port;     /* V_REDIRECT: the port on loopback */
	const char *nft;
} rules[] = {
	{ .chain = NAT_OUTPUT, .l4proto = IPPROTO_UDP, .dport = 53,
	  .verdict = V_REDIRECT, .to_port = AB_PROXY_DNS_PORT,
	  .nft = "udp dport 53 redirect to :" STR(AB_PROXY_DNS_PORT) },
	{ .chain = NAT_OUTPUT, .nfproto = NFPROTO_IPV4, .daddr_prefix = 8, .daddr = { 127 },
	  .verdict = V_RETURN,
	  .nft = "ip daddr 127.0.0.0/8 return" },
	{ .chain = NAT_OUTPUT, .nfproto = NFPROTO_IPV6, .daddr_prefix = 128, .daddr = { [15] = 1 },
	  .verdict = V_RETURN,
	  .nft = "ip6 daddr ::1 return" },
	{ .chain = NAT_OUTPUT, .l4proto = IPPROTO_TCP,
	  .verdict = V_REDIRECT, .to_port = AB_PROXY_CAPTURE_PORT,
	  .nft = "meta l4proto tcp redirect to :" STR(AB_PROXY_CAPTURE_PORT) },
	{ .chain = FILTER_OUTPUT, .nfproto = NFPROTO_IPV4, .daddr_prefix = 8, .daddr = { 127 },
	  .verdict = V_ACCEPT,
	  .nft = "ip daddr 127.0.0.0/8 accept" },
	{ .chain = FILTER_OUTPUT, .nfproto = NFPROTO_IPV6, .daddr_prefix = 128, .daddr = { [15] = 1 },
	  .verdict = V_ACCEPT,
	  .nft = "ip6 daddr ::1 accept" },
	{ .chain = FILTER_OUTPUT,
	  .verdict = V_REJECT,
	  .nft = "reject with icmpx admin-prohibited" },
};

static int append(char *buf, size_t size, size_t *len, const char *a, const char *b, const char *c)
{
	const char *parts[] = { a, b, c };

	for (size_t i = 0; i < AB_ELEMENTSOF(parts); i++) {
		size_t n = strlen(parts[i]);
		if (*len + n + 1 > size)
			return -ENOSPC;
		memcpy(buf + *len, parts[i], n);
		*len += n;
	}
	buf[*len] = '\0';
	return 0;
}

int ab_netfilter_listing(char *buf, size_t size)
{
	size_t len = 0;
	int r;

	if (size == 0)
		return -ENOSPC;
	if ((r = append(buf, size, &len, "table inet ", AB_NFT_TABLE, " {\n")) < 0)
		return r;
	for (size_t c = 0; c < AB_ELEMENTSOF(chains); c++) {
		if ((r = append(buf, size, &len, c ? "\n" : "", "\tchain ", chains[c].name)) < 0 ||
		    (r = append(buf, size, &len, " {\n\t\t", chains[c].nft, "\n")) < 0)
			return r;
		for (size_t i = 0; i < AB_ELEMENTSOF(rules); i++)
			if (rules[i].chain == c && (r = append(buf, size, &len, "\t\t", rules[i].nft, "\n")) < 0)
				return r;
		if ((r = append(buf, size, &len, "\t}\n", "", "")) < 0)
			return r;
	}
	if ((r = append(buf, size, &len, "}\n", "", "")) < 0)
		return r;
	return (int)len;
}

/* ---- libnftnl and libmnl, loaded at run time ------------------------------------------
 *
 * Linked, they would cost every sandbox start their relocations and page faults, also the
 * starts of those without a network; dlopen'ed, only a filtered one pays, and loading them
 * is still most of ab_netfilter_apply's time. Their headers (the -dev packages) give each
 * pointer below the library's own prototype. */

#define AB_NFTNL_LIBRARY "libnftnl.so.11"
#define AB_NFTNL_PACKAGE "libnftnl11"
#define AB_MNL_LIBRARY "libmnl.so.0"
#define AB_MNL_PACKAGE "libmnl0"

#define NFTNL_FUNCTIONS(X)                                                                  \
	X(nftnl_batch_begin) X(nftnl_batch_end) X(nftnl_nlmsg_build_hdr)                    \
	X(nftnl_table_alloc) X(nftnl_table_free) X(nftnl_table_set_str)                     \
	X(nftnl_table_nlmsg_build_payload)                                                  \
	X(nftnl_chain_alloc) X(nftnl_chain_free) X(nftnl_chain_set_str) X(nftnl_chain_set_u32) \
	X(nftnl_chain_set_s32) X(nftnl_chain_nlmsg_build_payload)                           \
	X(nftnl_rule_alloc) X(nftnl_rule_free) X(nftnl_rule_set_str) X(nftnl_rule_add_expr) \
	X(nftnl_rule_nlmsg_build_payload)                                                   \
	X(nftnl_expr_alloc) X(nftnl_expr_set) X(nftnl_expr_set_u8) X(nftnl_expr_set_u32)
#define MNL_FUNCTIONS(X)                                                                    \
	X(mnl_socket_open2) X(mnl_socket_bind) X(mnl_socket_get_fd) X(mnl_socket_sendto)    \
	X(mnl_socket_recvfrom) X(mnl_socket_close)

/* Each field is named after the function it points to: api->nftnl_rule_alloc(). */
struct nft_api {
	void *nftnl, *mnl; /* the dlopen handles */
#define AB_FIELD(f) __typeof__(f) *f;
	NFTNL_FUNCTIONS(AB_FIELD)
	MNL_FUNCTIONS(AB_FIELD)
#undef AB_FIELD
};

static const struct nft_sym {
	bool mnl; /* else libnftnl's */
	const char *name;
	size_t offset;
} nft_syms[] = {
#define AB_NFTNL_SYM(f) { false, #f, offsetof(struct nft_api, f) },
#define AB_MNL_SYM(f) { true, #f, offsetof(struct nft_api, f) },
	NFTNL_FUNCTIONS(AB_NFTNL_SYM)
	MNL_FUNCTIONS(AB_MNL_SYM)
#undef AB_NFTNL_SYM
#undef AB_MNL_SYM
};

static void nft_unload(struct nft_api *api)
{
	if (api->mnl)
		dlclose(api->mnl);
	if (api->nftnl)
		dlclose(api->nftnl);
	memset(api, 0, sizeof(*api));
}

static int nft_load(struct nft_api *api, struct ab_error *err)
{
	memset(api, 0, sizeof(*api));
	/* libnftnl brings libmnl along (it needs it): then libmnl is found by its name among
	 * the objects already loaded, with no second search of the library directories. */
	api->nftnl = dlopen(AB_NFTNL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (api->nftnl)
		api->mnl = dlopen(AB_MNL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (!api->nftnl || !api->mnl) {
		bool no_mnl = !api->mnl && !(api->mnl = dlopen(AB_MNL_LIBRARY, RTLD_NOW | RTLD_LOCAL));

		nft_unload(api);
		if (no_mnl)
			return ab_error_set(err, 0, "network filtering needs '" AB_MNL_LIBRARY
						    "': install the Debian package " AB_MNL_PACKAGE);
		return ab_error_set(err, 0, "network filtering needs '" AB_NFTNL_LIBRARY
					    "': install the Debian package " AB_NFTNL_PACKAGE);
	}
	for (size_t i = 0; i < AB_ELEMENTSOF(nft_syms); i++) {
		const struct nft_sym *s = &nft_syms[i];
		void *sym = dlsym(s->mnl ? api->mnl : api->nftnl, s->name);

		if (!sym) {
			nft_unload(api);
			return ab_error_set(err, 0, "'%s' has no '%s': install a newer %s",
					    s->mnl ? AB_MNL_LIBRARY : AB_NFTNL_LIBRARY, s->name,
					    s->mnl ? AB_MNL_PACKAGE : AB_NFTNL_PACKAGE);
		}
		/* POSIX guarantees that a dlsym result converts to a function pointer. */
		memcpy((char *)api + s->offset, &sym, sizeof(sym));
	}
	return 0;
}

/* The libraries, loaded on first use and kept for the life of the process (the sandbox's
 * init, which applies the ruleset once): unmapping them would cost more than it frees. */
static int nft_api(const struct nft_api **out, struct ab_error *err)
{
	static struct nft_api api;
	int r;

	if (!api.nftnl && (r = nft_load(&api, err)) < 0)
		return r;
	*out = &api;
	return 0;
}

/* ---- rules to nf_tables expressions ---------------------------------------------------
 *
 * Each helper appends one expression to the rule, which owns it from birth; the comment
 * shows it as `nft --debug=netlink` does. Matches load into register 1 and compare it. */

static struct nftnl_expr *expr_add(const struct nft_api *api, struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = api->nftnl_expr_alloc(name);

	if (e)
		api->nftnl_rule_add_expr(r, e);
	return e;
}

/* [ meta load KEY => reg 1 ] */
static int meta_load(const struct nft_api *api, struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = expr_add(api, r, "meta");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return 0;
}

/* [ payload load LENb @ BASE header + OFFSET => reg 1 ] */
static int payload_load(const struct nft_api *api, struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = expr_add(api, r, "payload");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return 0;
}

/* [ cmp eq reg 1 DATA ]: the rule goes on only when register 1 holds data */
static int cmp_eq(const struct nft_api *api, struct nftnl_rule *r, const void *data, uint32_t len)
{
	struct nftnl_expr *e = expr_add(api, r, "cmp");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	return api->nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0 ? -EINVAL : 0;
}

/* [ immediate reg 0 VERDICT ] */
static int imm_verdict(const struct nft_api *api, struct nftnl_rule *r, int code)
{
	struct nftnl_expr *e = expr_add(api, r, "immediate");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)code);
	return 0;
}

/* [ immediate reg 1 PORT ]
 * [ redir proto_min reg 1 proto_max reg 1 flags 0x2 ] */
static int redirect(const struct nft_api *api, struct nftnl_rule *r, uint16_t port)
{
	uint16_t be_port = htons(port);
	struct nftnl_expr *e = expr_add(api, r, "immediate");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	if (api->nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &be_port, sizeof(be_port)) < 0)
		return -EINVAL;
	if (!(e = expr_add(api, r, "redir")))
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX, NFT_REG_1);
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	return 0;
}

/* [ reject type 2 code 3 ]: icmpx (ICMP for IPv4, ICMPv6 for IPv6), administratively
 * prohibited */
static int reject(const struct nft_api *api, struct nftnl_rule *r)
{
	struct nftnl_expr *e = expr_add(api, r, "reject");

	if (!e)
		return -ENOMEM;
	api->nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_ICMPX_UNREACH);
	api->nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, NFT_REJECT_ICMPX_ADMIN_PROHIBITED);
	return 0;
}

/* Where the destination address starts in the network header, and how long it is. */
static bool daddr_field(uint8_t nfproto, uint32_t *offset, uint32_t *len)
{
	switch (nfproto) {
	case NFPROTO_IPV4:
		*offset = offsetof(struct ip, ip_dst);
		*len = sizeof(struct in_addr);
		return true;
	case NFPROTO_IPV6:
		*offset = offsetof(struct ip6_hdr, ip6_dst);
		*len = sizeof(struct in6_addr);
		return true;
	default:
		return false;
	}
}

/* The destination port: at the same offset in the TCP and the UDP header. */
#define AB_L4_DPORT_OFFSET 2

/* The rule's expressions, in the order nft itself makes them: a "udp dport" match is
 * "meta l4proto udp" and the port, an "ip daddr" match "meta nfproto ipv4" and the address
 * (a prefix of whole bytes is compared as such, with no mask). */
static int rule_fill(const struct nft_api *api, struct nftnl_rule *r, const struct nf_rule *rule)
{
	uint32_t offset = 0, len = 0;
	int q;

	if (api->nftnl_rule_set_str(r, NFTNL_RULE_TABLE, AB_NFT_TABLE) < 0 ||
	    api->nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chains[rule->chain].name) < 0)
		return -ENOMEM;
	if (rule->nfproto && ((q = meta_load(api, r, NFT_META_NFPROTO)) < 0 ||
			      (q = cmp_eq(api, r, &rule->nfproto, sizeof(rule->nfproto))) < 0))
		return q;
	if (rule->daddr_prefix) {
		if (!daddr_field(rule->nfproto, &offset, &len) || rule->daddr_prefix % 8 || rule->daddr_prefix / 8 > len)
			return -EINVAL;
		if ((q = payload_load(api, r, NFT_PAYLOAD_NETWORK_HEADER, offset, rule->daddr_prefix / 8u)) < 0 ||
		    (q = cmp_eq(api, r, rule->daddr, rule->daddr_prefix / 8u)) < 0)
			return q;
	}
	if (rule->l4proto && ((q = meta_load(api, r, NFT_META_L4PROTO)) < 0 ||
			      (q = cmp_eq(api, r, &rule->l4proto, sizeof(rule->l4proto))) < 0))
		return q;
	if (rule->dport) {
		uint16_t be_port = htons(rule->dport);

		if (!rule->l4proto)
			return -EINVAL;
		if ((q = payload_load(api, r, NFT_PAYLOAD_TRANSPORT_HEADER, AB_L4_DPORT_OFFSET, sizeof(be_port))) < 0 ||
		    (q = cmp_eq(api, r, &be_port, sizeof(be_port))) < 0)
			return q;
	}
	switch (rule->verdict) {
	case V_ACCEPT: return imm_verdict(api, r, NF_ACCEPT);
	case V_RETURN: return imm_verdict(api, r, NFT_RETURN);
	case V_REDIRECT: return redirect(api, r, rule->to_port);
	case V_REJECT: return reject(api, r);
	}
	return -EINVAL;
}

/* ---- the batch ------------------------------------------------------------------------
 *
 * BATCH_BEGIN, NEWTABLE, then each chain's NEWCHAIN and its NEWRULEs, BATCH_END: the kernel
 * applies it as one transaction, whole or not at all, and acknowledges each change. It
 * fills about 2 KiB; a message never needs AB_NFT_MSG_MAX (the longest rule that struct
 * nf_rule can describe is under 600 bytes), and libnftnl writes without bounds, so that
 * much room is kept free before each one. */

#define AB_NFT_BATCH_SIZE 8192
#define AB_NFT_MSG_MAX 1024
#define AB_NFT_MSGS (AB_ELEMENTSOF(chains) + AB_ELEMENTSOF(rules) + 3)

enum subject { S_BATCH, S_TABLE, S_CHAIN, S_RULE };

struct batch {
	union {
		char buf[AB_NFT_BATCH_SIZE];
		struct nlmsghdr align;
	} u;
	size_t len;
	uint32_t n; /* messages in it: message i has sequence number i + 1 */
	struct {
		enum subject subject;
		const struct nf_chain *chain;
		const struct nf_rule *rule;
	} what[AB_NFT_MSGS];
};

/* Where the next message goes, or NULL when the batch has no room left for one. */
static char *batch_tail(struct batch *b)
{
	if (b->n >= AB_NFT_MSGS || sizeof(b->u.buf) - b->len < AB_NFT_MSG_MAX)
		return NULL;
	return b->u.buf + b->len;
}

static int batch_push(struct batch *b, const struct nlmsghdr *nlh, enum subject subject, const struct nf_chain *chain,
		      const struct nf_rule *rule)
{
	if (nlh->nlmsg_len > AB_NFT_MSG_MAX)
		return -EMSGSIZE;
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	b->what[b->n].subject = subject;
	b->what[b->n].chain = chain;
	b->what[b->n].rule = rule;
	b->n++;
	return 0;
}

/* The header of a change to the ruleset, acknowledged by the kernel one by one. */
static struct nlmsghdr *change_header(const struct nft_api *api, struct batch *b, uint16_t type, uint16_t flags)
{
	char *tail = batch_tail(b);

	if (!tail)
		return NULL;
	return api->nftnl_nlmsg_build_hdr(tail, (uint16_t)(NFNL_SUBSYS_NFTABLES << 8 | type), NFPROTO_INET,
					  flags | NLM_F_ACK, b->n + 1);
}

static int add_table(const struct nft_api *api, struct batch *b)
{
	struct nftnl_table *t = api->nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int r = -ENOMEM;

	if (t && api->nftnl_table_set_str(t, NFTNL_TABLE_NAME, AB_NFT_TABLE) >= 0) {
		/* EXCL: the namespace is new, and a table already there would be a mistake. */
		nlh = change_header(api, b, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
		r = -ENOBUFS;
		if (nlh) {
			api->nftnl_table_nlmsg_build_payload(nlh, t);
			r = batch_push(b, nlh, S_TABLE, NULL, NULL);
		}
	}
	if (t)
		api->nftnl_table_free(t);
	return r;
}

static int add_chain(const struct nft_api *api, struct batch *b, const struct nf_chain *chain)
{
	struct nftnl_chain *c = api->nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int r = -ENOMEM;

	if (c && api->nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, AB_NFT_TABLE) >= 0 &&
	    api->nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, chain->name) >= 0 &&
	    api->nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, chain->type) >= 0) {
		api->nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, chain->hook);
		api->nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, chain->priority);
		api->nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, chain->policy);
		nlh = change_header(api, b, NFT_MSG_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL);
		r = -ENOBUFS;
		if (nlh) {
			api->nftnl_chain_nlmsg_build_payload(nlh, c);
			r = batch_push(b, nlh, S_CHAIN, chain, NULL);
		}
	}
	if (c)
		api->nftnl_chain_free(c);
	return r;
}

static int add_rule(const struct nft_api *api, struct batch *b, const struct nf_rule *rule)
{
	struct nftnl_rule *nr = api->nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int r = -ENOMEM;

	if (nr && (r = rule_fill(api, nr, rule)) >= 0) {
		/* APPEND: after the chain's rules so far, in the table's order. */
		nlh = change_header(api, b, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
		r = -ENOBUFS;
		if (nlh) {
			api->nftnl_rule_nlmsg_build_payload(nlh, nr);
			r = batch_push(b, nlh, S_RULE, &chains[rule->chain], rule);
		}
	}
	if (nr)
		api->nftnl_rule_free(nr);
	return r;
}

static int batch_build(const struct nft_api *api, struct batch *b, struct ab_error *err)
{
	char *tail;
	int r;

	b->len = 0;
	b->n = 0;
	if (!(tail = batch_tail(b)) || batch_push(b, api->nftnl_batch_begin(tail, b->n + 1), S_BATCH, NULL, NULL) < 0)
		return ab_error_set(err, ENOBUFS, "cannot build the nftables batch");
	if ((r = add_table(api, b)) < 0)
		return ab_error_set(err, -r, "cannot build the nftables table '" AB_NFT_TABLE "'");
	for (size_t c = 0; c < AB_ELEMENTSOF(chains); c++) {
		if ((r = add_chain(api, b, &chains[c])) < 0)
			return ab_error_set(err, -r, "cannot build the nftables chain '%s'", chains[c].name);
		for (size_t i = 0; i < AB_ELEMENTSOF(rules); i++)
			if (rules[i].chain == c && (r = add_rule(api, b, &rules[i])) < 0)
				return ab_error_set(err, -r, "cannot build the nftables rule '%s'", rules[i].nft);
	}
	if (!(tail = batch_tail(b)) || batch_push(b, api->nftnl_batch_end(tail, b->n + 1), S_BATCH, NULL, NULL) < 0)
		return ab_error_set(err, ENOBUFS, "cannot build the nftables batch");
	return 0;
}

/* The kernel refused message seq with errno code: say which, and why. */
static int batch_refused(const struct batch *b, uint32_t seq, int code, struct ab_error *err)
{
	if (seq == 0 || seq > b->n)
		return ab_error_set(err, code, "the kernel refused the nftables ruleset");
	switch (b->what[seq - 1].subject) {
	case S_BATCH: return ab_error_set(err, code, "the kernel refused the nftables batch");
	case S_TABLE: return ab_error_set(err, code, "cannot add the nftables table 'inet " AB_NFT_TABLE "'");
	case S_CHAIN: return ab_error_set(err, code, "cannot add the nftables chain '%s'", b->what[seq - 1].chain->name);
	case S_RULE:
		return ab_error_set(err, code, "cannot add the nftables rule '%s' to chain '%s'", b->what[seq - 1].rule->nft,
				    b->what[seq - 1].chain->name);
	}
	return ab_error_set(err, code, "the kernel refused the nftables ruleset");
}

/* Reads the kernel's answers until each change is acknowledged, or one is refused. The
 * kernel answers while it takes the batch, in sendto(): the answers are waiting by the time
 * they are read, and the timeout only stops a broken kernel from hanging the sandbox. */
static int read_acks(const struct nft_api *api, struct mnl_socket *nl, const struct batch *b, struct ab_error *err)
{
	union {
		char buf[AB_NFT_BATCH_SIZE];
		struct nlmsghdr align;
	} u;
	uint64_t want = 0, got = 0;

	_Static_assert(AB_NFT_MSGS <= 64, "one bit per message");
	for (uint32_t i = 0; i < b->n; i++)
		if (b->what[i].subject != S_BATCH)
			want |= UINT64_C(1) << i;
	while (got != want) {
		ssize_t n = api->mnl_socket_recvfrom(nl, u.buf, sizeof(u.buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return ab_error_set(err, ETIMEDOUT, "the kernel did not acknowledge the nftables ruleset");
		if (n < 0)
			return ab_error_set(err, errno, "cannot read the kernel's answer to the nftables ruleset");
		size_t left = (size_t)n;
		for (const struct nlmsghdr *nh = &u.align; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);
			uint32_t seq = nh->nlmsg_seq;

			if (nh->nlmsg_type != NLMSG_ERROR)
				continue;
			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
				return ab_error_set(err, EBADMSG, "cannot read the kernel's answer to the nftables ruleset");
			if (e->error != 0)
				return batch_refused(b, seq, e->error < 0 ? -e->error : e->error, err);
			if (seq >= 1 && seq <= b->n)
				got |= UINT64_C(1) << (seq - 1);
		}
	}
	return 0;
}

static int batch_send(const struct nft_api *api, const struct batch *b, struct ab_error *err)
{
	struct mnl_socket *nl = api->mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	struct timeval timeout = { .tv_sec = 2 };
	int r;

	if (!nl)
		return ab_error_set(err, errno, "cannot open a netfilter netlink socket");
	if (api->mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		r = ab_error_set(err, errno, "cannot bind a netfilter netlink socket");
	else if (setsockopt(api->mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0)
		r = ab_error_set(err, errno, "cannot set a timeout on a netfilter netlink socket");
	else if (api->mnl_socket_sendto(nl, b->u.buf, b->len) < 0)
		r = ab_error_set(err, errno, "cannot send the nftables ruleset to the kernel");
	else
		r = read_acks(api, nl, b, err);
	api->mnl_socket_close(nl);
	return r;
}

int ab_netfilter_apply(struct ab_error *err)
{
	const struct nft_api *api;
	struct batch b;
	int r;

	if ((r = nft_api(&api, err)) < 0 || (r = batch_build(api, &b, err)) < 0)
		return r;
	return batch_send(api, &b, err);
}
