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

/* Creates STATE_DIR/net.sock (mode 0600, listening) and opens STATE_DIR/net.log for
 * appending (0600), then forks the proxy process: it keeps only the listeners, the
 * control socket, the log and the read end of a lifeline pipe, and calls ab_proxy_run.
 * The listeners are closed in the caller. *lifeline_out is the write end: the caller
 * keeps it open for the sandbox's life (close it, and the proxy exits). */
int ab_egress_start(const struct ab_config *cfg, const char *state_dir,
		    struct ab_proxy_listener *listeners, size_t n_listeners, pid_t *pid_out,
		    int *lifeline_out, struct ab_error *err);

#endif
