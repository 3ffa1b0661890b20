/* The seccomp policy, as tables. Nothing here runs: seccomp.c compiles these rows.
 *
 * default  a deny list. Anything not listed is allowed; each row says why it is refused.
 *          Refusals answer EPERM, except clone3 (ENOSYS, see its row).
 * strict   an allow list for ordinary developer tools (shells, coreutils, gcc, make,
 *          git, python, node, curl). Anything not listed answers ENOSYS: a program
 *          that meets a syscall newer than this list (clone3, fchmodat2, ...) then takes
 *          the fallback it already has for older kernels, where EPERM would look like a
 *          hard refusal and break it. The argument checks of the default table apply too.
 * tty guard  refuses terminal input injection only; stacked on top of a user profile.
 *
 * Argument checks compare the low 32 bits where the kernel reads the argument as a
 * 32-bit int (ioctl's request, personality, socket's family): the high half of the
 * register is ignored by the kernel, so it must be ignored by the check too, or
 * 0x100005412 would slip past a TIOCSTI comparison and still reach TIOCSTI.
 *
 * Knowingly NOT refused by the default table, and why:
 *   - sethostname, setdomainname: the sandbox has its own UTS namespace and no
 *     capabilities; they fail with EPERM in the kernel anyway.
 *   - mbind, set_mempolicy, migrate_pages, move_pages: NUMA placement of the caller's
 *     own memory; moving another process's pages needs CAP_SYS_NICE.
 *   - fanotify_init: unprivileged use (since 5.13) is limited to the caller's own view
 *     of the files it could read anyway.
 *   - kcmp, process_madvise: need ptrace read access to the target, within the
 *     sandbox's own PID namespace only.
 *   - /proc/PID/mem: a path, not a syscall; a filter cannot see paths. Writing it needs
 *     ptrace attach rights over a process of the same sandbox.
 *   - listmount, statmount: read-only views of the sandbox's own mount namespace.
 *   - landlock_*, seccomp, prctl(PR_SET_NO_NEW_PRIVS): can only add restrictions.
 *   - vmsplice, splice, tee: ordinary pipe plumbing.
 *   - socket families: any; the network namespace decides what can be reached. The
 *     strict table narrows them to AF_UNIX, AF_INET and AF_INET6.
 *   - syscalls the kernel no longer implements (create_module, query_module,
 *     get_kernel_syms, afs_syscall, tuxcall, security, vserver, getpmsg, putpmsg):
 *     they answer ENOSYS whatever the filter says.
 *   - anything newer than this table: it is allowed, because a deny list cannot refuse
 *     what it does not name. The strict table is the answer for that worry.
 */
#include "seccomp-policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "../shared/cleanup.h"

/* Syscalls newer than the kernel headers this may be built with. */
#if defined(__x86_64__)
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif
#endif

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

/* Every namespace flag of unshare(2). */
#define NS_FLAGS_UNSHARE                                                                  \
	((uint64_t)(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | \
		    CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWTIME))
/* The same for clone(2), less CLONE_NEWTIME: there 0x80 is a bit of the exit signal
 * (CSIGNAL), and clone(2) cannot create a time namespace at all. */
#define NS_FLAGS_CLONE (NS_FLAGS_UNSHARE & ~(uint64_t)CLONE_NEWTIME)

/* The personality values Docker allows: PER_LINUX, PER_LINUX32, UNAME26, both, query. */
#define HARMLESS_PERSONALITIES \
	PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32 | UNAME26, 0xffffffffu

#define NVALUES(...) ((unsigned)(sizeof((uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t)))

#define SYS(sys) .name = #sys, .nr = __NR_##sys
#define REFUSE(sys, err, reason) { SYS(sys), .refuse_errno = (err), .why = (reason) }
#define REFUSE_FLAGS(sys, a, flags, err, reason)                                    \
	{ SYS(sys), .refuse_errno = (err), .check = AB_CHECK_ANY_FLAG, .arg = (a), \
	  .mask = (flags), .why = (reason) }
