/* probe: a small static program that integration tests run INSIDE a sandbox.
 *
 * Each subcommand observes one thing and prints what it saw as `key=value` lines, so a
 * shell test can assert with grep. Errors are reported by errno name ("EPERM"), success
 * as "OK". The exit status is 0 whatever was observed; 2 means the probe was misused.
 *
 * `probe try NAME` attempts a syscall that a sandbox should refuse. None of them may do
 * harm when the kernel allows them, since the probe also runs outside any sandbox (as
 * root, in the tests' own sanity checks): every attempt either uses arguments the
 * kernel rejects after its permission check (a bad reboot magic, a missing swap file,
 * an out-of-range time), acts only on the probe itself, or is undone at once.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef TIOCL_GETSHIFTSTATE
#define TIOCL_GETSHIFTSTATE 6
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* ---- output helpers ---------------------------------------------------------------- */

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "EUNKNOWN";
}

/* Prints `key=OK` when r >= 0, else `key=ERRNAME` for the errno e. */
static void report(const char *key, long r, int e)
{
	if (r >= 0)
		printf("%s=OK\n", key);
	else
		printf("%s=%s\n", key, errname(e));
}

static int usage(void)
{
	fputs("usage: probe status | try NAME | read PATH | write PATH [BYTES] | ls PATH\n"
	      "       | pids | ifaces | env [NAME...] | exit N | kill-self SIGNUM\n"
	      "       | sleep SECONDS [TAG...] | connect IP PORT | listen IP PORT SECONDS\n"
	      "       | connect-unix PATH|@NAME | listen-unix PATH|@NAME SECONDS | hostname\n"
	      "       | syscall-bench N | wait-signal [TIMEOUT] | spawn-zombies N | tty\n",
	      stderr);
	return 2;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ---- status ------------------------------------------------------------------------ */

static int cmd_status(void)
{
	static const char *const keys[] = { "CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh",
					    "NoNewPrivs", "Seccomp", "Seccomp_filters" };
	FILE *f = fopen("/proc/self/status", "re");
	if (!f) {
		printf("status=%s\n", errname(errno));
	} else {
		char line[512];
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (!colon)
				continue;
			*colon = '\0';
			for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
				if (strcmp(line, keys[i]) != 0)
					continue;
				char *v = colon + 1;
				v += strspn(v, " \t");
				v[strcspn(v, "\n")] = '\0';
				printf("%s=%s\n", keys[i], v);
			}
		}
		fclose(f);
	}
	printf("uid=%u\ngid=%u\neuid=%u\negid=%u\n", (unsigned)getuid(), (unsigned)getgid(),
	       (unsigned)geteuid(), (unsigned)getegid());
	return 0;
}

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

static int cmd_try(const char *name)
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

/* ---- files ------------------------------------------------------------------------- */

static int cmd_read(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("read=%s\n", errname(errno));
		return 0;
	}
	char buf[65536], head[201] = "";
	size_t total = 0;
	bool first = true;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			printf("read=%s\n", errname(errno));
			close(fd);
			return 0;
		}
		if (n == 0)
			break;
		if (first) {
			size_t len = (size_t)n < sizeof(head) - 1 ? (size_t)n : sizeof(head) - 1;
			memcpy(head, buf, len);
			head[len] = '\0';
			head[strcspn(head, "\n")] = '\0';
			first = false;
		}
		total += (size_t)n;
	}
	close(fd);
	printf("read=OK\nbytes=%zu\nhead=%s\n", total, head);
	return 0;
}

