/* Seccomp: the policy tables, the compiler, the Docker profile reader, and what the
 * kernel really does with the programs.
 *
 * Kernel tests follow the Linux selftests shape. Each probe runs in its own child:
 *
 *   test ── fork ──> child: no_new_privs, ab_seccomp_install(set), probe()
 *                      └── exit_group(0 on success, or the errno the probe met)
 *
 * and every refusal is also probed once without a filter (the control), so a test
 * proves the filter made the difference: a probe that fails anyway proves nothing.
 * A test skips only where the kernel lacks the feature (or refuses the probe
 * without a filter too); AB_MUST_WORK=1 turns skips into failures. The Docker sample profile is read from
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
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/seccomp-policy.h"
#include "lib/seccomp.h"
#include "shared/cleanup.h"
#include "tap.h"

#define HARNESS_NNP 251
#define HARNESS_INSTALL 252
#define ODD_RESULT 222

/* --- the harness ------------------------------------------------------------------ */

/* exit_group itself: a sanitizer's _exit hook would run its own syscalls (a leak check)
 * under the filter being tested, and change the exit code when they are refused. Not
 * noreturn, not even by inference: ASan runs a hook before each noreturn call, and
 * that hook makes syscalls too. exit_group does not return. */
static void child_exit(int code)
{
	syscall(SYS_exit_group, code);
}

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
			child_exit(HARNESS_NNP);
		if (set && ab_seccomp_install(set) < 0)
			child_exit(HARNESS_INSTALL);
		child_exit(probe());
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
	const char *must = getenv("AB_MUST_WORK");

	ok(!(must && strcmp(must, "1") == 0), "%s # SKIP %s", what, why);
}

/* The filtered run must end with `want`, the unfiltered one must not. */
static void expect_refused(const struct ab_seccomp_set *set, const char *mode, int (*probe)(void),
			   const char *what, int want)
{
	int control = run_probe(NULL, probe);
	int got = run_probe(set, probe);
	char desc[160];

	snprintf(desc, sizeof(desc), "%s: %s refused with %s", mode, what, strerrorname_np(want));
	if (control == want)
		skip_or_fail(desc, "the kernel refuses it without a filter too (not root?)");
	else
		ok(got == want, "%s (got %d, unfiltered %d)", desc, got, control);
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

	return fd < 0 ? errno : close(fd);
}

static int wait_ok(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : ODD_RESULT;
}

/* After fork or a raw clone: the child leaves at once, the parent reaps it. */
static int reap(long pid)
{
	if (pid < 0)
		return errno;
	if (pid == 0)
		child_exit(0);
	return wait_ok((pid_t)pid);
}

static int probe_fork(void) { return reap(fork()); }

static int probe_exec_true(void)
{
	pid_t pid = fork();

	if (pid < 0)
		return errno;
	if (pid == 0) {
		char *argv[] = { "true", NULL }, *envp[] = { NULL };
		execve("/bin/true", argv, envp);
		child_exit(errno);
	}
	return wait_ok(pid);
}

static int probe_mount(void)
{
	return result(syscall(SYS_mount, "none", "/nonexistent-agentbox-test", "tmpfs", 0, NULL));
}

static int probe_unshare_userns(void) { return result(syscall(SYS_unshare, CLONE_NEWUSER)); }

/* The raw syscall, as a program calling clone(2) directly would: no glibc wrapper. */
static int probe_clone_userns(void) { return reap(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)); }

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

	return fd < 0 ? errno : close(fd);
}

static int probe_netlink(void) { return probe_socket(AF_NETLINK, SOCK_RAW); }
static int probe_inet(void) { return probe_socket(AF_INET, SOCK_STREAM); }

