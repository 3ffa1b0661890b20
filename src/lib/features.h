/* What this kernel can enforce, and the honest report of what a run will enforce. */
#ifndef AB_FEATURES_H
#define AB_FEATURES_H

#include <stdbool.h>
#include <stdio.h>

#include "../shared/error.h"
#include "config.h"

struct ab_features {
	bool userns;        /* a user namespace can be created by this caller */
	char userns_why[160];
	int landlock_abi;   /* 0: none */
	bool seccomp;
	bool cgroupns;
	bool mount_setattr;
};

void ab_features_probe(struct ab_features *f, bool caller_is_root);

/* Layers this run will enforce (bits of enum ab_layer), given cfg and the kernel. */
unsigned ab_layers_enforced(const struct ab_config *cfg, const struct ab_features *f);

/* Fails with a message naming the first layer that --require asked for and this run lacks. */
int ab_check_required(const struct ab_config *cfg, const struct ab_features *f, struct ab_error *err);

/* The enforcement report: one line per layer, what it does here or why it is missing. */
void ab_report_write(FILE *out, const struct ab_config *cfg, const struct ab_features *f,
		     const char *seccomp_summary);

/* Warnings for layers that are weaker than the defaults (missing or turned off), one per
 * line, each ending in "\n"; empty when everything is on. */
void ab_report_warnings(FILE *out, const struct ab_config *cfg, const struct ab_features *f);

#endif
