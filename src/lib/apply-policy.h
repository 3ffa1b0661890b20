/* Which sandbox changes need the user's confirmation before they reach the host: paths
 * that make the host run code (git hooks, CI pipelines, shell start-up files, direnv) or
 * that carry credentials and registry settings, and files newly made executable. */
#ifndef AB_APPLY_POLICY_H
#define AB_APPLY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "workspace.h"

enum ab_risk_match {
	AB_RISK_EXACT,  /* the path equals the pattern */
	AB_RISK_BENEATH, /* the path equals the pattern or lies beneath it */
};

struct ab_risk_rule {
	const char *pattern;     /* relative, no leading or trailing "/" */
	enum ab_risk_match match;
	bool any_depth;          /* also at PREFIX/pattern, for any directory PREFIX */
	const char *reason;      /* a few words: "git hook" */
};

extern const struct ab_risk_rule ab_risk_rules[];
extern const size_t ab_n_risk_rules;

/* The reason a change needs confirmation ("git hook", "made executable"), or NULL when it
 * needs none. Every kind of change to a listed path is risky, deletions included. */
const char *ab_apply_risk(const struct ab_change *c);

#endif
