/* The control socket's requests: any bytes become a rule or a message, never a crash;
 * an accepted rule's text parses again to itself. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ab_net_rule rule, again;
	struct ab_error err;
	char msg[AB_CONTROL_MSG_MAX + 1];
	int n;

	if (ab_control_parse((const char *)data, size, &rule, &err) < 0) {
		if (!err.msg[0] || strchr(err.msg, '\n'))
			abort(); /* a refusal always says why, on one line */
		return 0;
	}
	n = snprintf(msg, sizeof(msg), "%s %s", rule.deny ? "deny" : "allow", rule.text);
	if (n < 0 || (size_t)n >= sizeof(msg) || ab_control_parse(msg, (size_t)n, &again, &err) < 0 ||
	    again.deny != rule.deny || strcmp(again.text, rule.text) != 0)
		abort(); /* normalised text must be accepted as it is */
	return 0;
}
