/* The control socket of a running proxy: `agentbox net allow|deny NAME RULE`. One
 * SOCK_SEQPACKET message each way: "allow RULE" or "deny RULE", answered "ok RULE-TEXT"
 * or "error MESSAGE". Only the sandbox's owner (or root) is heard (SO_PEERCRED). */
#ifndef AB_PROXY_CONTROL_H
#define AB_PROXY_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "../shared/error.h"
#include "rules.h"

#define AB_CONTROL_MSG_MAX 512

/* Parses a request. Returns 0 with *rule filled (deny set from the verb), or < 0 with err
 * saying what is wrong (unknown verb, bad rule). Pure; fuzzed. */
int ab_control_parse(const char *msg, size_t len, struct ab_net_rule *rule, struct ab_error *err);

/* The client side: connects to the socket at path, sends "VERB RULE", waits (2 s at most)
 * for the answer. Returns 0 when the proxy applied it (applied gets its normalised text),
 * or < 0 with err: the proxy's own error message, or why it could not be reached. */
int ab_control_request(const char *path, const char *verb, const char *rule, char *applied,
		       size_t applied_size, struct ab_error *err);

#endif
