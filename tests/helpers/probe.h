/* probe: what its files share (the layout is described at the top of probe.c). */
#ifndef AGENTBOX_PROBE_H
#define AGENTBOX_PROBE_H

#include <stdbool.h>

/* ---- output helpers (probe.c) ------------------------------------------------------ */

const char *errname(int e);
void report(const char *key, long r, int e);
int usage(void);
bool parse_long(const char *s, long min, long max, long *out);

/* ---- try: syscalls a sandbox must refuse (probe-try.c) ------------------------------ */

int cmd_try(const char *name);

/* ---- network, egress clients and servers, benchmark servers (probe-net.c) ----------- */

int cmd_ifaces(void);
int cmd_link_gso(const char *ifname);
int cmd_connect(const char *ip, const char *port_arg);
int cmd_connect_unix(const char *addr);
int cmd_listen(const char *ip, const char *port_arg, const char *secs_arg);
int cmd_listen_unix(const char *addr, const char *secs_arg);
int cmd_hostname(void);
int cmd_http_get(const char *host, const char *port_arg, const char *path);
int cmd_dns_query(const char *name, const char *type_arg);
int cmd_hold_conns(const char *host, const char *port_arg, const char *n_arg,
		   const char *secs_arg);
int cmd_udp_send(const char *ip, const char *port_arg);
int cmd_ping_raw(const char *ip);
int cmd_send_raw(const char *host, const char *port_arg, const char *secs_arg);
int cmd_serve_bytes(const char *port_arg, const char *n_arg, const char *secs_arg);
int cmd_serve_echo(const char *port_arg, const char *secs_arg);
int cmd_http_bench(const char *host, const char *port_arg, const char *path,
		   const char *n_arg, const char *proxy);
int cmd_echo_conns(const char *host, const char *port_arg, const char *n_arg,
		   const char *proxy);

#endif
