/* Network rules, hosts from traffic and --add-host entries: any bytes become a rule, a
 * host or a message, never a crash. A rule that parses must read back as itself, and a
 * normalised host must normalise to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/fakeip.h"
#include "proxy/rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ab_fakeip *fake; /* kept across inputs, so the reuse path runs too */
	struct ab_net_policy policy = { 0 };
	struct ab_net_rule rule, again;
	struct ab_net_host_entry entry;
	struct ab_error err;
	char *buf, out[AB_HOST_MAX], out2[AB_HOST_MAX];
	uint8_t addr[16], fa[4];
	const struct ab_net_rule *decided;
	int kind;

	if (size > 4096)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	if (ab_net_rule_parse(buf, size & 1, &rule, &err) == 0) {
		if (ab_net_rule_parse(rule.text, rule.deny, &again, &err) < 0 || strcmp(again.text, rule.text) != 0 ||
		    again.kind != rule.kind || again.port != rule.port)
			abort();
		if (ab_net_policy_add(&policy, &rule) < 0)
			abort();
		ab_net_policy_allows(&policy, rule.host, rule.port ? rule.port : 443, &decided);
		ab_net_policy_allows_name_any_port(&policy, rule.host, &decided);
		if (rule.kind == AB_NET_RULE_ADDR) {
			struct ab_net_addr a = { .family = rule.family };
			char why[128];
			memcpy(a.addr, rule.addr, 16);
			ab_net_policy_allows_addr(&policy, &a, 443, &a, 1, why, sizeof(why), &decided);
			ab_net_addr_class(rule.family, rule.addr);
		}
	}
	kind = ab_net_host_normalize(buf, out, sizeof(out), addr);
	if (kind > 0) {
		if (ab_net_host_normalize(out, out2, sizeof(out2), NULL) != kind || strcmp(out, out2) != 0)
			abort();
		ab_net_policy_allows(&policy, out, 80, &decided);
		if (kind == AB_HOST_NAME) {
			if (!fake)
				fake = ab_fakeip_new();
			if (fake && ab_fakeip_for_name(fake, out, fa) == 0) {
				const char *back = ab_fakeip_name(fake, fa);
				if (!ab_fakeip_in_range(fa) || !back || strcmp(back, out) != 0)
					abort();
			}
		} else {
			ab_net_addr_class(kind == AB_HOST_IPV4 ? AF_INET : AF_INET6, addr);
		}
	}
	ab_net_host_entry_parse(buf, &entry, &err);
	ab_net_policy_free(&policy);
	free(buf);
	return 0;
}