#if defined(__x86_64__)
/* getpid through the i386 ABI from 64-bit code: eax 20 is i386's getpid. */
static int probe_int80(void)
{
	long ret;

	/* Without i386 emulation int 0x80 faults: die of it, whatever a sanitizer wants. */
	signal(SIGSEGV, SIG_DFL);

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
		child_exit(errno);
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

/* Only the instructions libseccomp emits for our tables; anything else is BPF_BAD,
 * which no test expects, so a new instruction shows up as a failure, not a pass. */
static uint32_t bpf_run(const struct ab_seccomp_program *prog, const struct seccomp_data *d)
{
	uint32_t a = 0;

	for (size_t pc = 0; pc < prog->len; pc++) {
		const struct sock_filter *f = &prog->insns[pc];
		bool taken;

		switch (f->code) {
		case BPF_LD | BPF_W | BPF_ABS:
			if (f->k % 4 || f->k + 4 > sizeof(*d))
				return BPF_BAD;
			memcpy(&a, (const char *)d + f->k, 4);
			continue;
		case BPF_ALU | BPF_AND | BPF_K: a &= f->k; continue;
		case BPF_RET | BPF_K: return f->k;
		case BPF_JMP | BPF_JA: pc += f->k; continue;
		case BPF_JMP | BPF_JEQ | BPF_K: taken = a == f->k; break;
		case BPF_JMP | BPF_JGT | BPF_K: taken = a > f->k; break;
		case BPF_JMP | BPF_JGE | BPF_K: taken = a >= f->k; break;
		case BPF_JMP | BPF_JSET | BPF_K: taken = (a & f->k) != 0; break;
		default: return BPF_BAD;
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

static bool in_set(const uint32_t *set, size_t n, uint32_t v)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == v)
			return true;
	return false;
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
			wrong += (hits > 0) == in_set(set, k, v);
			overlaps += hits > 1;
		}
	}
	ok(wrong == 0 && overlaps == 0,
	   "complement cover: matches exactly the values outside the set, once (%zu wrong, %zu "
	   "overlaps)", wrong, overlaps);
	n = ab_seccomp_complement_cover((const uint32_t[]){ 1, 2 }, 2, c, 3);
	ok(n == -ENOSPC, "complement cover: a short buffer is -ENOSPC, not an overflow");
}

static const struct ab_seccomp_rule *find_rule(const struct ab_seccomp_table *t, const char *name)
{
	for (size_t i = 0; i < t->n_rules; i++)
		if (strcmp(t->rules[i].name, name) == 0)
			return &t->rules[i];
	return NULL;
}

static size_t duplicates(const struct ab_seccomp_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n_rules; i++)
		for (size_t j = 0; j < i; j++)
			n += t->rules[i].nr == t->rules[j].nr;
	return n;
}