/* Appends BYTES bytes (default: one line) to PATH, creating it. */
static int cmd_write(const char *path, const char *bytes_arg)
{
	long want = -1;
	if (bytes_arg && !parse_long(bytes_arg, 0, LONG_MAX, &want))
		return usage();
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		printf("write=%s\n", errname(errno));
		return 0;
	}
	static char chunk[65536];
	const char *line = "agentbox-probe\n";
	const char *src = line;
	size_t left = strlen(line);
	if (want >= 0) {
		memset(chunk, 'x', sizeof(chunk));
		left = (size_t)want;
	}
	size_t written = 0;
	int err = 0;
	while (left > 0) {
		/* One line, or the same 64 KiB chunk again and again. */
		size_t n = left;
		if (want >= 0) {
			src = chunk;
			if (n > sizeof(chunk))
				n = sizeof(chunk);
		} else {
			src = line + written;
		}
		ssize_t w = write(fd, src, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		written += (size_t)w;
		left -= (size_t)w;
	}
	if (!err && close(fd) < 0)
		err = errno;
	else if (err)
		close(fd);
	if (err)
		printf("write=%s\n", errname(err));
	else
		printf("write=OK\n");
	printf("written=%zu\n", written);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_ls(const char *path)
{
	DIR *d = opendir(path);
	if (!d) {
		printf("ls=%s\n", errname(errno));
		return 0;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **p = realloc(names, cap * sizeof(*names));
			if (!p)
				abort();
			names = p;
		}
		names[n] = strdup(de->d_name);
		if (!names[n])
			abort();
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	printf("ls=OK\ncount=%zu\n", n);
	for (size_t i = 0; i < n; i++) {
		printf("entry=%s\n", names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* ---- processes --------------------------------------------------------------------- */

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void read_small(const char *path, char *buf, size_t size)
{
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
}

static int cmd_pids(void)
{
	DIR *d = opendir("/proc");
	if (!d) {
		printf("pids=%s\n", errname(errno));
		return 0;
	}
	size_t count = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_number(de->d_name))
			continue;
		printf("pid=%s\n", de->d_name);
		count++;
	}
	closedir(d);
	char comm[64];
	read_small("/proc/1/comm", comm, sizeof(comm));
	comm[strcspn(comm, "\n")] = '\0';
	printf("count=%zu\nself=%d\npid1_comm=%s\n", count, (int)getpid(), comm);
	return 0;
}

static int cmd_sleep(const char *arg)
{
	long secs;
	if (!parse_long(arg, 0, 86400, &secs))
		return usage();
	printf("pid=%d\n", (int)getpid());
	fflush(stdout);
	struct timespec ts = { .tv_sec = secs, .tv_nsec = 0 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	printf("slept=%ld\n", secs);
	return 0;
}

static int cmd_kill_self(const char *arg)
{
	long sig;
	if (!parse_long(arg, 1, 64, &sig))
		return usage();
	fflush(stdout);
	signal((int)sig, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, (int)sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	kill(getpid(), (int)sig);
	sleep(1);
	printf("kill-self=survived\n");
	return 1;
}

static int cmd_wait_signal(const char *timeout_arg)
{
	long timeout = 60;
	if (timeout_arg && !parse_long(timeout_arg, 1, 86400, &timeout))
		return usage();
	/* A disposition inherited as "ignore" must not hide a signal from sigtimedwait. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("ready=%d\n", (int)getpid());
	fflush(stdout);
	struct timespec ts = { .tv_sec = timeout, .tv_nsec = 0 };
	int sig;
	while ((sig = sigtimedwait(&set, NULL, &ts)) < 0 && errno == EINTR)
		;
	if (sig < 0) {
		printf("signal=none\n");
		return 1;
	}
	printf("signal=%d\n", sig);
	return 0;
}

/* Counts the processes in /proc that are zombies. */
static size_t count_zombies(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!is_number(de->d_name))
			continue;
		char path[300], stat[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		read_small(path, stat, sizeof(stat));
		char *rp = strrchr(stat, ')'); /* comm may hold spaces and parentheses */
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			n++;
	}
	closedir(d);
	return n;
}

/* A child forks N grandchildren that exit at once, and exits without waiting for them:
 * they become zombies of whoever reaps orphans (the sandbox's PID 1). Then we watch them
 * disappear, for up to 2 seconds. */
static int cmd_spawn_zombies(const char *arg)
{
	long n;
	if (!parse_long(arg, 1, 1000, &n))
		return usage();
	fflush(stdout);
	pid_t mid = fork();
	if (mid < 0) {
		printf("spawn=%s\n", errname(errno));
		return 0;
	}
	if (mid == 0) {
		long made = 0;
		for (long i = 0; i < n; i++) {
			pid_t c = fork();
			if (c == 0)
				_exit(0);
			if (c > 0)
				made++;
		}
		_exit(made == n ? 0 : 1);
	}
	int status = 0;
	waitpid(mid, &status, 0);
	printf("spawned=%ld\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? n : -1L);
	size_t z = count_zombies();
	for (int i = 0; i < 200 && z > 0; i++) {
		usleep(10000);
		z = count_zombies();
	}
	printf("zombies=%zu\n", z);
	return 0;
}

/* ---- network ----------------------------------------------------------------------- */

static int cmd_ifaces(void)
{
	struct if_nameindex *ifs = if_nameindex();
	if (!ifs) {
		printf("ifaces=%s\n", errname(errno));
		return 0;
	}
	size_t n = 0;
	for (struct if_nameindex *i = ifs; i->if_index; i++, n++)
		printf("iface=%s\n", i->if_name);
	if_freenameindex(ifs);
	printf("count=%zu\n", n);
	return 0;
}

static int make_addr(const char *ip, long port, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, ip, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return AF_INET;
	}
	if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return AF_INET6;
	}
	return -1;
}

/* ADDR is a path, or @NAME for the abstract namespace. */
static int make_unix_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t n = strlen(addr);
	memset(ss, 0, sizeof(*ss));
	if (n == 0 || n >= sizeof(un->sun_path))
		return -1;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, addr, n);
	if (addr[0] == '@')
		un->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] == '@' ? 0 : 1));
	return AF_UNIX;
}

