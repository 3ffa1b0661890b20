#!/bin/bash
# The main job: a short scripted session that shows what agentbox stops, for real.
set -u
AB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(mktemp -d /tmp/agentbox-demo.XXXXXX)
trap 'rm -rf "$demo"' EXIT
mkdir -p "$demo/project"
cd "$demo/project"
printf 'print("hello from the project")\n' > app.py
printf 'all:\n\t@echo build ok\n' > Makefile

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "What agentbox enforces on this machine"
show "agentbox run --explain"
"$AB" run --explain

step "An agent works in the project: its files are the caller's on the host"
show "agentbox run -- sh -c 'id; echo fixed > fix.txt; ls -l fix.txt'"
"$AB" run -- sh -c 'id; echo fixed > fix.txt; ls -l fix.txt'
printf 'on the host: '; ls -l "$demo/project/fix.txt"

step "A destructive command only hurts the sandbox"
show "agentbox run -- sh -c 'rm -rf /usr/bin /etc ~/.ssh'"
"$AB" run -- sh -c 'rm -rf /usr/bin /etc ~/.ssh 2>&1 | sed "s/.*: //" | sort | uniq -c | sed "s/^ *\([0-9]*\) /rm refused \1 paths: /"'
printf 'on the host, /usr/bin/ls is still there: '; ls -l /usr/bin/ls | cut -c1-60
printf 'and /etc still holds %s entries\n' "$(ls /etc | wc -l)"

step "Secrets stay out: the caller's tokens, keys and home are not visible"
export DEMO_GITHUB_TOKEN=ghp_demo_secret_value
show "DEMO_GITHUB_TOKEN=... agentbox run -- sh -c 'echo token=\${DEMO_GITHUB_TOKEN:-<not set>}; ls -A \$HOME; ls /root'"
"$AB" run -- sh -c 'echo "token=${DEMO_GITHUB_TOKEN:-<not set>}"; echo "home ($HOME): [$(ls -A "$HOME")]"; ls /root 2>&1; echo "/etc/shadow: [$(cat /etc/shadow 2>&1)]"'
show "agentbox run -e DEMO_GITHUB_TOKEN -- ...   (passed only when asked)"
"$AB" run -e DEMO_GITHUB_TOKEN -- sh -c 'echo "token=${DEMO_GITHUB_TOKEN:-<not set>}"'

step "No network: only loopback exists, and a connection out fails at once"
show "agentbox run -- bash -c 'list interfaces; echo > /dev/tcp/1.1.1.1/443'"
"$AB" run -- bash -c 'cut -d: -f1 /proc/net/dev | tail -n +3 | sed "s/^ */interface: /"; echo > /dev/tcp/1.1.1.1/443 && echo connected || echo "connection refused by the sandbox"'

step "Dangerous system calls are refused"
show "agentbox run -- sh -c 'unshare -U true; mount -t tmpfs x /tmp'"
"$AB" run -- sh -c 'unshare -U true; mount -t tmpfs x /tmp 2>&1; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status'

step "Exit status passes through"
show "agentbox run -- sh -c 'exit 3'"
"$AB" run -- sh -c 'exit 3'; echo "exit status: $?"

step "The real project is as the agent left it, nothing else on the host changed"
ls -l "$demo/project"
