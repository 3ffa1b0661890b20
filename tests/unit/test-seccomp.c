/* Seccomp: the policy tables, the compiler, the Docker profile reader, and what the
 * kernel really does with the programs.
 *
 * Kernel tests follow the Linux selftests shape. Each probe runs in its own child:
 *
 *   test ── fork ──> child: no_new_privs, ab_seccomp_install(set), probe()
 *                      └── _exit(0 on success, or the errno the probe met)
 *
 * and every refusal is also probed once without a filter (the control), so a test
 * proves the filter made the difference: a probe that fails anyway proves nothing.
 * A test skips only where the kernel lacks the feature; AB_TEST_MUST_WORK=1 turns
 * skips into failures. The Docker sample profile is read from
 * $AB_SRCDIR/tests/fuzz/corpus/seccomp-profile (AB_SRCDIR defaults to "."). */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/seccomp-policy.h"
#include "lib/seccomp.h"
#include "tap.h"

#define HARNESS_NNP 251
#define HARNESS_INSTALL 252
#define ODD_RESULT 222

/* --- the harness ------------------------------------------------------------------ */

/* Runs probe in a child under set (NULL: no filter). Returns the child's exit code (0 or
 * an errno), or minus the signal that killed it. */
static int run_probe(const struct ab_seccomp_set *set, int (*probe)(void))
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1000;
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			_exit(HARNESS_NNP);
		if (set && ab_seccomp_install(set) < 0)
			_exit(HARNESS_INSTALL);
		_exit(probe());
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1001;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

static int result(long ret)
{
	return ret < 0 ? errno : 0;
}

static void skip_or_fail(const char *what, const char *why)
{
	const char *must = getenv("AB_TEST_MUST_WORK");

	ok(!(must && *must && strcmp(must, "0") != 0), "%s # SKIP %s", what, why);
}

/* The filtered run must end with `want`, the unfiltered one must not. */
static void expect_refused(const struct ab_seccomp_set *set, const char *mode, int (*probe)(void),
			   const char *what, int want)
{
	int control = run_probe(NULL, probe);
	int got = run_probe(set, probe);

	ok(got == want && control != want, "%s: %s refused with %s (got %d, unfiltered %d)", mode,
	   what, strerrorname_np(want), got, control);
}

static void expect_works(const struct ab_seccomp_set *set, const char *mode, int (*probe)(void),
			 const char *what)
{
	int got = run_probe(set, probe);

	ok(got == 0, "%s: %s works (got %d)", mode, what, got);
}

/* --- probes ------------------------------------------------------------------------ */

static int probe_getpid(void) { return result(syscall(SYS_getpid)); }
static int probe_getppid(void) { return result(syscall(SYS_getppid)); }
static int probe_gettid(void) { return result(syscall(SYS_gettid)); }

static int probe_open(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int wait_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : ODD_RESULT;
}

static int probe_fork(void)
{
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(0);
	return wait_ok(pid);
}

static int probe_exec_true(void)
{
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0) {
		char *argv[] = { "true", NULL }, *envp[] = { NULL };
		execve("/bin/true", argv, envp);
		_exit(errno);
	}
	return wait_ok(pid);
}

static int probe_mount(void)
{
	return result(syscall(SYS_mount, "none", "/nonexistent-agentbox-test", "tmpfs", 0, NULL));
}

static int probe_unshare_userns(void) { return result(syscall(SYS_unshare, CLONE_NEWUSER)); }

/* The raw syscall, as a program calling clone(2) directly would: no glibc wrapper. */
static int probe_clone_userns(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);

	if (pid < 0)
		return errno;
	if (pid == 0)
		_exit(0);
	return wait_ok((pid_t)pid);
}

static int probe_bpf(void) { return result(syscall(SYS_bpf, -1, NULL, 0)); }
static int probe_io_uring(void) { return result(syscall(SYS_io_uring_setup, 0, NULL)); }
static int probe_keyctl(void) { return result(syscall(SYS_keyctl, -1, 0, 0, 0, 0)); }
static int probe_vmsplice(void) { return result(syscall(SYS_vmsplice, -1, NULL, 0, 0)); }

/* ioctl on a pipe: unfiltered the kernel answers ENOTTY; a filter must answer first. */
static int ioctl_on_pipe(unsigned long request)
{
	int p[2], r;
	int arg = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errno;
	r = result(syscall(SYS_ioctl, p[0], request, &arg));
	close(p[0]);
	close(p[1]);
	return r;
}