static void test_tables(void)
{
	static const char *const must_refuse[] = {
		"mount", "umount2", "mount_setattr", "move_mount", "open_tree", "fsopen",
		"fsconfig", "fsmount", "fspick", "pivot_root", "chroot", "setns", "bpf",
		"perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
		"userfaultfd", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "open_by_handle_at",
		"name_to_handle_at", "reboot", "swapon", "swapoff", "clock_settime",
		"clock_adjtime", "settimeofday", "adjtimex", "acct", "quotactl", "lookup_dcookie",
		"vhangup", "nfsservctl", "syslog", "iopl", "ioperm", "uselib", "ptrace",
		"process_vm_writev",
	};
	static const char *const arg_rows[] = { "clone", "unshare", "personality", "ioctl" };
	const struct ab_seccomp_table *def = &ab_seccomp_default_table;
	const struct ab_seccomp_rule *r;
	size_t missing = 0, no_reason = 0, differ = 0;

	for (size_t i = 0; i < AB_ELEMENTSOF(must_refuse); i++) {
		r = find_rule(def, must_refuse[i]);
		if (!r || r->check != AB_CHECK_NONE || r->refuse_errno != EPERM) {
			printf("# not refused with EPERM: %s\n", must_refuse[i]);
			missing++;
		}
	}
	ok(missing == 0, "default: every syscall of the required list is refused with EPERM");
	for (size_t i = 0; i < def->n_rules; i++)
		no_reason += !def->rules[i].why || !*def->rules[i].why || def->rules[i].refuse_errno <= 0;
	ok(no_reason == 0 && !def->allow_list, "default: a deny list, every row with its reason");
	r = find_rule(def, "clone");
	ok(r && r->check == AB_CHECK_ANY_FLAG && (r->mask & CLONE_NEWUSER) && (r->mask & CLONE_NEWNS) &&
	   !(r->mask & CSIGNAL), "default: clone refused on namespace flags, not on the exit signal");
	r = find_rule(def, "unshare");
	ok(r && r->check == AB_CHECK_ANY_FLAG &&
	   r->mask == (uint64_t)(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
				 CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWTIME),
	   "default: unshare refused on every namespace flag");
	r = find_rule(def, "clone3");
	ok(r && r->check == AB_CHECK_NONE && r->refuse_errno == ENOSYS,
	   "default: clone3 answers ENOSYS so libc falls back to clone");
	r = find_rule(def, "ioctl");
	ok(r && r->check == AB_CHECK_VALUE_IN && r->arg == 1 && r->n_values == 2 &&
	   r->values[0] == TIOCSTI && r->values[1] == TIOCLINUX, "default: ioctl TIOCSTI/TIOCLINUX");
	r = find_rule(def, "personality");
	ok(r && r->check == AB_CHECK_VALUE_NOT_IN && r->n_values == 5,
	   "default: personality limited to five values");
	for (size_t i = 0; i < AB_ELEMENTSOF(arg_rows); i++) {
		const struct ab_seccomp_rule *a = find_rule(def, arg_rows[i]);
		const struct ab_seccomp_rule *b = find_rule(&ab_seccomp_strict_table, arg_rows[i]);
		differ += !a || !b || a->refuse_errno != b->refuse_errno || a->check != b->check ||
			  a->arg != b->arg || a->mask != b->mask || a->n_values != b->n_values ||
			  memcmp(a->values, b->values, sizeof(a->values)) != 0;
	}
	ok(differ == 0, "strict: the same argument rows as default");
	ok(ab_seccomp_strict_table.allow_list && ab_seccomp_strict_table.default_errno == ENOSYS,
	   "strict: an allow list, ENOSYS for the rest");
	ok(duplicates(def) == 0 && duplicates(&ab_seccomp_strict_table) == 0,
	   "no syscall listed twice in a table");
	ok(!find_rule(&ab_seccomp_strict_table, "mount") && !find_rule(&ab_seccomp_strict_table, "bpf") &&
	   !find_rule(&ab_seccomp_strict_table, "ptrace"), "strict: mount, bpf, ptrace not listed");
}

/* --- kernel tests ------------------------------------------------------------------- */

static void test_default_in_kernel(void)
{
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r = ab_seccomp_prepare(AB_SECCOMP_DEFAULT, NULL, &set, &err);
	int control;

	ok(r == 0 && set.n_programs == 1 && strncmp(set.summary, "default: ", 9) == 0 &&
	   strstr(set.summary, "foreign ABIs refused"), "default: prepared: %s", r ? err.msg : set.summary);
	expect_refused(&set, "default", probe_mount, "mount", EPERM);
	expect_refused(&set, "default", probe_unshare_userns, "unshare(CLONE_NEWUSER)", EPERM);
	expect_refused(&set, "default", probe_clone_userns, "raw clone(CLONE_NEWUSER)", EPERM);
	expect_refused(&set, "default", probe_bpf, "bpf", EPERM);
	expect_refused(&set, "default", probe_keyctl, "keyctl", EPERM);
	expect_refused(&set, "default", probe_tiocsti, "ioctl TIOCSTI", EPERM);
	expect_refused(&set, "default", probe_tiocsti_high, "ioctl 0x100005412", EPERM);
	expect_refused(&set, "default", probe_tioclinux, "ioctl TIOCLINUX", EPERM);
	expect_refused(&set, "default", probe_no_randomize, "personality(ADDR_NO_RANDOMIZE)", EPERM);
	control = run_probe(NULL, probe_io_uring);
	if (control == EPERM || control == ENOSYS)
		skip_or_fail("default: io_uring_setup refused", "io_uring is off in this kernel");
	else
		expect_refused(&set, "default", probe_io_uring, "io_uring_setup", EPERM);
#if defined(__x86_64__)
	control = run_probe(NULL, probe_int80);
	if (control != 0)
		skip_or_fail("default: int 0x80 getpid refused", "no i386 emulation in this kernel");
	else
		expect_refused(&set, "default", probe_int80, "int 0x80 getpid from 64-bit code", EPERM);
#endif
	expect_works(&set, "default", probe_getpid, "getpid");
	expect_works(&set, "default", probe_open, "open");
	expect_works(&set, "default", probe_fork, "fork (clone without namespace flags)");
	expect_works(&set, "default", probe_exec_true, "fork+exec /bin/true");
	expect_works(&set, "default", probe_personality_query, "personality(0xffffffff)");
	expect_works(&set, "default", probe_fionread, "ioctl FIONREAD");
	expect_works(&set, "default", probe_netlink, "a netlink socket");
	ab_seccomp_set_free(&set);
}

