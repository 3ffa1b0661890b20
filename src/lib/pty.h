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

#endif