#define REFUSE_VALUES(sys, a, err, reason, ...)                                     \
	{ SYS(sys), .refuse_errno = (err), .check = AB_CHECK_VALUE_IN, .arg = (a), \
	  .values = { __VA_ARGS__ }, .n_values = NVALUES(__VA_ARGS__), .why = (reason) }
#define ONLY_VALUES(sys, a, err, reason, ...)                                           \
	{ SYS(sys), .refuse_errno = (err), .check = AB_CHECK_VALUE_NOT_IN, .arg = (a), \
	  .values = { __VA_ARGS__ }, .n_values = NVALUES(__VA_ARGS__), .why = (reason) }
#define ALLOW(sys) { SYS(sys) }

/* Rows shared by both tables: the argument checks. */
#define ROW_CLONE                                                                  \
	REFUSE_FLAGS(clone, 0, NS_FLAGS_CLONE, EPERM,                              \
		     "new namespaces: a new user namespace grants a full capability set")
#define ROW_CLONE3                                                                 \
	REFUSE(clone3, ENOSYS,                                                     \
	       "its flags sit in memory a filter cannot read; ENOSYS makes libc fall back to clone")
#define ROW_UNSHARE                                                                \
	REFUSE_FLAGS(unshare, 0, NS_FLAGS_UNSHARE, EPERM,                          \
		     "new namespaces: a new user namespace grants a full capability set")
#define ROW_PERSONALITY                                                            \
	ONLY_VALUES(personality, 0, EPERM,                                         \
		    "ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC... weaken exploit mitigations", \
		    HARMLESS_PERSONALITIES)
#define ROW_IOCTL                                                                  \
	REFUSE_VALUES(ioctl, 1, EPERM,                                             \
		      "TIOCSTI, TIOCLINUX push keystrokes into the terminal the sandbox runs on", \
		      TIOCSTI, TIOCLINUX)