static int probe_tiocsti(void) { return ioctl_on_pipe(TIOCSTI); }
static int probe_tiocsti_high(void) { return ioctl_on_pipe(0x100000000ul | TIOCSTI); }
static int probe_tioclinux(void) { return ioctl_on_pipe(TIOCLINUX); }
static int probe_fionread(void) { return ioctl_on_pipe(FIONREAD); }

static int probe_no_randomize(void) { return result(syscall(SYS_personality, ADDR_NO_RANDOMIZE)); }
static int probe_personality_query(void) { return result(syscall(SYS_personality, 0xffffffffu)); }

static int probe_socket(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int probe_netlink(void) { return probe_socket(AF_NETLINK, SOCK_RAW); }
static int probe_inet(void) { return probe_socket(AF_INET, SOCK_STREAM); }

#if defined(__x86_64__)
/* getpid through the i386 ABI from 64-bit code: eax 20 is i386's getpid. */
static int probe_int80(void)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
	if (ret == syscall(SYS_getpid))
		return 0;
	return ret < 0 && ret > -4096 ? (int)-ret : ODD_RESULT;
}
#endif

/* The brief's own acceptance line: a shell, coreutils and python under strict. */
static int probe_dev_tools(void)
{
	char buf[8192];
	size_t len = 0;
	int p[2], r;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return errno;
	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		char *argv[] = { "bash", "-c", "ls / >/dev/null; cat /etc/os-release; python3 -c 'print(1)'",
				 NULL };
		char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL };
		dup2(p[1], 1);
		execve("/bin/bash", argv, envp);
		_exit(errno);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	buf[len] = '\0';
	r = wait_ok(pid);
	if (r)
		return r;
	return strstr(buf, "ID=") && len >= 2 && strcmp(buf + len - 2, "1\n") == 0 ? 0 : ODD_RESULT;
}

/* --- a classic BPF interpreter, to run programs on arguments the kernel never sees -- */

#define BPF_BAD 0xdeadbeefu

static uint32_t bpf_run(const struct ab_seccomp_program *prog, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = { 0 };

	for (size_t pc = 0; pc < prog->len; pc++) {
		const struct sock_filter *f = &prog->insns[pc];
		uint32_t k = f->k;
		bool taken;

		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (k % 4 || k + 4 > sizeof(*d))
				return BPF_BAD;
			memcpy(&a, (const char *)d + k, 4);
			continue;
		case BPF_LD | BPF_IMM: a = k; continue;
		case BPF_LDX | BPF_IMM: x = k; continue;
		case BPF_LD | BPF_MEM: if (k >= BPF_MEMWORDS) return BPF_BAD; a = mem[k]; continue;
		case BPF_LDX | BPF_MEM: if (k >= BPF_MEMWORDS) return BPF_BAD; x = mem[k]; continue;
		case BPF_ST: if (k >= BPF_MEMWORDS) return BPF_BAD; mem[k] = a; continue;
		case BPF_STX: if (k >= BPF_MEMWORDS) return BPF_BAD; mem[k] = x; continue;
		case BPF_ALU | BPF_AND | BPF_K: a &= k; continue;
		case BPF_ALU | BPF_AND | BPF_X: a &= x; continue;
		case BPF_ALU | BPF_OR | BPF_K: a |= k; continue;
		case BPF_ALU | BPF_ADD | BPF_K: a += k; continue;
		case BPF_ALU | BPF_SUB | BPF_K: a -= k; continue;
		case BPF_ALU | BPF_RSH | BPF_K: a = k < 32 ? a >> k : 0; continue;
		case BPF_ALU | BPF_LSH | BPF_K: a = k < 32 ? a << k : 0; continue;
		case BPF_MISC | BPF_TAX: x = a; continue;
		case BPF_MISC | BPF_TXA: a = x; continue;
		case BPF_RET | BPF_K: return k;
		case BPF_RET | BPF_A: return a;
		case BPF_JMP | BPF_JA: pc += k; continue;
		case BPF_JMP | BPF_JEQ | BPF_K: taken = a == k; break;
		case BPF_JMP | BPF_JGT | BPF_K: taken = a > k; break;
		case BPF_JMP | BPF_JGE | BPF_K: taken = a >= k; break;
		case BPF_JMP | BPF_JSET | BPF_K: taken = (a & k) != 0; break;
		case BPF_JMP | BPF_JEQ | BPF_X: taken = a == x; break;
		case BPF_JMP | BPF_JGT | BPF_X: taken = a > x; break;
		case BPF_JMP | BPF_JGE | BPF_X: taken = a >= x; break;
		default:
			return BPF_BAD;
		}
		pc += taken ? f->jt : f->jf;
	}
	return BPF_BAD;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#define ERRNO_RET(e) (SECCOMP_RET_ERRNO | (uint32_t)(e))

