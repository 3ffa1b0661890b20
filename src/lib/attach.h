/* Attaching to a detached sandbox's terminal: a supervisor owns the pty master and serves
 * clients over an AF_UNIX SOCK_SEQPACKET socket; one client at a time is the writer (its
 * keystrokes reach the sandbox, its window size is the sandbox's), the others only watch.
 *
 * Every message is one packet: an 8-byte header {uint8 type; uint8 pad[3] (zero); uint32
 * length}, then `length` bytes of payload (at most 64 KiB), integers in host byte order
 * (both ends are on the same machine):
 *   client -> server  HELLO   {uint8 want_write (0|1); uint16 rows, cols}  (first, once)
 *                     INPUT   {bytes, 1 or more}
 *                     RESIZE  {uint16 rows, cols}
 *                     DETACH  {}
 *   server -> client  WELCOME {uint8 is_writer (0|1); uint32 replay_len}, then replay_len
 *                             bytes of recent output as OUTPUT messages
 *                     OUTPUT  {bytes, 1 or more}
 *                     EXITED  {int32 exit code; reason, up to 64 bytes, no NUL}
 *                     ERROR   {text, 1 to 1024 bytes, no NUL}; the server then closes */
#ifndef AB_ATTACH_H
#define AB_ATTACH_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shared/error.h"

#define AB_ATTACH_HEADER_SIZE 8
#define AB_ATTACH_MAX_PAYLOAD (64 * 1024)
#define AB_ATTACH_MAX_MSG (AB_ATTACH_HEADER_SIZE + AB_ATTACH_MAX_PAYLOAD)
#define AB_ATTACH_REASON_MAX 64
#define AB_ATTACH_ERROR_MAX 1024
#define AB_ATTACH_MAX_CLIENTS 32
/* The recent output a new client is shown first. */
#define AB_ATTACH_REPLAY_SIZE (64 * 1024)
/* ab_attach_server_fds never fills more than this. */
#define AB_ATTACH_SERVER_MAX_FDS (1 + AB_ATTACH_MAX_CLIENTS)

enum ab_attach_type {
	AB_MSG_HELLO = 1,
	AB_MSG_INPUT = 2,
	AB_MSG_RESIZE = 3,
	AB_MSG_DETACH = 4,
	AB_MSG_WELCOME = 16,
	AB_MSG_OUTPUT = 17,
	AB_MSG_EXITED = 18,
	AB_MSG_ERROR = 19,
};

/* One decoded message; which fields count depends on the type. */
struct ab_attach_msg {
	enum ab_attach_type type;
	bool want_write;     /* HELLO */
	bool is_writer;      /* WELCOME */
	uint16_t rows, cols; /* HELLO (0 0: not a terminal), RESIZE */
	uint32_t replay_len; /* WELCOME */
	int32_t code;        /* EXITED */
	const void *data;    /* INPUT, OUTPUT bytes; EXITED reason; ERROR text (not NUL-terminated) */
	size_t len;
};

/* Encodes m into buf (AB_ATTACH_MAX_MSG bytes are always enough). Returns the message's
 * length, -EINVAL when m breaks a limit above, -ENOBUFS when size is too small. */
int ab_attach_msg_encode(const struct ab_attach_msg *m, void *buf, size_t size);
/* Decodes one whole packet. m->data points into buf. 0, or -EBADMSG when the packet is
 * not exactly one valid message (unknown type, nonzero padding, a length that disagrees
 * with the packet or the type, a flag other than 0 or 1, a NUL in a text). */
int ab_attach_msg_decode(const void *buf, size_t len, struct ab_attach_msg *m);

/* ---- the server, driven by the supervisor's poll loop ---- */

struct ab_attach_server;

/* Either may be NULL. They may call ab_attach_server_output and _exited, not _handle or
 * _close. */
struct ab_attach_callbacks {
	void (*input)(const void *data, size_t len, void *ctx); /* the writer typed */
	void (*resize)(unsigned rows, unsigned cols, void *ctx); /* the writer's window, also on HELLO */
	void *ctx;
};

/* Listens at socket_path (a stale socket there is replaced; a live one is -EADDRINUSE),
 * mode 0600. A path longer than sun_path is reached through its directory. Only clients
 * of the same user (or root) are served. */
int ab_attach_server_open(struct ab_attach_server **s, const char *socket_path, struct ab_error *err);
/* Fills fds with the listening socket and every client, to poll: POLLIN, and POLLOUT for
 * clients with output waiting. Returns how many (at most AB_ATTACH_SERVER_MAX_FDS), or
 * -ENOBUFS when max is too small. */
int ab_attach_server_fds(struct ab_attach_server *s, struct pollfd *fds, size_t max);
/* Handles what poll reported in fds (as filled by ab_attach_server_fds; other fds in the
 * array are ignored): accepts clients, answers HELLO with WELCOME and the replay (the
 * first client asking to write becomes the writer while there is none; the others are
 * told they only read; when the writer leaves, the next client asking to write takes
 * over, readers stay readers), passes the writer's input and window size to cb, sends
 * queued output, and drops clients that break the protocol (after an ERROR saying why),
 * hang up or fall too far behind (more than 1 MiB queued). Never blocks. Returns 0. */
int ab_attach_server_handle(struct ab_attach_server *s, const struct pollfd *fds, size_t n,
			    const struct ab_attach_callbacks *cb);
/* Sends output to every client, and keeps its last AB_ATTACH_REPLAY_SIZE bytes for the
 * replay to clients yet to come. Never blocks. */
void ab_attach_server_output(struct ab_attach_server *s, const void *data, size_t len);
/* Tells every client that the sandbox ended (reason: "exited", "oom", "timeout",
 * "killed"..., cut to AB_ATTACH_REASON_MAX), waits a little (at most about half a second)
 * for their queues to drain, and closes them. Clients arriving later get the replay and the
 * same news. */
void ab_attach_server_exited(struct ab_attach_server *s, int code, const char *reason);
size_t ab_attach_server_clients(const struct ab_attach_server *s);
/* Closes every client and removes the socket (when it is still the one it bound).
 * Accepts NULL. */
void ab_attach_server_close(struct ab_attach_server *s);

/* ---- the client: the whole of `agentbox attach` ---- */

enum { AB_ATTACH_DETACHED = 1, AB_ATTACH_EXITED, AB_ATTACH_LOST };

/* Connects to socket_path and relays until the user detaches (Ctrl-p Ctrl-q: returns
 * AB_ATTACH_DETACHED; a Ctrl-p followed by anything else is sent as typed), the sandbox
 * exits (AB_ATTACH_EXITED, with *exit_code and reason filled) or the server goes away
 * (AB_ATTACH_LOST). in_fd -> INPUT (nothing when read_only, or when another client is the
 * writer), OUTPUT -> out_fd, SIGWINCH -> RESIZE (SIGWINCH is blocked meanwhile). A
 * terminal in_fd is put in raw mode and always restored. Pipes work too: EOF on in_fd
 * only stops the input. No socket or nobody listening: -ENOENT or -ECONNREFUSED, with
 * err naming the socket; the server refusing the client: -ECONNABORTED with its reason. */
int ab_attach_client(const char *socket_path, int in_fd, int out_fd, bool read_only, int *exit_code,
		     char *reason, size_t reason_size, struct ab_error *err);

#endif