static void test_strict_in_kernel(void)
{
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r = ab_seccomp_prepare(AB_SECCOMP_STRICT, NULL, &set, &err);

	ok(r == 0 && set.n_programs == 1 && strncmp(set.summary, "strict: ", 8) == 0,
	   "strict: prepared: %s", r ? err.msg : set.summary);
	expect_works(&set, "strict", probe_exec_true, "fork+exec /bin/true");
	expect_works(&set, "strict", probe_open, "open");
	expect_works(&set, "strict", probe_inet, "an AF_INET socket");
	expect_works(&set, "strict", probe_fionread, "ioctl FIONREAD");
	expect_works(&set, "strict", probe_personality_query, "personality(0xffffffff)");
	expect_refused(&set, "strict", probe_vmsplice, "vmsplice (unlisted)", ENOSYS);
	expect_refused(&set, "strict", probe_mount, "mount (unlisted)", ENOSYS);
	expect_refused(&set, "strict", probe_netlink, "a netlink socket", EAFNOSUPPORT);
	expect_refused(&set, "strict", probe_unshare_userns, "unshare(CLONE_NEWUSER)", EPERM);
	expect_refused(&set, "strict", probe_clone_userns, "raw clone(CLONE_NEWUSER)", EPERM);
	expect_refused(&set, "strict", probe_tiocsti_high, "ioctl 0x100005412", EPERM);
	expect_refused(&set, "strict", probe_no_randomize, "personality(ADDR_NO_RANDOMIZE)", EPERM);
	if (access("/bin/bash", X_OK) == 0 && access("/usr/bin/python3", X_OK) == 0)
		expect_works(&set, "strict", probe_dev_tools, "bash -c 'ls; cat /etc/os-release; python3'");
	else
		skip_or_fail("strict: bash, ls, cat and python3 work", "no /bin/bash or /usr/bin/python3");
	ab_seccomp_set_free(&set);
}

static void test_unconfined(void)
{
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r = ab_seccomp_prepare(AB_SECCOMP_UNCONFINED, NULL, &set, &err);

	ok(r == 0 && set.n_programs == 0 && strstr(set.summary, "unconfined"),
	   "unconfined: no program, and the summary says so");
	expect_works(&set, "unconfined", probe_unshare_userns, "unshare(CLONE_NEWUSER)");
	ab_seccomp_set_free(&set);
}

/* --- Docker profiles ----------------------------------------------------------------- */

static char tmp_path[64];