#if defined(__x86_64__)
static uint32_t verdict(const struct ab_seccomp_program *prog, uint32_t arch, int nr, unsigned arg,
			uint64_t value)
{
	struct seccomp_data d = { .nr = nr, .arch = arch };

	d.args[arg] = value;
	return bpf_run(prog, &d);
}

/* Random 64-bit values, half of them with a low half taken from `interesting`. */
static uint64_t sample(const uint32_t *interesting, size_t n)
{
	uint64_t v = rnd();

	if (n && (v & 1))
		v = (v & 0xffffffff00000000ull) * ((v >> 1) & 1) | interesting[(v >> 2) % n];
	return v;
}

static bool in_set(const uint32_t *set, size_t n, uint32_t v)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
}

static void test_programs_in_userspace(void)
{
	static const uint32_t ttys[] = { TIOCSTI, TIOCLINUX, FIONREAD, TCGETS };
	static const uint32_t personas[] = { 0, 8, 0x20000, 0x20008, 0xffffffffu,
					     ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, 9 };
	static const uint32_t families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET };
	const uint32_t harmless[] = { 0, 8, 0x20000, 0x20008, 0xffffffffu };
	const uint32_t inet[] = { AF_UNIX, AF_INET, AF_INET6 };
	const uint32_t tty_bad[] = { TIOCSTI, TIOCLINUX };
	const uint64_t ns_clone = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
				  CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
	struct ab_seccomp_program def = { 0 }, strict = { 0 };
	struct ab_error err = { 0 };
	size_t wrong_tty = 0, wrong_persona = 0, wrong_clone = 0, wrong_socket = 0;

	ok(ab_seccomp_compile_table(&ab_seccomp_default_table, &def, &err) == 0 &&
	   ab_seccomp_compile_table(&ab_seccomp_strict_table, &strict, &err) == 0,
	   "both tables compile (%s)", err.msg);
	if (!def.insns || !strict.insns)
		goto out;
	for (int i = 0; i < 20000; i++) {
		uint64_t v = sample(ttys, AB_ELEMENTSOF(ttys));
		uint32_t want = in_set(tty_bad, 2, (uint32_t)v) ? ERRNO_RET(EPERM) : SECCOMP_RET_ALLOW;
		wrong_tty += verdict(&def, AUDIT_ARCH_X86_64, SYS_ioctl, 1, v) != want;
		wrong_tty += verdict(&strict, AUDIT_ARCH_X86_64, SYS_ioctl, 1, v) != want;

		v = sample(personas, AB_ELEMENTSOF(personas));
		want = in_set(harmless, 5, (uint32_t)v) ? SECCOMP_RET_ALLOW : ERRNO_RET(EPERM);
		wrong_persona += verdict(&def, AUDIT_ARCH_X86_64, SYS_personality, 0, v) != want;
		wrong_persona += verdict(&strict, AUDIT_ARCH_X86_64, SYS_personality, 0, v) != want;

		v = rnd() & (rnd() | ~ns_clone);
		want = v & ns_clone ? ERRNO_RET(EPERM) : SECCOMP_RET_ALLOW;
		wrong_clone += verdict(&def, AUDIT_ARCH_X86_64, SYS_clone, 0, v) != want;
		wrong_clone += verdict(&strict, AUDIT_ARCH_X86_64, SYS_clone, 0, v) != want;

		v = sample(families, AB_ELEMENTSOF(families));
		want = in_set(inet, 3, (uint32_t)v) ? SECCOMP_RET_ALLOW : ERRNO_RET(EAFNOSUPPORT);
		wrong_socket += verdict(&strict, AUDIT_ARCH_X86_64, SYS_socket, 0, v) != want;
		wrong_socket += verdict(&def, AUDIT_ARCH_X86_64, SYS_socket, 0, v) != SECCOMP_RET_ALLOW;
	}
	ok(wrong_tty == 0, "ioctl: exactly TIOCSTI/TIOCLINUX in the low 32 bits refused (%zu wrong)",
	   wrong_tty);
	ok(wrong_persona == 0, "personality: exactly Docker's five values allowed (%zu wrong)",
	   wrong_persona);
	ok(wrong_clone == 0, "clone: refused exactly when a namespace flag is set (%zu wrong)",
	   wrong_clone);
	ok(wrong_socket == 0, "socket: strict allows exactly unix/inet/inet6 (%zu wrong)",
	   wrong_socket);
	ok(verdict(&def, AUDIT_ARCH_I386, 20, 0, 0) == ERRNO_RET(EPERM) &&
	   verdict(&strict, AUDIT_ARCH_I386, 20, 0, 0) == ERRNO_RET(EPERM),
	   "the i386 ABI is refused with EPERM");
	ok(verdict(&def, AUDIT_ARCH_X86_64, 0x40000000 | SYS_getpid, 0, 0) == ERRNO_RET(EPERM),
	   "the x32 ABI is refused with EPERM");
	ok(verdict(&def, AUDIT_ARCH_AARCH64, SYS_getpid, 0, 0) == ERRNO_RET(EPERM),
	   "a foreign architecture is refused with EPERM");
	ok(verdict(&def, AUDIT_ARCH_X86_64, SYS_clone3, 0, 0) == ERRNO_RET(ENOSYS),
	   "default: clone3 answers ENOSYS");
	ok(verdict(&strict, AUDIT_ARCH_X86_64, SYS_vmsplice, 0, 0) == ERRNO_RET(ENOSYS) &&
	   verdict(&strict, AUDIT_ARCH_X86_64, 1000, 0, 0) == ERRNO_RET(ENOSYS),
	   "strict: unlisted and unknown syscalls answer ENOSYS");
	ok(verdict(&def, AUDIT_ARCH_X86_64, 1000, 0, 0) == SECCOMP_RET_ALLOW,
	   "default: an unlisted syscall is allowed");
