/* probe: `probe try NAME` attempts a syscall that a sandbox should refuse. None of them
 * may do harm when the kernel allows them, since the probe also runs outside any sandbox
 * (as root, in the tests' own sanity checks): every attempt either uses arguments the
 * kernel rejects after its permission check (a bad reboot magic, a missing swap file,
 * an out-of-range time), acts only on the probe itself, or is undone at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "probe.h"

#ifndef TIOCL_GETSHIFTSTATE
#define TIOCL_GETSHIFTSTATE 6
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* ---- try: syscalls a sandbox must refuse ------------------------------------------ */

/* Each try function returns 0 when the kernel allowed the call, else -errno. */

/* A tmpfs on a fresh empty directory, unmounted at once when it was allowed. */
static int try_mount(void)
{
	char dir[] = "/tmp/probe-mount-XXXXXX";
	if (!mkdtemp(dir)) {
		printf("mount_setup=%s\n", errname(errno));
		return -errno;
	}
	int r = mount("none", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k");
	int e = errno;
	if (r == 0)
		umount2(dir, MNT_DETACH);
	rmdir(dir);
	return r == 0 ? 0 : -e;
}

static int try_fsopen(void)
{
	long fd = syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

static int try_unshare_user(void)
{
	return unshare(CLONE_NEWUSER) == 0 ? 0 : -errno;
}

static int try_unshare_net(void)
{
	return unshare(CLONE_NEWNET) == 0 ? 0 : -errno;
}

/* Forks through the raw clone syscall into a new user namespace; the child exits at once. */
static int try_clone_user(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

static int try_clone3_user(void)
{
	struct clone_args args;
	memset(&args, 0, sizeof(args));
	args.flags = CLONE_NEWUSER;
	args.exit_signal = SIGCHLD;
	long pid = syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

/* Re-joins the probe's own network namespace: harmless when allowed. */
static int try_setns(void)
{
	int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = setns(fd, CLONE_NEWNET);
	int e = errno;
	close(fd);
	return r == 0 ? 0 : -e;
}

static int try_bpf(void)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

static int try_io_uring_setup(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	long fd = syscall(SYS_io_uring_setup, 1, &p);
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

static int try_keyctl(void)
{
	/* Asks for the id of the session keyring without creating one. */
	long r = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
	return r < 0 ? -errno : 0;
}

static int try_add_key(void)
{
	/* A key in the process keyring dies with the probe. */
	long r = syscall(SYS_add_key, "user", "agentbox-probe", "x", (size_t)1,
			 KEY_SPEC_PROCESS_KEYRING);
	return r < 0 ? -errno : 0;
}

static int try_perf_event_open(void)
{
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_SOFTWARE;
	attr.config = PERF_COUNT_SW_DUMMY;
	attr.disabled = 1;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

static int try_userfaultfd(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

/* A terminal to aim tty ioctls at: stdin when it is one, else the slave of a fresh pty
 * of our own (opened without O_NOCTTY: a session leader without a terminal gets it as
 * its controlling terminal). */
static int open_tty(const char **which)
{
	if (isatty(0)) {
		*which = "stdin";
		return dup(0);
	}
	*which = "ptmx";
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	if (grantpt(m) < 0 || unlockpt(m) < 0) {
		int e = errno;
		close(m);
		errno = e;
		return -1;
	}
	char name[64];
	if (ptsname_r(m, name, sizeof(name)) != 0) {
		close(m);
		return -1;
	}
	int s = open(name, O_RDWR | O_CLOEXEC);
	int e = errno;
	/* Closing the master would hang up the slave; keep it for the probe's lifetime. */
	if (s < 0) {
		close(m);
		errno = e;
	}
	return s;
}

static bool tiocsti_high_bits; /* ask with bits above 32 set in the request number */

static int tiocsti_on(int fd)
{
	char c = ' ';
	/* The kernel keeps only the low 32 bits of the request: a filter that compares all
	 * 64 must not let 0x100005412 through as something other than TIOCSTI. */
	unsigned long req = TIOCSTI | (tiocsti_high_bits ? 0x100000000UL : 0);
	int r = (int)syscall(SYS_ioctl, fd, req, &c);
	int e = errno;
	if (r == 0)
		tcflush(fd, TCIFLUSH); /* take back the injected byte */
	return r == 0 ? 0 : -e;
}

/* TIOCSTI is refused by the kernel itself on a terminal that is not the caller's
 * controlling terminal, so when stdin is no terminal a pty of our own must first become
 * one: a child starts a session and takes the pty's slave as its controlling terminal.
 * Only then does EPERM show the filter at work. The injected byte goes into that pty (or
 * stdin's) and is flushed at once. */
static int try_tiocsti(void)
{
	if (isatty(0)) {
		printf("tiocsti_on=stdin\ntiocsti_ctty=%d\n", tcgetsid(0) == getsid(0) ? 1 : 0);
		return tiocsti_on(0);
	}
	printf("tiocsti_on=ptmx\n");
	fflush(stdout);
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int res[2] = { 0, 0 }; /* { setup errno, ioctl result } */
		const char *which;
		if (setsid() < 0) {
			res[0] = errno;
		} else {
			int s = open_tty(&which);
			if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
				res[0] = errno;
			else
				res[1] = tiocsti_on(s);
		}
		if (write(pfd[1], res, sizeof(res)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	int res[2] = { EIO, 0 };
	if (read(pfd[0], res, sizeof(res)) != (ssize_t)sizeof(res))
		res[0] = EIO;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	if (res[0]) {
		printf("tiocsti_setup=%s\n", errname(res[0]));
		return -res[0];
	}
	printf("tiocsti_ctty=1\n");
	return res[1];
}

static int try_tiocsti_high(void)
{
	tiocsti_high_bits = true;
	return try_tiocsti();
}

static int try_tioclinux(void)
{
	const char *which;
	int fd = open_tty(&which);
	printf("tioclinux_on=%s\n", which);
	if (fd < 0) {
		printf("tioclinux_setup=%s\n", errname(errno));
		return -errno;
	}
	char sub = TIOCL_GETSHIFTSTATE; /* read-only; ENOTTY/EINVAL on a pty if allowed */
	int r = ioctl(fd, TIOCLINUX, &sub);
	int e = errno;
	close(fd);
	return r == 0 ? 0 : -e;
}

static int try_open_by_handle_at(void)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[8];
	} h;
	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = 8;
	h.fh.handle_type = 1;
	long fd = syscall(SYS_open_by_handle_at, AT_FDCWD, &h.fh, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	close((int)fd);
	return 0;
}

static int try_kexec_load(void)
{
	/* An unknown flag and too many segments: EINVAL right after the CAP_SYS_BOOT check,
	 * so even a permitted call loads or unloads nothing. */
	long r = syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0x8000UL);
	return r < 0 ? -errno : 0;
}

static int try_init_module(void)
{
	long r = syscall(SYS_init_module, NULL, 0UL, "");
	return r < 0 ? -errno : 0;
}

static int try_reboot(void)
{
	/* A wrong second magic: EINVAL after the permission check, never a reboot. */
	long r = syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, 0x0badcafe, LINUX_REBOOT_CMD_CAD_OFF,
			 NULL);
	return r < 0 ? -errno : 0;
}

static int try_swapon(void)
{
	return swapon("/nonexistent/agentbox-probe-swap", 0) == 0 ? 0 : -errno;
}

static int try_clock_settime(void)
{
	/* An out-of-range nanosecond field: refused as EINVAL if the call is allowed. */
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2000000000L };
	long r = syscall(SYS_clock_settime, CLOCK_REALTIME, &ts);
	return r < 0 ? -errno : 0;
}

static int try_personality_noaslr(void)
{
	int cur = personality(0xffffffff);
	if (cur < 0)
		return -errno;
	int r = personality((unsigned long)cur | ADDR_NO_RANDOMIZE);
	if (r < 0)
		return -errno;
	personality((unsigned long)cur);
	return 0;
}

static int try_chroot(void)
{
	return chroot("/") == 0 ? 0 : -errno;
}

static int try_pivot_root(void)
{
	/* Paths that do not exist: ENOENT after the permission check, nothing moves. */
	long r = syscall(SYS_pivot_root, "/nonexistent/agentbox-new", "/nonexistent/agentbox-old");
	return r < 0 ? -errno : 0;
}

static int try_ptrace_attach_1(void)
{
	/* PTRACE_SEIZE does not stop the tracee; the tracer's exit detaches it. Done in a
	 * child so that the probe itself never traces anything. */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int v = ptrace(PTRACE_SEIZE, 1, NULL, NULL) == 0 ? 0 : errno;
		if (write(pfd[1], &v, sizeof(v)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	int v = EIO;
	if (read(pfd[0], &v, sizeof(v)) != sizeof(v))
		v = EIO;
	close(pfd[0]);
	waitpid(pid, NULL, 0);
	return -v;
}

/* getpid through the i386 entry point (int 0x80) from 64-bit code. Runs in a child since
 * a kernel without IA-32 emulation answers with SIGSEGV, and a filter may kill. */
static int cmd_try_i386_getpid(void)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		printf("i386-getpid_setup=%s\n", errname(errno));
		return 0;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		printf("i386-getpid_setup=%s\n", errname(errno));
		return 0;
	}
	if (pid == 0) {
		long ret = 20; /* __NR_getpid on i386 */
#if defined(__x86_64__)
		__asm__ volatile("int $0x80"
				 : "+a"(ret)
				 :
				 : "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory",
				   "cc");
		ret = (int)ret; /* the i386 ABI returns a 32-bit value */
#else
		ret = -ENOSYS;
#endif
		if (write(pfd[1], &ret, sizeof(ret)) < 0)
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	long ret = 0;
	ssize_t n = read(pfd[0], &ret, sizeof(ret));
	close(pfd[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (n != sizeof(ret)) {
		if (WIFSIGNALED(status)) {
			const char *abbrev = sigabbrev_np(WTERMSIG(status));
			printf("i386-getpid=SIG%s\n", abbrev ? abbrev : "UNKNOWN");
		} else {
			printf("i386-getpid=EIO\n");
		}
		return 0;
	}
	printf("i386-getpid_raw=%ld\n", ret);
	if (ret < 0 && ret >= -4095)
		printf("i386-getpid=%s\n", errname((int)-ret));
	else
		printf("i386-getpid=OK\n");
	return 0;
}

struct try_entry {
	const char *name;
	int (*fn)(void);
};

static const struct try_entry tries[] = {
	{ "mount", try_mount },
	{ "fsopen", try_fsopen },
	{ "unshare-user", try_unshare_user },
	{ "clone-user", try_clone_user },
	{ "clone3-user", try_clone3_user },
	{ "unshare-net", try_unshare_net },
	{ "setns", try_setns },
	{ "bpf", try_bpf },
	{ "io_uring_setup", try_io_uring_setup },
	{ "keyctl", try_keyctl },
	{ "add_key", try_add_key },
	{ "perf_event_open", try_perf_event_open },
	{ "userfaultfd", try_userfaultfd },
	{ "tiocsti", try_tiocsti },
	{ "tiocsti-high", try_tiocsti_high },
	{ "tioclinux", try_tioclinux },
	{ "open_by_handle_at", try_open_by_handle_at },
	{ "kexec_load", try_kexec_load },
	{ "init_module", try_init_module },
	{ "reboot", try_reboot },
	{ "swapon", try_swapon },
	{ "clock_settime", try_clock_settime },
	{ "personality-noaslr", try_personality_noaslr },
	{ "chroot", try_chroot },
	{ "pivot_root", try_pivot_root },
	{ "ptrace-attach-1", try_ptrace_attach_1 },
};

int cmd_try(const char *name)
{
	if (strcmp(name, "i386-getpid") == 0)
		return cmd_try_i386_getpid();
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		if (strcmp(tries[i].name, name) != 0)
			continue;
		int r = tries[i].fn();
		report(name, r, -r);
		return 0;
	}
	fprintf(stderr, "probe: unknown try '%s'\n", name);
	return 2;
}
