/* The typed messages between agentbox and the sandbox's init, over a SOCK_SEQPACKET pair.
 * The child never prints: what goes wrong inside travels back as {code, text}. */
#ifndef AB_SYNC_H
#define AB_SYNC_H

#include <stdint.h>

#include "../shared/error.h"

enum ab_sync_type {
	AB_SYNC_GO = 1,      /* parent -> child: the id maps are written, go on */
	AB_SYNC_ERROR,       /* child -> parent: setup failed; code and text say why */
	AB_SYNC_PTY,         /* child -> parent: the terminal's master side, as SCM_RIGHTS */
	AB_SYNC_STARTED,     /* child -> parent: the command is running */
	AB_SYNC_EXEC_FAILED, /* child -> parent: the command could not be executed; code = errno */
	AB_SYNC_PROCEED,     /* parent -> child: agentbox's own preparation is done, run the command */
	AB_SYNC_DISK_UPPER,  /* child -> parent: the --disk-limit copy of the changes, as SCM_RIGHTS */
	AB_SYNC_EXITED,      /* child -> parent: the command exited with code and nothing else runs */
	AB_SYNC_NET_LISTENER, /* child -> parent: a proxy listener made in the sandbox's network
			       * namespace, as SCM_RIGHTS; code = kind | family << 8 (proxy.h) */
	AB_SYNC_NET_READY,   /* child -> parent: every listener was sent; the filter is in place */
};

struct ab_sync_msg {
	int32_t type;
	int32_t code;
	char text[AB_ERROR_MSG_MAX];
};

/* Both return 0 or -errno; recv returns -EPIPE when the peer is gone. passed_fd: -1 for none. */
int ab_sync_send(int sock, enum ab_sync_type type, int code, const char *text, int passed_fd);
int ab_sync_recv(int sock, struct ab_sync_msg *msg, int *passed_fd);

#endif
