#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../shared/cleanup.h"
#include "../shared/timer.h"
#include "attach.h"
#include "cast.h"

#define MAX_POLL (3 + AB_ATTACH_SERVER_MAX_FDS)

int ab_supervisor_open(struct ab_supervisor *sv, const char *dir, unsigned cols, unsigned rows,
		       struct ab_error *err)
{
	_cleanup_free_ char *cast = NULL;
	_cleanup_free_ char *sock = NULL;
	int r;

	if (asprintf(&cast, "%s/" AB_CAST_FILE, dir) < 0 || asprintf(&sock, "%s/" AB_ATTACH_SOCKET, dir) < 0)
		return ab_error_set(err, ENOMEM, "cannot set up the supervisor");
	if ((r = ab_cast_open(&sv->cast, cast, cols, rows, "xterm-256color", AB_CAST_MAX_BYTES, err)) < 0)
		return r;
	if ((r = ab_attach_server_open(&sv->attach, sock, err)) < 0)
		return r;
	return 0;
}

struct relay {
	struct ab_supervisor *sv;
	int master;
};

static void on_input(const void *data, size_t len, void *ctx)
{
	struct relay *rl = ctx;
	const char *p = data;

	/* The terminal takes what it can; a stalled command must not stall the supervisor,
	 * so what does not fit now is dropped (as a terminal line would drop it). */
	while (len && rl->master >= 0) {
		ssize_t n = write(rl->master, p, len);
		if (n <= 0)
			break;
		p += n;
		len -= (size_t)n;
	}
}

static void on_resize(unsigned rows, unsigned cols, void *ctx)
{
	struct relay *rl = ctx;
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };

	if (rl->master >= 0 && rows && cols) {
		ioctl(rl->master, TIOCSWINSZ, &ws); /* the kernel tells the command (SIGWINCH) */
		if (rl->sv->cast)
			ab_cast_resize(rl->sv->cast, cols, rows);
	}
}

/* Reads what the terminal has; false when it is closed (EOF, or EIO once every slave
 * side is gone). */
static bool pump_master(struct ab_supervisor *sv, int master)
{
	char buf[16384];

	for (;;) {
		ssize_t n = read(master, buf, sizeof(buf));
		if (n > 0) {
			if (sv->cast)
				ab_cast_output(sv->cast, buf, (size_t)n);
			if (sv->attach)
				ab_attach_server_output(sv->attach, buf, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && errno == EAGAIN;
	}
}

int ab_supervisor_loop(pid_t init_pid, int sfd, int master, void *data)
{
	struct ab_supervisor *sv = data;
	struct relay rl = { .sv = sv, .master = master };
	struct ab_attach_callbacks cb = { .input = on_input, .resize = on_resize, .ctx = &rl };
	_cleanup_close_ int tfd = -1;
	bool master_open = master >= 0, stopping = false;
	int status = 0;

	if (master >= 0)
		fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	if (sv->timeout_ms)
		(void)ab_timer_arm(&tfd, sv->timeout_ms);
	for (;;) {
		struct pollfd p[MAX_POLL];
		size_t n_attach;

		p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = master_open ? master : -1, .events = POLLIN };
		p[2] = (struct pollfd){ .fd = tfd, .events = POLLIN };
		int got = sv->attach ? ab_attach_server_fds(sv->attach, p + 3, MAX_POLL - 3) : 0;
		n_attach = got > 0 ? (size_t)got : 0;
		if (poll(p, 3 + n_attach, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR))
			master_open = pump_master(sv, master);
		if (n_attach)
			ab_attach_server_handle(sv->attach, p + 3, n_attach, &cb);
		if (p[2].revents & POLLIN) {
			uint64_t ticks;
			(void)!read(tfd, &ticks, sizeof(ticks));
			if (!stopping) {
				/* The timeout: TERM to the command (through its init), KILL later. */
				stopping = true;
				sv->timed_out = !sv->stopped;
				kill(init_pid, SIGTERM);
				(void)ab_timer_arm(&tfd, sv->grace_ms);
			} else {
				kill(init_pid, SIGKILL); /* the whole sandbox goes with its init */
			}
		}
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
				continue;
			if (si.ssi_signo == SIGCHLD) {
				if (waitpid(init_pid, &status, WNOHANG) == init_pid)
					break;
			} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) {
				/* `agentbox stop`: the same path as the timeout, with its own reason. */
				if (!stopping) {
					stopping = true;
					sv->stopped = true;
					kill(init_pid, SIGTERM);
					(void)ab_timer_arm(&tfd, sv->grace_ms);
				}
			} else if (si.ssi_signo != SIGWINCH) {
				kill(init_pid, (int)si.ssi_signo);
			}
		}
	}
	if (master_open)
		(void)pump_master(sv, master);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void ab_supervisor_close(struct ab_supervisor *sv, int exit_code, const char *reason)
{
	if (sv->attach) {
		ab_attach_server_exited(sv->attach, exit_code, reason);
		ab_attach_server_close(sv->attach);
		sv->attach = NULL;
	}
	if (sv->cast) {
		ab_cast_close(sv->cast);
		sv->cast = NULL;
	}
}