static const struct ab_seccomp_rule default_rules[] = {
	/* Namespaces: the sandbox's own are already made; new ones reopen the kernel. */
	ROW_CLONE,
	ROW_CLONE3,
	ROW_UNSHARE,
	REFUSE(setns, EPERM, "joining another namespace leaves the sandbox's"),

	/* The mount family: the mount tree is built before the command starts. */
	REFUSE(mount, EPERM, "changes the mount tree, may cover the read-only binds"),
	REFUSE(umount2, EPERM, "may uncover what the sandbox masks"),
	REFUSE(mount_setattr, EPERM, "may turn a read-only bind writable"),
	REFUSE(move_mount, EPERM, "new mount API: attaches mounts"),
	REFUSE(open_tree, EPERM, "new mount API: clones mount trees"),
#ifdef __NR_open_tree_attr
	REFUSE(open_tree_attr, EPERM, "new mount API: clones mount trees with new attributes"),
#endif
	REFUSE(fsopen, EPERM, "new mount API: creates filesystem contexts"),
	REFUSE(fsconfig, EPERM, "new mount API: configures filesystem contexts"),
	REFUSE(fsmount, EPERM, "new mount API: creates mounts"),
	REFUSE(fspick, EPERM, "new mount API: reconfigures mounted filesystems"),
	REFUSE(pivot_root, EPERM, "replaces the root the sandbox set up"),
	REFUSE(chroot, EPERM, "with a writable directory, a classic escape helper"),

	/* Large kernel attack surface that developer tools do not need. */
	REFUSE(bpf, EPERM, "loads programs into the kernel; a long record of verifier bugs"),
	REFUSE(perf_event_open, EPERM, "kernel profiling; leaks kernel addresses, many bugs"),
	REFUSE(io_uring_setup, EPERM, "io_uring bypasses seccomp for the operations it runs"),
	REFUSE(io_uring_enter, EPERM, "io_uring bypasses seccomp for the operations it runs"),
	REFUSE(io_uring_register, EPERM, "io_uring bypasses seccomp for the operations it runs"),
	REFUSE(userfaultfd, EPERM, "stalls kernel page faults at will, a race-exploit staple"),
	REFUSE(keyctl, EPERM, "kernel keyrings are not namespaced"),
	REFUSE(add_key, EPERM, "kernel keyrings are not namespaced"),
	REFUSE(request_key, EPERM, "kernel keyrings are not namespaced; may run upcalls"),
	REFUSE(modify_ldt, EPERM, "16-bit segments, only for Wine and dosemu; bug history"),

	/* Whole-machine state. */
	REFUSE(kexec_load, EPERM, "replaces the running kernel"),
	REFUSE(kexec_file_load, EPERM, "replaces the running kernel"),
	REFUSE(init_module, EPERM, "loads kernel code"),
	REFUSE(finit_module, EPERM, "loads kernel code"),
	REFUSE(delete_module, EPERM, "unloads kernel code"),
	REFUSE(reboot, EPERM, "restarts or halts the machine"),
	REFUSE(swapon, EPERM, "changes the machine's swap"),
	REFUSE(swapoff, EPERM, "changes the machine's swap"),
	REFUSE(clock_settime, EPERM, "the clocks are not namespaced"),
	REFUSE(clock_adjtime, EPERM, "the clocks are not namespaced"),
	REFUSE(settimeofday, EPERM, "the clocks are not namespaced"),
	REFUSE(adjtimex, EPERM, "the clocks are not namespaced"),
	REFUSE(acct, EPERM, "process accounting is machine-wide"),
	REFUSE(quotactl, EPERM, "disk quotas are machine-wide"),
	REFUSE(quotactl_fd, EPERM, "disk quotas are machine-wide"),
	REFUSE(lookup_dcookie, EPERM, "old profiling interface, leaks paths"),
	REFUSE(vhangup, EPERM, "hangs up the terminal for everyone on it"),
	REFUSE(nfsservctl, EPERM, "old NFS server control"),
	REFUSE(syslog, EPERM, "the kernel log leaks addresses and host activity"),
	REFUSE(iopl, EPERM, "raw I/O port access"),
	REFUSE(ioperm, EPERM, "raw I/O port access"),
	REFUSE(uselib, EPERM, "old a.out loader, unused for decades"),

	/* Files by handle: they bypass the path walk, hence the mount tree. */
	REFUSE(open_by_handle_at, EPERM, "opens files outside the sandbox's mounts (shocker)"),
	REFUSE(name_to_handle_at, EPERM, "the first half of open_by_handle_at"),

	/* Other processes. ptrace is refused although debuggers want it: a tracee's
	 * syscalls can be rewritten after the filter ran on old kernels, and an agent has
	 * no business attaching to its siblings. strace and gdb do not work inside. */
	REFUSE(ptrace, EPERM, "attaching to siblings; syscall rewriting on old kernels"),
	REFUSE(process_vm_readv, EPERM, "reads another process's memory, like ptrace"),
	REFUSE(process_vm_writev, EPERM, "writes another process's memory, like ptrace"),
	REFUSE(pidfd_getfd, EPERM, "steals another process's file descriptors, like ptrace"),

	/* Arguments. */
	ROW_PERSONALITY,
	ROW_IOCTL,
};

const struct ab_seccomp_table ab_seccomp_default_table = {
	.name = "default",
	.allow_list = false,
	.rules = default_rules,
	.n_rules = AB_ELEMENTSOF(default_rules),
};

/* The allow list. Grouped by what the tools do; rows within a group follow the kernel's
 * own naming. Anything missing answers ENOSYS (see the top of this file). */
