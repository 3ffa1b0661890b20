/* The `run` option parser: every user mistake becomes a message naming the subject. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/config-limits.h"
#include "lib/config.h"
#include "lib/env.h"
#include "tap.h"

static char *fake_environ[] = {
	"PATH=/usr/bin:/bin", "TERM=xterm-256color", "LANG=C.UTF-8", "LC_ALL=C",
	"GITHUB_TOKEN=ghp_secret", "AWS_SECRET_ACCESS_KEY=aws_secret", "ANTHROPIC_API_KEY=sk-ant",
	"HOME=/nonexistent-home-for-tests", NULL,
};

static char tmpdir[] = "/tmp/ab-unit-XXXXXX";

static int parse(struct ab_config *cfg, struct ab_error *err, const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;

	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	memset(err, 0, sizeof(*err));
	return ab_config_parse_run(argc, argv, fake_environ, cfg, err);
}

static const char *env_get(struct ab_config *cfg, const char *name)
{
	return ab_env_lookup(cfg->env, name);
}

static void test_defaults(void)
{
	struct ab_config cfg;
	struct ab_error err;

	ok(parse(&cfg, &err, "--workspace", tmpdir, "--", "true", NULL) == 0, "plain run parses: %s", err.msg);
	is_str(cfg.argv[0], "true", "command kept");
	is_str(cfg.hostname, "agentbox", "default host name");
	ok(cfg.n_tmpfs == 1 && strcmp(cfg.tmpfs[0].dest, "/tmp") == 0 && cfg.tmpfs[0].size_bytes == 512ULL << 20,
	   "/tmp is a 512m tmpfs by default");
	ok(cfg.network == AB_NETWORK_NONE, "network none by default");
	ok(cfg.seccomp_mode == AB_SECCOMP_DEFAULT, "default seccomp");
	ok(cfg.sandbox_uid != 0, "sandbox user is not root");
	if (getuid() == 0)
		ok(cfg.sandbox_uid == 1000, "root's sandbox user is 1000");
	else
		ok(cfg.sandbox_uid == getuid(), "a user's sandbox uid is their own");
	is_str(env_get(&cfg, "TERM"), "xterm-256color", "TERM passes");
	is_str(env_get(&cfg, "LC_ALL"), "C", "LC_* passes");
	ok(env_get(&cfg, "GITHUB_TOKEN") == NULL, "a token does not pass by default");
	ok(env_get(&cfg, "AWS_SECRET_ACCESS_KEY") == NULL, "a key does not pass by default");
	ok(env_get(&cfg, "HOME") && strcmp(env_get(&cfg, "HOME"), "/nonexistent-home-for-tests") != 0,
	   "HOME is the sandbox home");
	ab_config_free(&cfg);
}

static void test_env(void)
{
	struct ab_config cfg;
	struct ab_error err;
	char envfile[256];
	FILE *f;

	ok(parse(&cfg, &err, "-w", tmpdir, "-e", "ANTHROPIC_API_KEY", "-e", "X=1=2", "-e", "UNSET_VAR", "--", "true",
		 NULL) == 0,
	   "-e parses");
	is_str(env_get(&cfg, "ANTHROPIC_API_KEY"), "sk-ant", "-e NAME copies the caller's value");
	is_str(env_get(&cfg, "X"), "1=2", "-e NAME=VALUE keeps '=' in the value");
	ok(env_get(&cfg, "UNSET_VAR") == NULL, "-e of an unset name is left out");
	ab_config_free(&cfg);

	snprintf(envfile, sizeof(envfile), "%s/env", tmpdir);
	f = fopen(envfile, "w");
	fputs("# comment\n\nA=1\n  B=spaced\nGITHUB_TOKEN\nC=\"quoted\"\r\n", f);
	fclose(f);
	ok(parse(&cfg, &err, "-w", tmpdir, "--env-file", envfile, "-e", "A=override", "true", NULL) == 0,
	   "--env-file parses: %s", err.msg);
	is_str(env_get(&cfg, "A"), "override", "-e wins over --env-file");
	is_str(env_get(&cfg, "GITHUB_TOKEN"), "ghp_secret", "a bare name in the file copies the caller's value");
	is_str(env_get(&cfg, "C"), "\"quoted\"", "values are literal, CR stripped");
	ab_config_free(&cfg);

	f = fopen(envfile, "w");
	fputs("GOOD=1\nBAD NAME=2\n", f);
	fclose(f);
	ok(parse(&cfg, &err, "-w", tmpdir, "--env-file", envfile, "true", NULL) < 0, "bad name in env file refused");
	ok(strstr(err.msg, "line 2") && strstr(err.msg, envfile), "message names the file and line: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--env-file", "/nonexistent/env", "true", NULL) < 0 &&
		   strstr(err.msg, "'/nonexistent/env'"),
	   "missing env file named: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "-e", "=x", "true", NULL) < 0, "-e =x refused: %s", err.msg);
}

static void test_bad_input(void)
{
	struct ab_config cfg;
	struct ab_error err;
	char file[256];
	static const struct {
		const char *args[6];
		const char *needle;
	} cases[] = {
		{ { "--bogus", "true" }, "'--bogus'" },
		{ { "-v", "/nonexistent-src:/x", "true" }, "'/nonexistent-src'" },
		{ { "-v", "relative:/x", "true" }, "'relative'" },
		{ { "-v", "/tmp:relative", "true" }, "'relative'" },
		{ { "-v", "/tmp:/proc/x", "true" }, "'/proc'" },
		{ { "-v", "/tmp:/x:rx", "true" }, "'rx'" },
		{ { "-v", "/tmp:/a/../b", "true" }, "'/a/../b'" },
		{ { "--tmpfs", "/scratch:size=lots", "true" }, "'lots'" },
		{ { "--tmpfs", "/scratch:mode=1", "true" }, "'mode=1'" },
		{ { "--tmpfs", "/", "true" }, "'/'" },
		{ { "--network", "bridge", "true" }, "'bridge'" },
		{ { "--workspace-mode", "cow2", "true" }, "'cow2'" },
		{ { "--seccomp", "/nonexistent.json", "true" }, "'/nonexistent.json'" },
		{ { "--require", "selinux", "true" }, "'selinux'" },
		{ { "--name", "../evil", "true" }, "'../evil'" },
		{ { "--user", "1234", "true" }, "'1234'" },
		{ { "--rootfs", "/nonexistent-root", "true" }, "'/nonexistent-root'" },
		{ { "--env" }, "'--env'" },
		{ { "-q" }, "no command" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[10];
		int argc = 0;
		argv[argc++] = "-w";
		argv[argc++] = tmpdir;
		for (int j = 0; j < 6 && cases[i].args[j]; j++)
			argv[argc++] = (char *)cases[i].args[j];
		argv[argc] = NULL;
		memset(&err, 0, sizeof(err));
		int r = ab_config_parse_run(argc, argv, fake_environ, &cfg, &err);
		ok(r < 0 && strstr(err.msg, cases[i].needle), "%s %s refused, naming %s: %s", cases[i].args[0],
		   cases[i].args[1] ? cases[i].args[1] : "", cases[i].needle, err.msg);
	}
	snprintf(file, sizeof(file), "%s/afile", tmpdir);
	fclose(fopen(file, "w"));
	ok(parse(&cfg, &err, "--workspace", file, "true", NULL) < 0 && strstr(err.msg, "not a directory"),
	   "a file as workspace refused: %s", err.msg);
	ok(parse(&cfg, &err, "--workspace", "/", "true", NULL) < 0, "'/' as workspace refused: %s", err.msg);
	ok(parse(&cfg, &err, "--workspace", "/usr/bin", "true", NULL) < 0, "/usr/bin as workspace refused: %s",
	   err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "-v", "/tmp:/data", "-v", "/usr:/data", "true", NULL) < 0 &&
		   strstr(err.msg, "'/data'"),
	   "the same destination twice refused: %s", err.msg);
}

static void test_options(void)
{
	struct ab_config cfg;
	struct ab_error err;

	ok(parse(&cfg, &err, "-w", tmpdir, "--tmpfs", "/scratch:size=1m", "--tmpfs=/tmp:size=64k", "-v",
		 "/usr/share:/opt/share:ro", "--network=host", "--name", "fix-login", "--require", "landlock,seccomp",
		 "-t", "--user", "root", "sh", "-c", "echo", NULL) == 0,
	   "many options parse: %s", err.msg);
	ok(cfg.n_tmpfs == 2, "two tmpfs");
	ok(cfg.tmpfs[1].size_bytes == 64 << 10 && strcmp(cfg.tmpfs[1].dest, "/tmp") == 0, "--tmpfs /tmp resized");
	ok(cfg.n_binds == 1 && cfg.binds[0].read_only && strcmp(cfg.binds[0].dest, "/opt/share") == 0, "ro volume");
	ok(cfg.network == AB_NETWORK_HOST, "--network=host");
	is_str(cfg.hostname, "fix-login", "name is the host name");
	ok(cfg.required_layers == (AB_LAYER_LANDLOCK | AB_LAYER_SECCOMP), "--require list");
	ok(cfg.tty_mode == AB_TTY_ALWAYS, "-t");
	ok(cfg.user_root && cfg.sandbox_uid == 0, "--user root");
	ok(cfg.argv[0] && strcmp(cfg.argv[1], "-c") == 0, "command options are not ours");
	ab_config_free(&cfg);
}

static void test_pure_helpers(void)
{
	uint64_t v;
	char *p = NULL;

	ok(ab_parse_size("512m", &v) == 0 && v == 512ULL << 20, "512m");
	ok(ab_parse_size("1G", &v) == 0 && v == 1ULL << 30, "1G");
	ok(ab_parse_size("10KiB", &v) == 0 && v == 10240, "10KiB");
	ok(ab_parse_size("4096", &v) == 0 && v == 4096, "plain bytes");
	ok(ab_parse_size("-1", &v) < 0, "negative refused");
	ok(ab_parse_size("99999999999999999999", &v) < 0, "overflow refused");
	ok(ab_parse_size("5x", &v) < 0, "bad suffix refused");
	ok(ab_normalize_path("//a/./b//c/", &p) == 0 && strcmp(p, "/a/b/c") == 0, "path normalised");
	free(p);
	ok(ab_normalize_path("/a/../b", &p) < 0, ".. refused");
	ok(ab_normalize_path("a/b", &p) < 0, "relative refused");
	ok(ab_name_is_valid("fix-login_2.x"), "valid name");
	ok(!ab_name_is_valid("-x") && !ab_name_is_valid("a/b") && !ab_name_is_valid(""), "invalid names");
	ok(!ab_env_name_is_safe("GITHUB_TOKEN") && ab_env_name_is_safe("LC_CTYPE"), "safe list");
}

static void test_limits(void)
{
	struct ab_config cfg;
	struct ab_error err;
	uint64_t v;

	ok(ab_parse_duration("90", &v) == 0 && v == 90000, "90: seconds");
	ok(ab_parse_duration("500ms", &v) == 0 && v == 500, "500ms");
	ok(ab_parse_duration("1h30m", &v) == 0 && v == 5400000, "1h30m");
	ok(ab_parse_duration("2d", &v) == 0 && v == 2 * 86400000ULL, "2d");
	ok(ab_parse_duration("1h30", &v) < 0, "1h30: the last number needs a unit");
	ok(ab_parse_duration("0s", &v) < 0 && ab_parse_duration("", &v) < 0 && ab_parse_duration("s", &v) < 0,
	   "zero, empty and unit-only durations refused");
	ok(ab_parse_duration("5y", &v) < 0 && ab_parse_duration("-5s", &v) < 0, "unknown units and signs refused");
	ok(ab_parse_duration("999999999999h", &v) < 0, "a duration past a year refused");
	ok(ab_parse_cpus("2", &v) == 0 && v == 2000, "--cpus 2");
	ok(ab_parse_cpus("0.5", &v) == 0 && v == 500, "--cpus 0.5");
	ok(ab_parse_cpus("1.25", &v) == 0 && v == 1250, "--cpus 1.25");
	ok(ab_parse_cpus("0.0001", &v) < 0 && ab_parse_cpus("0", &v) < 0 && ab_parse_cpus(".5", &v) < 0 &&
		   ab_parse_cpus("1.", &v) < 0 && ab_parse_cpus("1e3", &v) < 0,
	   "finer than a thousandth, zero and odd forms refused");

	ok(parse(&cfg, &err, "-w", tmpdir, "--memory", "512m", "--memory-swap", "1g", "--cpus", "1.5", "--pids-limit",
		 "100", "--disk-limit", "2g", "--timeout", "10m", "--ulimit", "nofile=1024", "-d", "--", "true", NULL) == 0 &&
		   cfg.limits.memory == 512ULL << 20 && cfg.limits.memory_swap == 1LL << 30 &&
		   cfg.limits.cpu_millis == 1500 && cfg.limits.pids == 100 && cfg.limits.disk == 2ULL << 30 &&
		   cfg.limits.timeout_ms == 600000 && cfg.limits.nofile == 1024 && cfg.detach,
	   "every limit parsed: %s", err.msg);
	ab_config_free(&cfg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--", "true", NULL) == 0 && cfg.limits.memory == 0 &&
		   cfg.limits.memory_swap == -1 && !cfg.detach,
	   "no limits by default");
	ab_config_free(&cfg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--memory", "1k", "--", "true", NULL) < 0 && strstr(err.msg, "'1k'"),
	   "--memory below 6m: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--memory", "1g", "--memory-swap", "512m", "--", "true", NULL) < 0 &&
		   strstr(err.msg, "at least --memory"),
	   "--memory-swap below --memory: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--cpus", "64", "--", "true", NULL) < 0 && strstr(err.msg, "CPUs of this machine"),
	   "--cpus above the machine: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--pids-limit", "3", "--", "true", NULL) < 0 && strstr(err.msg, "'3'"),
	   "--pids-limit below 8: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--ulimit", "core=1", "--", "true", NULL) < 0 && strstr(err.msg, "'core=1'"),
	   "--ulimit other than nofile: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--workspace-mode", "rw", "--disk-limit", "1g", "--", "true", NULL) < 0 &&
		   strstr(err.msg, "rw mode"),
	   "--disk-limit with rw: %s", err.msg);
	ok(parse(&cfg, &err, "-w", tmpdir, "-d", "--explain", NULL) < 0 && strstr(err.msg, "--detach"),
	   "-d with --explain: %s", err.msg);
}

static void test_network(void)
{
	struct ab_config cfg;
	struct ab_error err;

	ok(parse(&cfg, &err, "-w", tmpdir, "--allow", "api.example.com", "--allow", "*.GitHub.com", "--deny",
		 "x.github.com:22", "--add-host", "api.test:127.0.0.1", "--", "true", NULL) == 0,
	   "--allow, --deny and --add-host parse: %s", err.msg);
	ok(cfg.network == AB_NETWORK_FILTERED, "rules make the network filtered");
	ok(cfg.n_net_rules == 3 && !cfg.net_rules[0].deny && strcmp(cfg.net_rules[1].text, "*.github.com") == 0 &&
		   cfg.net_rules[2].deny && cfg.net_rules[2].port == 22,
	   "rules kept in order, normalised");
	ok(cfg.n_net_hosts == 1 && strcmp(cfg.net_hosts[0].name, "api.test") == 0 && cfg.net_hosts[0].addr.family == AF_INET,
	   "--add-host kept");
	is_str(env_get(&cfg, "HTTP_PROXY"), "http://127.0.0.1:3128", "HTTP_PROXY set");
	is_str(env_get(&cfg, "https_proxy"), "http://127.0.0.1:3128", "https_proxy set");
	is_str(env_get(&cfg, "ALL_PROXY"), "socks5h://127.0.0.1:1080", "ALL_PROXY set");
	is_str(env_get(&cfg, "no_proxy"), "localhost,127.0.0.1,::1", "no_proxy set");
	ab_config_free(&cfg);

	ok(parse(&cfg, &err, "-w", tmpdir, "--network", "filtered", "--", "true", NULL) == 0 &&
		   cfg.network == AB_NETWORK_FILTERED && cfg.n_net_rules == 0 && env_get(&cfg, "HTTPS_PROXY"),
	   "--network filtered without rules: deny everything, proxy variables set");
	ab_config_free(&cfg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--network=filtered", "--allow=a.example", "--add-host", "b.test:[::1]", "--",
		 "true", NULL) == 0 &&
		   cfg.network == AB_NETWORK_FILTERED && cfg.n_net_hosts == 1 && cfg.net_hosts[0].addr.family == AF_INET6,
	   "--network filtered with rules and an IPv6 --add-host: %s", err.msg);
	ab_config_free(&cfg);
	ok(parse(&cfg, &err, "-w", tmpdir, "--", "true", NULL) == 0 && !env_get(&cfg, "HTTP_PROXY") &&
		   !env_get(&cfg, "ALL_PROXY"),
	   "no proxy variables without filtering");
	ab_config_free(&cfg);

	ok(parse(&cfg, &err, "-w", tmpdir, "-e", "HTTP_PROXY=http://corp:8080", "-e", "no_proxy=internal", "--allow",
		 "x.example", "--", "true", NULL) == 0,
	   "user proxy variables parse");
	is_str(env_get(&cfg, "HTTP_PROXY"), "http://corp:8080", "a user's -e HTTP_PROXY is kept");
	is_str(env_get(&cfg, "no_proxy"), "internal", "a user's -e no_proxy is kept");
	is_str(env_get(&cfg, "HTTPS_PROXY"), "http://127.0.0.1:3128", "the others are still set");
	ab_config_free(&cfg);

	ok(parse(&cfg, &err, "-w", tmpdir, "--allow", "a.example", "--allow", "A.example.", "--deny", "b.example",
		 "--deny", "b.example", "--", "true", NULL) == 0 &&
		   cfg.n_net_rules == 2,
	   "the same rule twice is kept once");
	ab_config_free(&cfg);

	static const struct {
		const char *args[6];
		const char *needle;
	} bad[] = {
		{ { "--allow", "*.", "true" }, "bad network rule '*.': a wildcard needs a domain after '*.' (write '*.example.com')" },
		{ { "--allow", "http://x", "true" }, "bad network rule 'http://x': write a host name, not a URL (write 'x' or 'x:443')" },
		{ { "--deny", "x:70000", "true" }, "bad network rule 'x:70000': the port must be 1-65535" },
		{ { "--allow", "", "true" }, "bad network rule ''" },
		{ { "--allow", "10.0.0.0/33", "true" }, "'10.0.0.0/33'" },
		{ { "--add-host", "api.test", "true" }, "bad --add-host 'api.test'" },
		{ { "--add-host", "api.test:nowhere", "true" }, "'api.test:nowhere'" },
		{ { "--network", "none", "--allow", "x.example", "true" }, "--allow needs the egress proxy: drop '--network none'" },
		{ { "--allow", "x.example", "--network", "host", "true" }, "--allow needs the egress proxy: drop '--network host'" },
		{ { "--network=host", "--deny", "x.example", "true" }, "--deny needs the egress proxy: drop '--network host'" },
		{ { "--network", "none", "--add-host", "a.test:1.2.3.4", "true" }, "--add-host needs the egress proxy: drop '--network none'" },
		{ { "--add-host", "a.test:1.2.3.4", "true" }, "--add-host names are resolved by the egress proxy: add --allow rules" },
		{ { "--allow", "x.example", "--deny", "X.example", "true" }, "--allow 'x.example' and --deny 'x.example' contradict each other" },
		{ { "--network", "bridge", "true" }, "use none, host or filtered" },
		{ { "--allow" }, "'--allow'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[10];
		int argc = 0;
		argv[argc++] = "-w";
		argv[argc++] = tmpdir;
		for (int j = 0; j < 6 && bad[i].args[j]; j++)
			argv[argc++] = (char *)bad[i].args[j];
		argv[argc] = NULL;
		memset(&err, 0, sizeof(err));
		int r = ab_config_parse_run(argc, argv, fake_environ, &cfg, &err);
		bool whole = strncmp(bad[i].needle, "bad", 3) == 0 && strstr(bad[i].needle, "': ");
		ok(r < 0 && (whole ? strcmp(err.msg, bad[i].needle) == 0 : strstr(err.msg, bad[i].needle) != NULL),
		   "%s %s refused: %s", bad[i].args[0], bad[i].args[1] ? bad[i].args[1] : "", err.msg);
	}

	/* The caps. */
	{
		char **argv = calloc(2 * AB_NET_MAX_RULES + 10, sizeof(char *));
		char (*specs)[32] = calloc(AB_NET_MAX_RULES + 1, 32);
		int argc = 0;
		argv[argc++] = "-w";
		argv[argc++] = tmpdir;
		for (int i = 0; i <= AB_NET_MAX_RULES; i++) {
			snprintf(specs[i], 32, "h%d.example", i);
			argv[argc++] = "--allow";
			argv[argc++] = specs[i];
		}
		argv[argc++] = "true";
		ok(ab_config_parse_run(argc - 3, argv, fake_environ, &cfg, &err) < 0 && strstr(err.msg, "no command"),
		   "%d rules parse up to the command", AB_NET_MAX_RULES);
		ok(ab_config_parse_run(argc, argv, fake_environ, &cfg, &err) < 0 && strstr(err.msg, "too many network rules"),
		   "rule %d is refused: %s", AB_NET_MAX_RULES + 1, err.msg);
		argc = 2;
		for (int i = 0; i <= AB_MAX_NET_HOSTS; i++) {
			snprintf(specs[i], 32, "h%d.test:10.0.0.1", i);
			argv[argc++] = "--add-host";
			argv[argc++] = specs[i];
		}
		argv[argc++] = "--allow";
		argv[argc++] = "x.example";
		argv[argc++] = "true";
		ok(ab_config_parse_run(argc, argv, fake_environ, &cfg, &err) < 0 && strstr(err.msg, "too many --add-host"),
		   "--add-host %d is refused: %s", AB_MAX_NET_HOSTS + 1, err.msg);
		free(argv);
		free(specs);
	}
}

int main(void)
{
	if (!mkdtemp(tmpdir))
		return 1;
	test_defaults();
	test_env();
	test_bad_input();
	test_options();
	test_pure_helpers();
	test_limits();
	test_network();
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		return 1;
	return tap_done();
}