static int write_tmp(const char *data, size_t len)
{
	int fd;

	snprintf(tmp_path, sizeof(tmp_path), "/tmp/ab-test-seccomp-XXXXXX");
	fd = mkostemp(tmp_path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

/* The whole path a user takes: a file, ab_seccomp_prepare, the guard stacked. */
static int prepare_json(const char *json, struct ab_seccomp_set *set, struct ab_error *err)
{
	int r = write_tmp(json, strlen(json));

	if (r < 0)
		return r;
	r = ab_seccomp_prepare(AB_SECCOMP_PROFILE, tmp_path, set, err);
	unlink(tmp_path);
	return r;
}

static void test_docker_sample(void)
{
	const char *srcdir = getenv("AB_SRCDIR");
	char path[4096];
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r;

	snprintf(path, sizeof(path), "%s/tests/fuzz/corpus/seccomp-profile/docker-default.json",
		 srcdir ? srcdir : ".");
	r = ab_seccomp_prepare(AB_SECCOMP_PROFILE, path, &set, &err);
	ok(r == 0 && set.n_programs == 2 && strstr(set.summary, "default SCMP_ACT_ERRNO(1)") &&
	   strstr(set.summary, "(9 skipped)") && strstr(set.summary, "TIOCSTI/TIOCLINUX refused"),
	   "docker sample: accepted, the summary counts what was skipped (%s)",
	   r ? err.msg : set.summary);
	if (r < 0)
		return;
	expect_works(&set, "docker sample", probe_exec_true, "fork+exec /bin/true");
	expect_works(&set, "docker sample", probe_getpid, "getpid");
	expect_refused(&set, "docker sample", probe_mount, "mount", EPERM);
	expect_refused(&set, "docker sample", probe_clone_userns, "raw clone(CLONE_NEWUSER)", EPERM);
	expect_refused(&set, "docker sample", probe_no_randomize, "personality(ADDR_NO_RANDOMIZE)",
		       EPERM);
	expect_refused(&set, "docker sample", probe_tiocsti, "ioctl TIOCSTI", EPERM);
	ab_seccomp_set_free(&set);
}

static void test_docker_in_kernel(void)
{
	struct ab_seccomp_set set;
	struct ab_error err = { 0 };
	int r;

	/* An allow list that does not even allow seccomp(2): the guard must go first. */
	r = prepare_json("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [{\"names\": "
			 "[\"exit_group\", \"exit\", \"getpid\"], \"action\": \"SCMP_ACT_ALLOW\"}]}",
			 &set, &err);
	ok(r == 0, "allow-list profile: accepted (%s)", r ? err.msg : set.summary);
	expect_works(&set, "allow-list profile", probe_getpid, "getpid (listed)");
	expect_refused(&set, "allow-list profile", probe_getppid, "getppid (unlisted)", EPERM);
	ab_seccomp_set_free(&set);

	r = prepare_json("{\"defaultAction\": \"SCMP_ACT_ALLOW\"}", &set, &err);
	ok(r == 0 && set.n_programs == 2, "permissive profile: accepted, with the guard");
	expect_refused(&set, "permissive profile", probe_tiocsti, "ioctl TIOCSTI", EPERM);
	expect_refused(&set, "permissive profile", probe_tiocsti_high, "ioctl 0x100005412", EPERM);
	expect_refused(&set, "permissive profile", probe_tioclinux, "ioctl TIOCLINUX", EPERM);
	expect_works(&set, "permissive profile", probe_fionread, "ioctl FIONREAD");
	ab_seccomp_set_free(&set);

	r = prepare_json(
		"{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": ["
		"{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"includes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
		"{\"names\": [\"getpid\"], \"action\": \"SCMP_ACT_ERRNO\", \"excludes\": {\"caps\": [\"CAP_SYS_ADMIN\"]}},"
		"{\"names\": [\"gettid\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 13,"
		" \"includes\": {\"minKernel\": \"3.0\", \"arches\": [\"amd64\"]}},"
		"{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"includes\": {\"minKernel\": \"99.0\"}},"
		"{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", \"excludes\": {\"arches\": [\"amd64\"]}},"
		"{\"names\": [\"no_such_syscall\", \"chown32\"], \"action\": \"SCMP_ACT_ERRNO\"}]}",
		&set, &err);
	ok(r == 0 && strstr(set.summary, "(3 skipped)") && strstr(set.summary, "2 names unknown here"),
	   "caps/arches/minKernel profile: accepted: %s", r ? err.msg : set.summary);
	expect_works(&set, "filters", probe_getppid, "getppid (includes caps, minKernel 99, excludes amd64)");
	expect_refused(&set, "filters", probe_getpid, "getpid (excludes caps)", EPERM);
	expect_refused(&set, "filters", probe_gettid, "gettid (minKernel 3.0, amd64, errnoRet 13)",
		       EACCES);
	ab_seccomp_set_free(&set);
}

/* Bad profiles, built from a permissive one, and the message each must give. */
#define PERMISSIVE(rest) "{\"defaultAction\": \"SCMP_ACT_ALLOW\"" rest "}"
#define ONE_ENTRY(body) PERMISSIVE(", \"syscalls\": [{" body "}]")
#define REFUSING(names, more) ONE_ENTRY("\"names\": " names ", \"action\": \"SCMP_ACT_ERRNO\"" more)
#define ARGS(list) REFUSING("[\"ioctl\"]", ", \"args\": " list)

static void test_docker_errors(void)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{ "[]", "the profile must be a JSON object" },
		{ "{}", "defaultAction: missing" },
		{ "{\"defaultAction\": 1}", "defaultAction: must be a string" },
		{ "{\"defaultAction\": \"SCMP_ACT_NOTIFY\"}",
		  "defaultAction: unsupported action 'SCMP_ACT_NOTIFY'" },
		{ "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"defaultErrnoRet\": -1}",
		  "defaultErrnoRet: must be a non-negative integer" },
		{ PERMISSIVE(", \"syscalls\": {}"), "syscalls: must be an array" },
		{ REFUSING("\"read\"", ""), "syscalls[0].names: must be an array" },
		{ REFUSING("[\"read\", 7]", ""), "syscalls[0].names[1]: must be a string" },
		{ REFUSING("[\"mo\\u0000unt\"]", ""), "syscalls[0].names[0]: must not contain a NUL byte" },
		{ REFUSING("[\"read\"]", ", \"name\": \"write\""),
		  "syscalls[0]: both 'name' and 'names' given" },
		{ ONE_ENTRY("\"names\": [\"read\"]"), "syscalls[0].action: missing" },
		{ ONE_ENTRY("\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\", \"errnoRet\": 1"),
		  "syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE" },
		{ REFUSING("[\"read\"]", ", \"errnoRet\": 5000"),
		  "syscalls[0].errnoRet: must be between 0 and 4095" },
		{ ARGS("[{\"index\": 6, \"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]"),
		  "syscalls[0].args[0].index: 6 is not an argument index (0 to 5)" },
		{ ARGS("[{\"index\": 1, \"value\": 1.5, \"op\": \"SCMP_CMP_EQ\"}]"),
		  "syscalls[0].args[0].value: must be a non-negative integer" },
		{ ARGS("[{\"index\": 1, \"op\": \"SCMP_CMP_FOO\"}]"),
		  "syscalls[0].args[0].op: unknown operator 'SCMP_CMP_FOO'" },
		{ ARGS("[{\"index\": 1, \"op\": \"SCMP_CMP_EQ\"}, {\"index\": 1, \"op\": \"SCMP_CMP_NE\"}]"),
		  "syscalls[0].args[1].index: argument 1 compared twice" },
		{ ARGS("[{\"index\": 1, \"op\": \"SCMP_CMP_\\nEQ\"}]"),
		  "syscalls[0].args[0].op: unknown operator 'SCMP_CMP_?EQ'" },
		{ REFUSING("[\"read\"]", ", \"includes\": {\"minKernel\": \"abc\"}"),
		  "syscalls[0].includes.minKernel: invalid kernel version 'abc'" },
		{ REFUSING("[\"read\"]", ", \"excludes\": {\"caps\": \"CAP_SYS_ADMIN\"}"),
		  "syscalls[0].excludes.caps: must be an array" },
		{ PERMISSIVE(", \"architectures\": [\"SCMP_ARCH_X86_64\"], "
			     "\"archMap\": [{\"architecture\": \"SCMP_ARCH_X86_64\"}]"),
		  "archMap: both 'architectures' and 'archMap' given" },
		{ PERMISSIVE(", \"archMap\": [{\"subArchitectures\": []}]"),
		  "archMap[0].architecture: missing" },
		{ PERMISSIVE("") " x", "invalid JSON at byte 36: unexpected character" },
		{ "{\"defaultAction\": \"SCMP_ACT_ALLOW\"", "invalid JSON: unexpected end of input" },
	};
	struct ab_seccomp_set set;
	struct ab_error err;
	char deep[200], want[256], *big;
	size_t at = 0;
	int r;

	for (size_t i = 0; i < AB_ELEMENTSOF(bad); i++) {
		memset(&err, 0, sizeof(err));
		r = ab_seccomp_parse_docker_profile(bad[i].json, strlen(bad[i].json), &set, &err);
		ok(r < 0 && strcmp(err.msg, bad[i].msg) == 0 && set.n_programs == 0 &&
		   !set.programs[0].insns, "bad profile: \"%s\" (got \"%s\")", bad[i].msg,
		   r < 0 ? err.msg : "accepted");
	}
	memset(deep, '[', sizeof(deep));
	r = ab_seccomp_parse_docker_profile(deep, sizeof(deep), &set, &err);
	ok(r < 0 && strstr(err.msg, "invalid JSON") && strstr(err.msg, "nesting too deep"),
	   "JSON nested deeper than 32 is refused (%s)", err.msg);

	big = malloc(AB_SECCOMP_PROFILE_MAX + 2);
	if (!big)
		return;
	at += (size_t)sprintf(big, "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"action\": "
				   "\"SCMP_ACT_ERRNO\", \"names\": [");
	for (int i = 0; i < 4097; i++)
		at += (size_t)sprintf(big + at, "%s\"getpid\"", i ? "," : "");
	at += (size_t)sprintf(big + at, "]}]}");
	r = ab_seccomp_parse_docker_profile(big, at, &set, &err);
	is_str(r < 0 ? err.msg : "accepted",
	       "syscalls[0].names[4096]: more than 4096 syscall names in the profile",
	       "4097 syscall names are refused");

	/* Through a file: the message names the file. */
	r = ab_seccomp_prepare(AB_SECCOMP_PROFILE, "/nonexistent-agentbox/x.json", &set, &err);
	is_str(r < 0 ? err.msg : "accepted",
	       "cannot read seccomp profile '/nonexistent-agentbox/x.json': No such file or directory",
	       "a missing profile file is named in the error");
	r = prepare_json("{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": ["
			 "{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ALLOW\"},"
			 "{\"names\": [\"write\"], \"action\": \"SCMP_ACT_ALLOW\"},"
			 "{\"names\": [\"close\"], \"action\": \"SCMP_ACT_ALLOW\"},"
			 "{\"names\": [\"exit\"], \"action\": \"SCMP_ACT_FOO\"}]}", &set, &err);
	snprintf(want, sizeof(want),
		 "seccomp profile '%s': syscalls[3].action: unknown action 'SCMP_ACT_FOO'", tmp_path);
	ok(r < 0 && strcmp(err.msg, want) == 0, "a bad profile file: file and JSON path named (%s)",
	   err.msg);

	memset(big, ' ', AB_SECCOMP_PROFILE_MAX + 1);
	memcpy(big, "{\"defaultAction\": \"SCMP_ACT_ALLOW\"}", 35);
	r = write_tmp(big, AB_SECCOMP_PROFILE_MAX + 1);
	free(big);
	if (r < 0) {
		ok(0, "cannot write a temporary file: %s", strerror(-r));
		return;
	}
	r = ab_seccomp_prepare(AB_SECCOMP_PROFILE, tmp_path, &set, &err);
	unlink(tmp_path);
	snprintf(want, sizeof(want), "seccomp profile '%s': larger than 1 MiB", tmp_path);
	ok(r < 0 && strcmp(err.msg, want) == 0, "a profile over 1 MiB is refused (%s)", err.msg);
}

/* The programs built into agentbox at build time are exactly what the tables compile to
 * now: a table edited without a rebuild of the generated file would be caught here. */
static void test_builtin_programs(void)
{
	const struct ab_seccomp_table *tables[] = { &ab_seccomp_default_table, &ab_seccomp_strict_table,
						    &ab_seccomp_tty_guard_table };
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		const struct ab_seccomp_builtin *built = ab_seccomp_builtin_for(tables[t]);
		struct ab_seccomp_program prog = { 0 };
		struct ab_error err;
		ok(built != NULL, "'%s' has a build-time program", tables[t]->name);
		ok(ab_seccomp_compile_table(tables[t], &prog, &err) == 0, "'%s' compiles at run time", tables[t]->name);
		ok(built && prog.insns && built->len == prog.len &&
			   memcmp(built->insns, prog.insns, prog.len * sizeof(struct sock_filter)) == 0,
		   "'%s': the build-time program equals the run-time one", tables[t]->name);
		free(prog.insns);
	}
}

int main(void)
{
	test_builtin_programs();
	test_tables();
	test_complement_cover();
#if defined(__x86_64__)
	test_programs_in_userspace();
#endif
	test_default_in_kernel();
	test_strict_in_kernel();
	test_unconfined();
	test_docker_sample();
	test_docker_in_kernel();
	test_docker_errors();
	return tap_done();
}
