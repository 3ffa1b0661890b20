/* The generator's empty list of build-time programs: it compiles every table itself. */
#include "lib/seccomp-policy.h"

const struct ab_seccomp_builtin ab_seccomp_builtins[1];
const size_t ab_n_seccomp_builtins = 0;