static const struct ab_seccomp_rule strict_rules[] = {
	/* Processes: shells fork and exec, make and gcc spawn, python and node thread. */
	ALLOW(fork),
	ALLOW(vfork),
	ROW_CLONE,
	ROW_CLONE3,
	ALLOW(execve),
	ALLOW(execveat),
	ALLOW(exit),
	ALLOW(exit_group),
	ALLOW(wait4),
	ALLOW(waitid),
	ALLOW(kill),
	ALLOW(tkill),
	ALLOW(tgkill),
	ALLOW(getpid),
	ALLOW(getppid),
	ALLOW(gettid),
	ALLOW(getpgid),
	ALLOW(setpgid),
	ALLOW(getpgrp),
	ALLOW(getsid),
	ALLOW(setsid),
	ALLOW(set_tid_address),
	ALLOW(set_robust_list),
	ALLOW(rseq),
	ALLOW(arch_prctl),
	ALLOW(prctl),
	ROW_UNSHARE,
	ROW_PERSONALITY,
	ALLOW(getpriority),
	ALLOW(setpriority),
	ALLOW(sched_yield),
	ALLOW(sched_getaffinity),
	ALLOW(sched_setaffinity),
	ALLOW(sched_getparam),
	ALLOW(sched_setparam),
	ALLOW(sched_getscheduler),
	ALLOW(sched_setscheduler),
	ALLOW(sched_get_priority_max),
	ALLOW(sched_get_priority_min),
	ALLOW(sched_rr_get_interval),
	ALLOW(sched_getattr),
	ALLOW(sched_setattr),
	ALLOW(getcpu),
	ALLOW(pidfd_open),
	ALLOW(pidfd_send_signal),
	ALLOW(getrlimit),
	ALLOW(setrlimit),
	ALLOW(prlimit64),
	ALLOW(getrusage),
	ALLOW(times),
	ALLOW(restart_syscall),
	ALLOW(ioprio_get),

	/* Self-restriction, which only ever narrows what a process can do. */
	ALLOW(seccomp),
	ALLOW(landlock_create_ruleset),
	ALLOW(landlock_add_rule),
	ALLOW(landlock_restrict_self),
	ALLOW(capget),
	ALLOW(capset),

	/* Credentials: without capabilities these can only keep or drop ids. */
	ALLOW(getuid),
	ALLOW(geteuid),
	ALLOW(getgid),
	ALLOW(getegid),
	ALLOW(getresuid),
	ALLOW(getresgid),
	ALLOW(getgroups),
	ALLOW(setuid),
	ALLOW(setgid),
	ALLOW(setreuid),
	ALLOW(setregid),
	ALLOW(setresuid),
	ALLOW(setresgid),
	ALLOW(setfsuid),
	ALLOW(setfsgid),
	ALLOW(setgroups),

	/* Signals and timers. */
	ALLOW(rt_sigaction),
	ALLOW(rt_sigprocmask),
	ALLOW(rt_sigreturn),
	ALLOW(rt_sigpending),
	ALLOW(rt_sigtimedwait),
	ALLOW(rt_sigsuspend),
	ALLOW(rt_sigqueueinfo),
	ALLOW(rt_tgsigqueueinfo),
	ALLOW(sigaltstack),
	ALLOW(pause),
	ALLOW(alarm),
	ALLOW(getitimer),
	ALLOW(setitimer),
	ALLOW(timer_create),
	ALLOW(timer_settime),
	ALLOW(timer_gettime),
	ALLOW(timer_getoverrun),
	ALLOW(timer_delete),
	ALLOW(signalfd),
	ALLOW(signalfd4),

	/* Time (reading only; setting the clocks is not here). */
	ALLOW(clock_gettime),
	ALLOW(clock_getres),
	ALLOW(clock_nanosleep),
	ALLOW(nanosleep),
	ALLOW(gettimeofday),
	ALLOW(time),
	ALLOW(timerfd_create),
	ALLOW(timerfd_settime),
	ALLOW(timerfd_gettime),

	/* Memory. */
	ALLOW(brk),
	ALLOW(mmap),
	ALLOW(munmap),
	ALLOW(mprotect),
	ALLOW(mremap),
	ALLOW(madvise),
	ALLOW(msync),
	ALLOW(mincore),
	ALLOW(mlock),
	ALLOW(mlock2),
	ALLOW(munlock),
	ALLOW(mlockall),
	ALLOW(munlockall),
	ALLOW(membarrier),
	ALLOW(memfd_create),
	ALLOW(pkey_alloc),
	ALLOW(pkey_free),
	ALLOW(pkey_mprotect),
	ALLOW(futex),
#ifdef __NR_futex_waitv
	ALLOW(futex_waitv),
#endif

	/* File descriptors and I/O. */
	ALLOW(read),
	ALLOW(write),
	ALLOW(readv),
	ALLOW(writev),
	ALLOW(pread64),
	ALLOW(pwrite64),
	ALLOW(preadv),
	ALLOW(pwritev),
	ALLOW(preadv2),
	ALLOW(pwritev2),
	ALLOW(close),
	ALLOW(close_range),
	ALLOW(lseek),
	ALLOW(dup),
	ALLOW(dup2),
	ALLOW(dup3),
	ALLOW(fcntl),
	ALLOW(flock),
	ALLOW(fsync),
	ALLOW(fdatasync),
	ALLOW(sync),
	ALLOW(syncfs),
	ALLOW(sync_file_range),
	ALLOW(pipe),
	ALLOW(pipe2),
	ALLOW(sendfile),
	ALLOW(splice),
	ALLOW(tee),
	ALLOW(copy_file_range),
	ALLOW(eventfd),
	ALLOW(eventfd2),
	ROW_IOCTL,

	/* Paths. */
	ALLOW(open),
	ALLOW(openat),
	ALLOW(openat2),
	ALLOW(creat),
	ALLOW(truncate),
	ALLOW(ftruncate),
	ALLOW(fallocate),
	ALLOW(fadvise64),
	ALLOW(readahead),
	ALLOW(stat),
	ALLOW(fstat),
	ALLOW(lstat),
	ALLOW(newfstatat),
	ALLOW(statx),
	ALLOW(statfs),
	ALLOW(fstatfs),
	ALLOW(access),
	ALLOW(faccessat),
	ALLOW(faccessat2),
	ALLOW(readlink),
	ALLOW(readlinkat),
	ALLOW(getdents),
	ALLOW(getdents64),
	ALLOW(getcwd),
	ALLOW(chdir),
	ALLOW(fchdir),
	ALLOW(mkdir),
	ALLOW(mkdirat),
	ALLOW(rmdir),
	ALLOW(rename),
	ALLOW(renameat),
	ALLOW(renameat2),
	ALLOW(link),
	ALLOW(linkat),
	ALLOW(unlink),
	ALLOW(unlinkat),
	ALLOW(symlink),
	ALLOW(symlinkat),
	ALLOW(chmod),
	ALLOW(fchmod),
	ALLOW(fchmodat),
#ifdef __NR_fchmodat2
	ALLOW(fchmodat2),
#endif
	ALLOW(chown),
	ALLOW(fchown),
	ALLOW(lchown),
	ALLOW(fchownat),
	ALLOW(umask),
	ALLOW(utime),
	ALLOW(utimes),
	ALLOW(futimesat),
	ALLOW(utimensat),
	ALLOW(mknod),
	ALLOW(mknodat),
	ALLOW(getxattr),
	ALLOW(lgetxattr),
	ALLOW(fgetxattr),
	ALLOW(listxattr),
	ALLOW(llistxattr),
	ALLOW(flistxattr),
	ALLOW(setxattr),
	ALLOW(lsetxattr),
	ALLOW(fsetxattr),
	ALLOW(removexattr),
	ALLOW(lremovexattr),
	ALLOW(fremovexattr),
	ALLOW(inotify_init),
	ALLOW(inotify_init1),
	ALLOW(inotify_add_watch),
	ALLOW(inotify_rm_watch),

	/* Waiting on many descriptors: event loops of node, python asyncio, make -j. */
	ALLOW(select),
	ALLOW(pselect6),
	ALLOW(poll),
	ALLOW(ppoll),
	ALLOW(epoll_create),
	ALLOW(epoll_create1),
	ALLOW(epoll_ctl),
	ALLOW(epoll_wait),
	ALLOW(epoll_pwait),
	ALLOW(epoll_pwait2),

	/* Sockets: local, IPv4 and IPv6 only. Other families (netlink, packet, vsock...)
	 * answer EAFNOSUPPORT, which glibc's resolver and curl treat as "not here". */
	ONLY_VALUES(socket, 0, EAFNOSUPPORT, "only AF_UNIX, AF_INET, AF_INET6", AF_UNIX, AF_INET,
		    AF_INET6),
	ONLY_VALUES(socketpair, 0, EAFNOSUPPORT, "only AF_UNIX", AF_UNIX),
	ALLOW(connect),
	ALLOW(accept),
	ALLOW(accept4),
	ALLOW(bind),
	ALLOW(listen),
	ALLOW(getsockname),
	ALLOW(getpeername),
	ALLOW(sendto),
	ALLOW(recvfrom),
	ALLOW(sendmsg),
	ALLOW(recvmsg),
	ALLOW(sendmmsg),
	ALLOW(recvmmsg),
	ALLOW(shutdown),
	ALLOW(setsockopt),
	ALLOW(getsockopt),

	/* System V and POSIX IPC: namespaced by the sandbox's IPC namespace. */
	ALLOW(shmget),
	ALLOW(shmat),
	ALLOW(shmdt),
	ALLOW(shmctl),
	ALLOW(semget),
	ALLOW(semop),
	ALLOW(semtimedop),
	ALLOW(semctl),
	ALLOW(msgget),
	ALLOW(msgsnd),
	ALLOW(msgrcv),
	ALLOW(msgctl),
	ALLOW(mq_open),
	ALLOW(mq_unlink),
	ALLOW(mq_timedsend),
	ALLOW(mq_timedreceive),
	ALLOW(mq_notify),
	ALLOW(mq_getsetattr),

	/* The system, read-only. */
	ALLOW(uname),
	ALLOW(sysinfo),
	ALLOW(getrandom),
};

