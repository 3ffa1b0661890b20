/* agentbox's side of a sandbox terminal: the caller's terminal in raw mode, relayed to
 * the master of the sandbox's own pty, window size kept in step. */
#ifndef AB_PTY_H
#define AB_PTY_H

#include <stdbool.h>
#include <termios.h>

struct ab_tty_state {
	bool raw;
	struct termios saved;
};

int ab_tty_make_raw(int fd, struct ab_tty_state *st);
void ab_tty_restore(int fd, struct ab_tty_state *st);
void ab_tty_copy_winsize(int from_fd, int to_fd);
/* Moves what is readable from `from` to `to`. 0: moved something; -EAGAIN: nothing now;
 * -EPIPE: `from` is closed (EOF, or EIO from a hung-up master). */
int ab_tty_pump(int from, int to);

struct signalfd_siginfo;

/* A foreground relay: the caller's terminal (stdin, stdout) to a sandbox terminal's master
 * and back, and the caller's signals to the sandbox, until the callbacks say it is over. */
struct ab_relay {
	int sfd;      /* signalfd: SIGCHLD and the forwarded signals */
	int master;   /* the terminal's master side, or -1 (then signals only) */
	int extra_fd; /* one more descriptor to watch (a timer, a pidfd), or -1 */
	/* Any signal but SIGWINCH with a terminal (which resizes it here). True: it is over. */
	bool (*on_signal)(const struct signalfd_siginfo *si, void *ctx);
	/* extra_fd is readable. True: it is over. */
	bool (*on_extra)(void *ctx);
	int sync_fd; /* the sandbox's sync socket, or -1 */
	/* sync_fd is readable: > 0 it is over, 0 go on, < 0 stop watching it (closed). */
	int (*on_sync)(void *ctx);
	void *ctx;
};
/* Puts the caller's terminal in raw mode for the relay and restores it afterwards; what
 * the sandbox wrote last is drained from the master before it returns. */
void ab_relay_terminal(const struct ab_relay *r);

#endif
