#!/bin/bash
# The seccomp filter: what it refuses (with EPERM), the foreign ABI, and the
# --seccomp modes (strict, unconfined, a Docker profile).
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
ab_setup

# Each of these must come back EPERM (the filter's answer; without it some would fail
# with another errno or succeed).
for name in mount fsopen unshare-user clone-user setns bpf io_uring_setup keyctl add_key \
	perf_event_open userfaultfd tiocsti tiocsti-high tioclinux open_by_handle_at kexec_load \
	init_module reboot swapon clock_settime personality-noaslr; do
	box -- "$P" try "$name"
	expect_line "$name is refused with EPERM" "$name=EPERM"
done

# clone3 cannot have its flags inspected by a filter: refusing it whole is expected
# (ENOSYS makes libcs fall back to clone, where the flags are checked).
box -- "$P" try clone3-user
expect_value_in "clone3 into a new user namespace is refused" clone3-user EPERM ENOSYS

# These must fail, by the filter or for lack of privilege.
for name in unshare-net chroot pivot_root; do
	box -- "$P" try "$name"
	expect_value_not_in "$name fails" "$name" OK
done

# The i386 entry point from 64-bit code. A kernel built without IA-32 emulation answers
# with SIGSEGV before any filter runs; then no i386 syscall can be made at all.
host_i386=$("$PROBE" try i386-getpid | sed -n 's/^i386-getpid=//p')
box -- "$P" try i386-getpid
if out_has "i386-getpid=EPERM" && out_has "i386-getpid_raw=-1"; then
	pass "an int 0x80 syscall is refused with EPERM"
elif out_has "i386-getpid=SIGSEGV" && [ "$host_i386" = SIGSEGV ]; then
	pass "an int 0x80 syscall cannot run (this kernel has no IA-32 entry)"
else
	fail "an int 0x80 syscall is refused with EPERM" "outside the sandbox: $host_i386" \
		"$(last_run)"
fi

# ---- --seccomp unconfined: proves the checks above can fail ----
box --seccomp unconfined -- "$P" status
expect_rc "--seccomp unconfined runs" 0
expect_line "--seccomp unconfined installs no filter" "Seccomp=0"
expect_line "--seccomp unconfined keeps no_new_privs" "NoNewPrivs=1"
# What the kernel allows an unprivileged process, only the filter refuses.
for name in unshare-user keyctl tiocsti personality-noaslr; do
	box --seccomp unconfined -- "$P" try "$name"
	expect_line "--seccomp unconfined lets $name through" "$name=OK"
done
if err_has_re '[Ww]arn|WARN'; then
	pass "--seccomp unconfined warns"
else
	fail "--seccomp unconfined warns" "$(last_run)"
fi

# ---- --seccomp strict: an allow list that still runs ordinary tools ----
box --seccomp strict -- sh -c 'ls /'
expect_rc "--seccomp strict runs sh -c 'ls /'" 0
ok_if "--seccomp strict: ls / lists usr" grep -qx usr <<<"$AB_OUT"
box --seccomp strict -- "$P" status
expect_line "--seccomp strict installs a filter" "Seccomp=2"
box --seccomp strict -- "$P" try keyctl
expect_value_not_in "--seccomp strict refuses keyctl" keyctl OK

# ---- --seccomp FILE: a Docker profile ----
cat >"$T/profile.json" <<'JSON'
{
	"defaultAction": "SCMP_ACT_ALLOW",
	"architectures": ["SCMP_ARCH_X86_64"],
	"syscalls": [
		{ "names": ["personality"], "action": "SCMP_ACT_ERRNO" },
		{ "names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 }
	]
}
JSON
box --seccomp "$T/profile.json" -- "$P" status
expect_rc "--seccomp FILE runs" 0
expect_line "--seccomp FILE installs a filter" "Seccomp=2"
box --seccomp "$T/profile.json" -- "$P" try personality-noaslr
expect_line "--seccomp FILE applies SCMP_ACT_ERRNO (EPERM)" "personality-noaslr=EPERM"
box --seccomp "$T/profile.json" -- "$P" hostname
expect_line "--seccomp FILE honours errnoRet" "hostname=EACCES"

done_testing