const struct ab_seccomp_table ab_seccomp_strict_table = {
	.name = "strict",
	.allow_list = true,
	.default_errno = ENOSYS,
	.rules = strict_rules,
	.n_rules = AB_ELEMENTSOF(strict_rules),
};

/* Stacked on top of a user's Docker profile: terminal injection is refused whatever the
 * profile says (Docker's own default profile allows every ioctl). */
static const struct ab_seccomp_rule tty_guard_rules[] = {
	ROW_IOCTL,
};

const struct ab_seccomp_table ab_seccomp_tty_guard_table = {
	.name = "tty guard",
	.allow_list = false,
	.rules = tty_guard_rules,
	.n_rules = AB_ELEMENTSOF(tty_guard_rules),
};

/* The egress proxy (src/proxy/proxy-confine.c): one process, one thread, an epoll loop
 * that accepts on listeners it was handed, connects out over TCP, relays with splice,
 * answers DNS over UDP, resolves with c-ares, reads the resolver's files and appends
 * JSON lines (json-c) to a log it was handed open. Anything unlisted answers EPERM, so a
 * syscall missing here shows up as an error in the log, not as a mystery death.
 *
 * Knowingly NOT allowed, and why:
 *   - execve, execveat: it never runs a program.
 *   - fork, vfork, clone, clone3: one process with one thread; c-ares runs without a
 *     thread of its own (no ARES_OPT_EVENT_THREAD).
 *   - bind, listen: its listeners come ready made (the sandbox bound them, agentbox made
 *     the control socket); a new one would be a new way in. c-ares binds only when told
 *     a local address, which the proxy never does. Landlock refuses TCP bind as well.
 *   - socketpair, socket(AF_UNIX / AF_NETLINK / AF_PACKET ...): TCP and UDP over IPv4
 *     and IPv6 are all it speaks; getifaddrs (netlink) runs before the filter.
 *   - kill, tkill, tgkill, pidfd_*, ptrace, process_vm_*: the proxies of other
 *     sandboxes run as the same nobody; a compromised proxy must not reach them.
 *   - prctl, seccomp, landlock_*, setuid and friends, capset: it is already confined
 *     and has nothing to drop or change.
 *   - open, creat, and openat for writing: it only reads the resolver's files (Landlock
 *     says which); the log is an fd it was handed.
 *   - mmap/mprotect with PROT_EXEC: all its code is loaded before the filter; no new
 *     executable memory after it.
 *   - everything of the strict table not listed here (files, IPC, mounts, timers of
 *     other kinds, ...): not needed.
 */
