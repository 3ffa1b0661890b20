/* Starting a filtered sandbox's egress proxy, from the process that runs the sandbox. */
#ifndef AB_EGRESS_H
#define AB_EGRESS_H

#include <stddef.h>
#include <sys/types.h>

#include "../proxy/proxy.h"
#include "../shared/error.h"
#include "config.h"

/* The files of a sandbox's network, in its state directory. */
#define AB_EGRESS_LOG "net.log"
#define AB_EGRESS_CONTROL "net.sock"

/* A filtered sandbox's proxy, from its start to its end. -1 (or pid -1) for what is
 * not, or no longer, held. */
struct ab_egress {
	pid_t pid;        /* the proxy process */
	int lifeline_fd;  /* write end: closing it ends the proxy */
	int listeners_fd; /* where the sandbox's listeners go, once it has made them */
	int ready_fd;     /* the proxy's answer: "OK", or why it could not start */
};

#define AB_EGRESS_INIT { .pid = -1, .lifeline_fd = -1, .listeners_fd = -1, .ready_fd = -1 }

/* Starts the proxy before the sandbox exists, so that its start overlaps the sandbox's:
 * creates STATE_DIR/net.sock (mode 0600, listening) and opens STATE_DIR/net.log for
 * appending (0600), then forks the proxy process: it keeps only the control socket, the
 * log, the read end of a lifeline pipe, the write end of a ready pipe and its end of a
 * SOCK_SEQPACKET socket for the listeners, sets itself up, confines itself and waits for
 * the listeners (ab_proxy_run with listeners_fd). Fills *eg; on failure nothing is left. */
int ab_egress_spawn(const struct ab_config *cfg, const char *state_dir, struct ab_egress *eg,
		    struct ab_error *err);

/* Hands the sandbox's listeners[0..n) to the proxy in one message (their kinds and
 * families as the payload, the fds as SCM_RIGHTS) and closes them here, whatever
 * happens; then waits for the proxy's answer. A proxy that could not start (or refused
 * the listeners) is reaped, and err says why. */
int ab_egress_hand_listeners(struct ab_egress *eg, struct ab_proxy_listener *listeners, size_t n,
			     struct ab_error *err);

/* The sandbox is over (or never started): closes the lifeline and the listener socket,
 * so that the proxy exits, and reaps it. Takes an egress in any state, also never
 * spawned. */
void ab_egress_stop(struct ab_egress *eg);

#endif
