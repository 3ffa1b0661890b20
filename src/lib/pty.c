#include "pty.h"

#include <errno.h>
#include <sys/ioctl.h>
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