static const struct ab_seccomp_rule proxy_rules[] = {
	/* The event loop: epoll, timeouts, the clocks (mostly the vDSO; these are the
	 * fallbacks). */
	ALLOW(epoll_create1),
	ALLOW(epoll_ctl),
	ALLOW(epoll_wait),
	ALLOW(epoll_pwait),
#ifdef __NR_epoll_pwait2
	ALLOW(epoll_pwait2),
#endif
	ALLOW(poll),
	ALLOW(ppoll),
	ALLOW(timerfd_create),
	ALLOW(timerfd_settime),
	ALLOW(timerfd_gettime),
	ALLOW(clock_gettime),
	ALLOW(clock_getres),
	ALLOW(gettimeofday),
	ALLOW(time),
	ALLOW(nanosleep),
	ALLOW(clock_nanosleep),
	ALLOW(restart_syscall),

	/* Sockets: accepting on the listeners, connecting out, DNS both ways. */
	ONLY_VALUES(socket, 0, EPERM, "only AF_INET and AF_INET6: TCP and UDP out", AF_INET, AF_INET6),
	ALLOW(connect),
	ALLOW(accept),
	ALLOW(accept4),
	ALLOW(getsockname),
	ALLOW(getpeername),
	ALLOW(getsockopt), /* SO_ERROR, SO_ORIGINAL_DST, SO_PEERCRED */
	ALLOW(setsockopt), /* SO_LINGER for resets, TCP_NODELAY, keepalive, buffer sizes */
	ALLOW(sendto),
	ALLOW(recvfrom),
	ALLOW(sendmsg),
	ALLOW(recvmsg),
	ALLOW(sendmmsg),
	ALLOW(recvmmsg),
	ALLOW(shutdown),

	/* Moving bytes: splice through a pipe per direction, read/write as the fallback. */
	ALLOW(read),
	ALLOW(write),
	ALLOW(readv),
	ALLOW(writev),
	ALLOW(splice),
	ALLOW(pipe2),
	ALLOW(close),
	ONLY_VALUES(fcntl, 1, EPERM, "flags and pipe sizes only: no F_SETOWN (signals), no locks",
		    F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETPIPE_SZ, F_SETPIPE_SZ),
	ONLY_VALUES(ioctl, 1, EPERM, "FIONREAD and FIONBIO only", FIONREAD, FIONBIO),

	/* The resolver's files (/etc/resolv.conf, /etc/hosts ...), read-only; Landlock
	 * decides which paths. */
	REFUSE_FLAGS(openat, 2, (uint64_t)(O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND), EPERM,
		     "it reads the resolver's files; it writes only to fds it was handed"),
	ALLOW(fstat),
	ALLOW(newfstatat),
	ALLOW(lseek),
	/* Rotating its log, net.log into net.log.1, both fds it was handed (audit.c). */
	ALLOW(ftruncate),
	ALLOW(copy_file_range),
	ALLOW(pread64),
	ALLOW(pwrite64),

	/* Memory: the allocator (and ASan's, in the sanitizer build), never executable. */
	ALLOW(brk),
	REFUSE_FLAGS(mmap, 2, PROT_EXEC, EPERM, "no new executable memory"),
	REFUSE_FLAGS(mprotect, 2, PROT_EXEC, EPERM, "no new executable memory"),
	ALLOW(munmap),
	ALLOW(mremap),
	ALLOW(madvise),
	ALLOW(futex),

	/* Its own signals, and the sanitizer runtime's spinlocks and alternate stack. */
	ALLOW(rt_sigreturn),
	ALLOW(rt_sigprocmask),
	ALLOW(rt_sigaction),
	ALLOW(sigaltstack),
	ALLOW(sched_yield),

	/* Itself: ids, limits, randomness (c-ares query ids, json-c's hash seed). */
	ALLOW(exit),
	ALLOW(exit_group),
	ALLOW(getpid),
	ALLOW(gettid),
	ALLOW(getuid),
	ALLOW(geteuid),
	ALLOW(getgid),
	ALLOW(getegid),
	ONLY_VALUES(prlimit64, 0, EPERM, "its own limits only (pid 0)", 0),
	ALLOW(getrandom),
	ALLOW(uname),   /* c-ares asks the host name for the search domain */
	ALLOW(sysinfo), /* glibc's qsort sizes its buffer by the memory */
};

const struct ab_seccomp_table ab_seccomp_proxy_table = {
	.name = "proxy",
	.allow_list = true,
	.default_errno = EPERM,
	.rules = proxy_rules,
	.n_rules = AB_ELEMENTSOF(proxy_rules),
};