/* Connects a stream socket, waiting at most a second; prints connect=OK or the errno. */
static int do_connect(int family, const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		printf("connect=%s\n", errname(errno));
		return 0;
	}
	int err = 0;
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		err = errno;
		if (err == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int r = poll(&p, 1, 1000);
			if (r == 0) {
				err = ETIMEDOUT;
			} else if (r < 0) {
				err = errno;
			} else {
				socklen_t sl = sizeof(err);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
					err = errno;
			}
		}
	}
	close(fd);
	report("connect", err ? -1 : 0, err);
	return 0;
}

static int cmd_connect(const char *ip, const char *port_arg)
{
	long port;
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	if (!parse_long(port_arg, 1, 65535, &port) || (family = make_addr(ip, port, &ss, &len)) < 0)
		return usage();
	return do_connect(family, &ss, len);
}

static int cmd_connect_unix(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (make_unix_addr(addr, &ss, &len) < 0)
		return usage();
	return do_connect(AF_UNIX, &ss, len);
}

/* Host-side helpers for network tests: listen on an address, print `listen=OK` (and
 * `port=N` for TCP, where port 0 picks one), then accept and close connections, printing
 * `accepted=1` for each, until SECONDS pass. */
static int do_listen(int family, struct sockaddr_storage *ss, socklen_t len, long secs)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    (family != AF_UNIX && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)ss, len) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)ss, &len) < 0) {
		printf("listen=%s\n", errname(errno));
		return 1;
	}
	printf("listen=OK\n");
	if (family == AF_INET)
		printf("port=%d\n", ntohs(((struct sockaddr_in *)ss)->sin_port));
	else if (family == AF_INET6)
		printf("port=%d\n", ntohs(((struct sockaddr_in6 *)ss)->sin6_port));
	fflush(stdout);
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left_ms = secs * 1000 - ((now.tv_sec - start.tv_sec) * 1000 +
					      (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left_ms <= 0)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)left_ms) > 0) {
			int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0) {
				printf("accepted=1\n");
				fflush(stdout);
				close(c);
			}
		}
	}
	close(fd);
	return 0;
}

static int cmd_listen(const char *ip, const char *port_arg, const char *secs_arg)
{
	long port, secs;
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
	if (!parse_long(port_arg, 0, 65535, &port) || !parse_long(secs_arg, 1, 3600, &secs) ||
	    (family = make_addr(ip, port, &ss, &len)) < 0)
		return usage();
	return do_listen(family, &ss, len, secs);
}

