#include "netfilter.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../proxy/proxy.h"
#include "../shared/cleanup.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* The whole ruleset, one nft statement per entry, in the order nft runs them. It lives in
 * the sandbox's own network namespace, where the only interface is "lo" and the default
 * routes lead to it (netns.c): a packet to anywhere is routed, and these rules decide.
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
static const char *const ruleset[] = {
	"add table inet agentbox",
	"add chain inet agentbox nat_output { type nat hook output priority -100; policy accept; }",
	"add rule inet agentbox nat_output udp dport 53 redirect to :" STR(AB_PROXY_DNS_PORT),
	"add rule inet agentbox nat_output ip daddr 127.0.0.0/8 return",
	"add rule inet agentbox nat_output ip6 daddr ::1 return",
	"add rule inet agentbox nat_output meta l4proto tcp redirect to :" STR(AB_PROXY_CAPTURE_PORT),
	"add chain inet agentbox filter_output { type filter hook output priority 0; policy drop; }",
	"add rule inet agentbox filter_output ip daddr 127.0.0.0/8 accept",
	"add rule inet agentbox filter_output ip6 daddr ::1 accept",
	"add rule inet agentbox filter_output reject with icmpx type admin-prohibited",
};

int ab_netfilter_script(char *buf, size_t size)
{
	size_t len = 0;

	for (size_t i = 0; i < AB_ELEMENTSOF(ruleset); i++) {
		size_t n = strlen(ruleset[i]);
		if (len + n + 2 > size)
			return -ENOSPC;
		memcpy(buf + len, ruleset[i], n);
		len += n;
		buf[len++] = '\n';
	}
	if (len + 1 > size)
		return -ENOSPC;
	buf[len] = '\0';
	return (int)len;
}

/* ---- libnftables, loaded at run time ------------------------------------------------- */

/* The few entry points used, declared here (libnftables' own header, <nftables/libnftables.h>,
 * is in a -dev package that building agentbox does not need). Stable since nftables 1.0. */
struct nft_ctx;
#define AB_NFT_CTX_DEFAULT 0

struct nft_api {
	void *handle;
	struct nft_ctx *(*ctx_new)(uint32_t flags);
	void (*ctx_free)(struct nft_ctx *ctx);
	int (*run_cmd_from_buffer)(struct nft_ctx *ctx, const char *buf);
	int (*ctx_buffer_output)(struct nft_ctx *ctx);
	int (*ctx_buffer_error)(struct nft_ctx *ctx);
	const char *(*ctx_get_error_buffer)(struct nft_ctx *ctx);
};

#define AB_NFT_LIBRARY "libnftables.so.1"

static int nft_load(struct nft_api *api, struct ab_error *err)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
		{ "nft_ctx_new", offsetof(struct nft_api, ctx_new) },
		{ "nft_ctx_free", offsetof(struct nft_api, ctx_free) },
		{ "nft_run_cmd_from_buffer", offsetof(struct nft_api, run_cmd_from_buffer) },
		{ "nft_ctx_buffer_output", offsetof(struct nft_api, ctx_buffer_output) },
		{ "nft_ctx_buffer_error", offsetof(struct nft_api, ctx_buffer_error) },
		{ "nft_ctx_get_error_buffer", offsetof(struct nft_api, ctx_get_error_buffer) },
	};

	memset(api, 0, sizeof(*api));
	api->handle = dlopen(AB_NFT_LIBRARY, RTLD_NOW | RTLD_LOCAL);
	if (!api->handle)
		return ab_error_set(err, 0, "network filtering needs '" AB_NFT_LIBRARY
					    "': install the Debian package libnftables1");
	for (size_t i = 0; i < AB_ELEMENTSOF(syms); i++) {
		void *sym = dlsym(api->handle, syms[i].name);
		if (!sym) {
			dlclose(api->handle);
			api->handle = NULL;
			return ab_error_set(err, 0, "'" AB_NFT_LIBRARY "' has no '%s': install libnftables1 1.0 or later",
					    syms[i].name);
		}
		/* POSIX guarantees that a dlsym result converts to a function pointer. */
		memcpy((char *)api + syms[i].offset, &sym, sizeof(sym));
	}
	return 0;
}

/* nft's error text: "Error: what\ncommand\n   ^^^^\n" per failure. The first two lines
 * say what and where; the rest is art. */
static void first_lines(const char *text, char *out, size_t size)
{
	size_t n = 0;
	int lines = 0;

	out[0] = '\0';
	for (const char *p = text; p && *p && lines < 2 && n + 1 < size; p++) {
		if (*p == '\n') {
			lines++;
			if (lines < 2 && n + 3 < size) {
				out[n++] = ':';
				out[n++] = ' ';
			}
			continue;
		}
		out[n++] = *p;
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == ':'))
		n--;
	out[n] = '\0';
}

int ab_netfilter_apply(struct ab_error *err)
{
	struct nft_api api;
	struct nft_ctx *ctx;
	char script[2048], why[512];
	int r;

	r = ab_netfilter_script(script, sizeof(script));
	if (r < 0)
		return ab_error_set(err, -r, "cannot build the nftables ruleset");
	if ((r = nft_load(&api, err)) < 0)
		return r;
	ctx = api.ctx_new(AB_NFT_CTX_DEFAULT);
	if (!ctx) {
		dlclose(api.handle);
		return ab_error_set(err, ENOMEM, "cannot start libnftables");
	}
	/* The sandbox's init never prints: nft's output and errors go to buffers. */
	if (api.ctx_buffer_output(ctx) < 0 || api.ctx_buffer_error(ctx) < 0) {
		r = ab_error_set(err, ENOMEM, "cannot start libnftables");
	} else if (api.run_cmd_from_buffer(ctx, script) != 0) {
		first_lines(api.ctx_get_error_buffer(ctx), why, sizeof(why));
		r = ab_error_set(err, 0, "cannot load the nftables ruleset: %s", why[0] ? why : "nft failed");
	} else {
		r = 0;
	}
	api.ctx_free(ctx);
	dlclose(api.handle);
	return r;
}
