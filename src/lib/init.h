/* PID 1 of the sandbox: starts the command, reaps every zombie, forwards signals, and
 * exits with the command's status (128+N for a signal). */
#ifndef AB_INIT_H
#define AB_INIT_H

#include "config.h"

/* Never returns. pty_slave is -1 without a terminal. */
__attribute__((noreturn)) void ab_init_run(const struct ab_config *cfg, int sync_fd, int pty_slave);

/* The signals agentbox and init pass on to the command. */
extern const int ab_forwarded_signals[];
extern const int ab_n_forwarded_signals;

#endif
