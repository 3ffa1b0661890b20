#include "init.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../shared/error.h"
#include "sync.h"


const int ab_forwarded_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT };
const int ab_n_forwarded_signals = (int)(sizeof(ab_forwarded_signals) / sizeof(ab_forwarded_signals[0]));

extern char **environ;

static int status_to_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return AB_EXIT_INTERNAL;
}

__attribute__((noreturn)) static void exec_command(const struct ab_config *cfg, int pty_slave, int report_fd)
{
	sigset_t none;
	int e;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* A new session either way: without a terminal the command has no controlling one at
	 * all (so it cannot reach the caller's), with one it is the sandbox's own. */
	setsid();
	if (pty_slave >= 0) {
		if (ioctl(pty_slave, TIOCSCTTY, 0) < 0 || dup2(pty_slave, 0) < 0 || dup2(pty_slave, 1) < 0 ||
		    dup2(pty_slave, 2) < 0) {
			e = errno;
			(void)!write(report_fd, &e, sizeof(e));
			_exit(AB_EXIT_INTERNAL);
		}
		if (pty_slave > 2)
			close(pty_slave);
	}
	environ = cfg->env;
	execvp(cfg->argv[0], cfg->argv);
	e = errno;
	(void)!write(report_fd, &e, sizeof(e));
	_exit(e == ENOENT ? AB_EXIT_NOT_FOUND : AB_EXIT_CANNOT_RUN);
}

/* The command is gone: everything else in the sandbox goes too (what it left running,
 * reaped here), then agentbox hears the status. It may read the workspace as final from
 * then on, and need not wait for the rest of the end: the namespaces and mounts (an
 * overlay syncs its upper directory as it goes) are torn down by the kernel in this
 * process's exit, which nobody waits for. */
__attribute__((noreturn)) static void finish_sandbox(int sync_fd, int code)
{
	kill(-1, SIGKILL);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	ab_sync_send(sync_fd, AB_SYNC_EXITED, code, NULL, -1);
	_exit(code);
}

__attribute__((noreturn)) void ab_init_run(const struct ab_config *cfg, int sync_fd, int pty_slave)
{
	int report[2];
	sigset_t set;
	pid_t command;
	int sfd, e = 0, code = AB_EXIT_INTERNAL;
	ssize_t n;

	prctl(PR_SET_NAME, "agentbox-init", 0, 0, 0);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	for (int i = 0; i < ab_n_forwarded_signals; i++)
		sigaddset(&set, ab_forwarded_signals[i]);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0 || pipe2(report, O_CLOEXEC) < 0) {
		ab_sync_send(sync_fd, AB_SYNC_ERROR, errno, "cannot start the sandbox's init", -1);
		_exit(AB_EXIT_INTERNAL);
	}

	/* vfork: the command only runs a few system calls before execve, and copying this
	 * process's page tables would cost more than the rest of the start together. */
	command = vfork();
	if (command < 0) {
		ab_sync_send(sync_fd, AB_SYNC_ERROR, errno, "cannot start the command", -1);
		_exit(AB_EXIT_INTERNAL);
	}
	if (command == 0) {
		close(report[0]);
		exec_command(cfg, pty_slave, report[1]);
	}
	close(report[1]);
	if (pty_slave >= 0)
		close(pty_slave); /* so the terminal hangs up when the command's side closes */

	/* The command's execve closes the report pipe (O_CLOEXEC): EOF means it is running. */
	do
		n = read(report[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof(e))
		ab_sync_send(sync_fd, AB_SYNC_EXEC_FAILED, e, cfg->argv[0], -1);
	else
		ab_sync_send(sync_fd, AB_SYNC_STARTED, 0, NULL, -1);

	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = sync_fd, .events = POLLIN } };
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(AB_EXIT_INTERNAL);
		}
		if (p[1].revents) {
			/* agentbox is gone (the death signal covers SIGKILL; this covers the rest):
			 * exiting takes every process of the namespace with us. */
			char c;
			if (read(sync_fd, &c, 1) <= 0)
				_exit(128 + SIGKILL);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGCHLD) {
			int status;
			pid_t pid;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				if (pid == command) {
					code = status_to_code(status);
					finish_sandbox(sync_fd, code);
				}
			continue;
		}
		kill(command, (int)si.ssi_signo);
	}
}