out:
	free(def.insns);
	free(strict.insns);
}
#endif

/* --- pure tests ---------------------------------------------------------------------- */

static bool cover_matches(const struct ab_seccomp_masked *c, int n, uint32_t v)
{
	for (int i = 0; i < n; i++)
		if ((v & c[i].mask) == c[i].value)
			return true;
	return false;
}

static void test_complement_cover(void)
{
	struct ab_seccomp_masked c[32 * AB_SECCOMP_MAX_VALUES + 1];
	size_t wrong = 0, overlaps = 0;
	int n;

	n = ab_seccomp_complement_cover(NULL, 0, c, AB_ELEMENTSOF(c));
	ok(n == 1 && c[0].mask == 0, "the complement of nothing is everything");
	for (int round = 0; round < 200; round++) {
		uint32_t set[AB_SECCOMP_MAX_VALUES];
		size_t k = 1 + rnd() % AB_SECCOMP_MAX_VALUES;
		for (size_t i = 0; i < k; i++)
			set[i] = (uint32_t)(i && (rnd() & 1) ? set[i - 1] ^ (1u << (rnd() % 32)) : rnd());
		n = ab_seccomp_complement_cover(set, k, c, AB_ELEMENTSOF(c));
		if (n < 0) {
			wrong++;
			continue;
		}
		for (size_t i = 0; i < k; i++)
			wrong += cover_matches(c, n, set[i]);
		for (int t = 0; t < 200; t++) {
			uint32_t v = (uint32_t)rnd() ^ (t & 1 ? set[t % k] & ~0xffu : 0);
			int hits = 0;
			for (int i = 0; i < n; i++)
				hits += (v & c[i].mask) == c[i].value;
			wrong += (hits > 0) == in_set_u32(set, k, v);
			overlaps += hits > 1;
		}
	}
	ok(wrong == 0 && overlaps == 0,
	   "complement cover: matches exactly the values outside the set, once (%zu wrong, %zu "
	   "overlaps)", wrong, overlaps);
	n = ab_seccomp_complement_cover((const uint32_t[]){ 1, 2 }, 2, c, 3);
	ok(n == -ENOSPC, "complement cover: a short buffer is -ENOSPC, not an overflow");
}
