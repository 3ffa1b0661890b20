/* What proxy.c (the event loop, listeners, DNS, control) and proxy-conn.c (one TCP
 * connection's life: request, decision, resolution, connect, relay) share. Not an API. */
#ifndef AB_PROXY_INTERNAL_H
#define AB_PROXY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fakeip.h"
#include "proxy.h"
#include "resolve.h"
#include "rules.h"

/* Everything the epoll set watches starts with this: data.ptr points at it. */
enum px_watch_kind {
	PX_W_LISTENER,
	PX_W_CONTROL,        /* the control socket's listener */
	PX_W_CONTROL_CLIENT, /* one accepted control connection */
	PX_W_LIFELINE,
	PX_W_RESOLVER, /* a socket of c-ares */
	PX_W_CLIENT,   /* a connection's sandbox side */
	PX_W_UPSTREAM, /* a connection's outside side */
};

struct px_watch {
	enum px_watch_kind kind;
	int fd;
	uint32_t events; /* what is registered now; 0 with registered: only errors and hangups */
	bool registered;
};

/* An intrusive circular list; a node that is in no list points at itself. */
struct px_node {
	struct px_node *prev, *next;
};

static inline void px_list_init(struct px_node *n) { n->prev = n->next = n; }
static inline bool px_list_empty(const struct px_node *head) { return head->next == head; }
static inline void px_list_del(struct px_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}
static inline void px_list_add_tail(struct px_node *head, struct px_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

#define px_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

enum px_via { PX_VIA_PROXY, PX_VIA_SOCKS, PX_VIA_CAPTURE };

enum px_conn_state {
	PX_HEAD,           /* HTTP: reading the request head */
	PX_SOCKS_GREETING, /* SOCKS5: reading the method offer */
	PX_SOCKS_REQUEST,  /* SOCKS5: reading the CONNECT request */
	PX_SNIFF,          /* capture to an address: reading for a TLS SNI or an HTTP Host */
	PX_RESOLVING,
	PX_CONNECTING,
	PX_RELAY,
	PX_DRAIN, /* a refusal was sent: reading what the client still sends, then closing */
	PX_DEAD,  /* closed; freed after the current batch of events */
};

/* One direction of a relay: bytes from src to dst. "pre" bytes go first (a reply of the
 * proxy, the rewritten request head, bytes read before the decision); then what is read
 * from src passes through a buffer held only while bytes wait in it. Its size grows
 * while reads fill it (bulk transfers: few, large reads and writes) within the proxy's
 * memory budget. */
struct px_dir {
	char *pre;
	size_t pre_off, pre_len;
	bool pre_counts; /* pre bytes are the client's data (counted), not the proxy's reply */
	char *buf;       /* NULL when empty */
	size_t size, off, len;
	size_t want;     /* the size of the next buffer */
	bool eof;        /* src ended */
	bool shut;       /* dst was shut down for writing after everything was passed */
	uint64_t bytes;
};

struct px_conn {
	struct px_proxy *p;
	struct px_watch cw, uw; /* the sandbox side; the outside side (fd -1 until a connect) */
	struct px_node node;    /* in exactly one of the proxy's queues while alive */
	int64_t born_ns, born_ms, deadline_ms;
	enum px_via via;
	enum px_conn_state state;
	int family; /* of the listener */

	char *in; /* bytes read before the decision (head, SOCKS messages, sniffed bytes) */
	size_t in_len, in_cap, in_parsed;

	/* the request */
	char method[16];
	bool http_connect;
	char *upstream_head; /* absolute-URI requests: the rewritten head */
	size_t upstream_len;
	char host[AB_HOST_MAX]; /* normalised; an address literal without brackets */
	uint16_t port;
	bool have_orig;        /* capture: the original destination */
	char orig_text[48];

	/* the decision and the dial */
	char rule[AB_NET_RULE_TEXT_MAX];
	int64_t lookup_id;
	struct ab_net_addr addrs[AB_RESOLVE_MAX_ADDRS];
	size_t n_addrs, next_addr;
	char addr_text[48]; /* the address connected to (or tried last) */
	char last_error[160];

	struct px_dir up, down; /* up: sandbox -> outside; down: outside -> sandbox */
	uint64_t drained;
	struct px_conn *next_dead;
};

#define PX_MAX_RESOLVER_FDS 32
#define PX_MAX_CONTROL_CLIENTS 8
#define PX_BUF_MIN (64u * 1024)
#define PX_BUF_MAX (4u << 20)       /* larger reads and writes stopped paying off here */
#define PX_BUF_BUDGET (256u << 20)  /* past this in all, buffers stay at PX_BUF_MIN */
#define PX_BUF_POOL_MAX 8           /* idle PX_BUF_MAX buffers kept for the next burst */

struct px_control_client {
	struct px_watch w;
	int64_t deadline_ms;
	uid_t uid;
	bool busy;
	bool refused; /* not the owner nor root: answered with an error after its message */
};

struct px_proxy {
	struct ab_proxy_config *cfg;
	int epfd;
	struct ab_resolver *resolver;
	struct ab_fakeip *fake;
	struct ab_net_addr *own;
	size_t n_own;

	struct px_watch listeners[AB_PROXY_MAX_LISTENERS];
	enum ab_proxy_listener_kind listener_kind[AB_PROXY_MAX_LISTENERS];
	int listener_family[AB_PROXY_MAX_LISTENERS];
	size_t n_listeners;
	int64_t listen_paused_until; /* 0: accepting; else out of fds until then */
	struct px_watch control, lifeline;
	struct px_watch resolver_fds[PX_MAX_RESOLVER_FDS];
	struct px_control_client control_clients[PX_MAX_CONTROL_CLIENTS];

	/* every live connection is in one queue; the timed ones are in deadline order */
	struct px_node q_head;  /* HEAD, SOCKS_*: deadline born + head timeout */
	struct px_node q_sniff; /* SNIFF: born + sniff timeout */
	struct px_node q_dial;  /* RESOLVING, CONNECTING: entered + connect timeout */
	struct px_node q_drain; /* DRAIN: entered + drain time */
	struct px_node q_relay; /* RELAY: no deadline */
	size_t n_conns;
	struct px_conn *dead;

	char *bufs[PX_BUF_POOL_MAX]; /* idle buffers of PX_BUF_MAX bytes */
	size_t n_bufs;
	size_t buf_bytes; /* held by directions now */

	bool done;
};

int64_t px_now_ms(void);
/* Sets what fd is watched for (adding it the first time). Returns 0 or -errno. */
int px_watch_set(struct px_proxy *p, struct px_watch *w, uint32_t events);
void px_watch_drop(struct px_proxy *p, struct px_watch *w);

/* proxy-conn.c */
void px_conn_accept(struct px_proxy *p, int fd, enum ab_proxy_listener_kind kind, int family);
void px_conn_event(struct px_proxy *p, struct px_watch *w, uint32_t events);
void px_conn_expire(struct px_proxy *p, struct px_conn *c);
/* Closes the oldest connection still waiting for its first bytes, to make room. Returns
 * false when there is none. */
bool px_conn_evict_one(struct px_proxy *p);
/* Out of file descriptors: evicts as above. */
bool px_make_room(struct px_proxy *p);
/* Closes every connection (the sandbox is over); relayed ones are logged. */
void px_conn_close_all(struct px_proxy *p);
void px_conn_free_dead(struct px_proxy *p);
void px_bufs_free(struct px_proxy *p);

#endif
