#include "pty.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "../shared/strutil.h"

int ab_tty_make_raw(int fd, struct ab_tty_state *st)
{
	struct termios raw;

	st->raw = false;
	if (!isatty(fd))
		return 0;
	if (tcgetattr(fd, &st->saved) < 0)
		return -errno;
	raw = st->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSANOW, &raw) < 0)
		return -errno;
	st->raw = true;
	return 0;
}

void ab_tty_restore(int fd, struct ab_tty_state *st)
{
	if (st->raw) {
		tcsetattr(fd, TCSAFLUSH, &st->saved);
		st->raw = false;
	}
}

void ab_tty_copy_winsize(int from_fd, int to_fd)
{
	struct winsize ws;

	if (ioctl(from_fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col)
		ioctl(to_fd, TIOCSWINSZ, &ws);
}

int ab_tty_pump(int from, int to)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return -EAGAIN;
		return -EPIPE; /* EIO: every slave fd is closed */
	}
	if (n == 0)
		return -EPIPE;
	return ab_write_all(to, buf, (size_t)n) < 0 ? -EPIPE : 0;
}

/* After the sandbox is gone, what it wrote last may still be on its way through the
 * terminal layer: read until the master reports the hang-up, with a bound in case a
 * leaked descriptor keeps the terminal open. */
static void drain_master(int master)
{
	for (;;) {
		struct pollfd p = { .fd = master, .events = POLLIN };
		if (poll(&p, 1, 500) <= 0 || ab_tty_pump(master, STDOUT_FILENO) == -EPIPE)
			return;
	}
}

void ab_relay_terminal(const struct ab_relay *r)
{
	struct ab_tty_state tty = { 0 };
	bool stdin_open = r->master >= 0, master_open = r->master >= 0, sync_open = r->sync_fd >= 0 && r->on_sync;

	if (r->master >= 0) {
		ab_tty_copy_winsize(STDIN_FILENO, r->master);
		ab_tty_make_raw(STDIN_FILENO, &tty);
		fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);
	}
	for (;;) {
		struct pollfd p[5] = {
			{ .fd = r->sfd, .events = POLLIN },
			{ .fd = master_open ? r->master : -1, .events = POLLIN },
			{ .fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = r->extra_fd, .events = POLLIN },
			{ .fd = sync_open ? r->sync_fd : -1, .events = POLLIN },
		};
		if (poll(p, 5, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			int e;
			while ((e = ab_tty_pump(r->master, STDOUT_FILENO)) == 0)
				;
			if (e == -EPIPE)
				master_open = false;
		}
		if ((p[2].revents & (POLLIN | POLLHUP | POLLERR)) && ab_tty_pump(STDIN_FILENO, r->master) == -EPIPE)
			stdin_open = false;
		if ((p[3].revents & POLLIN) && r->on_extra(r->ctx))
			break;
		if (p[4].revents & (POLLIN | POLLHUP | POLLERR)) {
			int v = r->on_sync(r->ctx);
			if (v > 0)
				break;
			if (v < 0)
				sync_open = false;
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(r->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
				continue;
			if (si.ssi_signo == SIGWINCH && r->master >= 0)
				ab_tty_copy_winsize(STDIN_FILENO, r->master); /* the kernel tells the command */
			else if (r->on_signal(&si, r->ctx))
				break;
		}
	}
	if (master_open)
		drain_master(r->master);
	ab_tty_restore(STDIN_FILENO, &tty);
}