static int cmd_listen_unix(const char *addr, const char *secs_arg)
{
	long secs;
	struct sockaddr_storage ss;
	socklen_t len;
	if (!parse_long(secs_arg, 1, 3600, &secs) || make_unix_addr(addr, &ss, &len) < 0)
		return usage();
	return do_listen(AF_UNIX, &ss, len, secs);
}

static int cmd_hostname(void)
{
	struct utsname u;
	if (uname(&u) < 0) {
		printf("hostname=%s\n", errname(errno));
		return 0;
	}
	printf("hostname=%s\n", u.nodename);
	return 0;
}

/* ---- misc -------------------------------------------------------------------------- */

extern char **environ;

static int cmd_env(int argc, char **argv)
{
	if (argc == 0) {
		for (char **e = environ; *e; e++)
			printf("%s\n", *e);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		const char *v = getenv(argv[i]);
		if (v)
			printf("%s=%s\n", argv[i], v);
		else
			printf("unset=%s\n", argv[i]);
	}
	return 0;
}

static int cmd_syscall_bench(const char *arg)
{
	long n;
	if (!parse_long(arg, 1, 1000000000L, &n))
		return usage();
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
	printf("calls=%ld\nns_per_call=%.2f\n", n, ns / (double)n);
	return 0;
}

static int cmd_tty(void)
{
	for (int fd = 0; fd <= 2; fd++)
		printf("tty%d=%d\n", fd, isatty(fd) ? 1 : 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	int nargs = argc - 2;
	char **args = argv + 2;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "status") == 0 && nargs == 0)
		rc = cmd_status();
	else if (strcmp(cmd, "try") == 0 && nargs == 1)
		rc = cmd_try(args[0]);
	else if (strcmp(cmd, "read") == 0 && nargs == 1)
		rc = cmd_read(args[0]);
	else if (strcmp(cmd, "write") == 0 && (nargs == 1 || nargs == 2))
		rc = cmd_write(args[0], nargs == 2 ? args[1] : NULL);
	else if (strcmp(cmd, "ls") == 0 && nargs == 1)
		rc = cmd_ls(args[0]);
	else if (strcmp(cmd, "pids") == 0 && nargs == 0)
		rc = cmd_pids();
	else if (strcmp(cmd, "ifaces") == 0 && nargs == 0)
		rc = cmd_ifaces();
	else if (strcmp(cmd, "env") == 0)
		rc = cmd_env(nargs, args);
	else if (strcmp(cmd, "exit") == 0 && nargs == 1) {
		long v;
		if (!parse_long(args[0], 0, 255, &v))
			return usage();
		rc = (int)v;
	} else if (strcmp(cmd, "kill-self") == 0 && nargs == 1)
		rc = cmd_kill_self(args[0]);
	else if (strcmp(cmd, "sleep") == 0 && nargs >= 1) /* extra words: a tag to find it by */
		rc = cmd_sleep(args[0]);
	else if (strcmp(cmd, "connect") == 0 && nargs == 2)
		rc = cmd_connect(args[0], args[1]);
	else if (strcmp(cmd, "listen") == 0 && nargs == 3)
		rc = cmd_listen(args[0], args[1], args[2]);
	else if (strcmp(cmd, "connect-unix") == 0 && nargs == 1)
		rc = cmd_connect_unix(args[0]);
	else if (strcmp(cmd, "listen-unix") == 0 && nargs == 2)
		rc = cmd_listen_unix(args[0], args[1]);
	else if (strcmp(cmd, "hostname") == 0 && nargs == 0)
		rc = cmd_hostname();
	else if (strcmp(cmd, "syscall-bench") == 0 && nargs == 1)
		rc = cmd_syscall_bench(args[0]);
	else if (strcmp(cmd, "wait-signal") == 0 && nargs <= 1)
		rc = cmd_wait_signal(nargs == 1 ? args[0] : NULL);
	else if (strcmp(cmd, "spawn-zombies") == 0 && nargs == 1)
		rc = cmd_spawn_zombies(args[0]);
	else if (strcmp(cmd, "tty") == 0 && nargs == 0)
		rc = cmd_tty();
	else
		return usage();
	fflush(stdout);
	return rc;
}
