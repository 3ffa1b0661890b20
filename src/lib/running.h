/* The record of a run's processes (running.c). */
#ifndef AB_RUNNING_H
#define AB_RUNNING_H

#include <sys/types.h>

#include "workspace.h"

/* 1 when ws->dir/running names a live agentbox or init process (their pids are stored
 * in *agentbox_pid and *init_pid, either may be NULL), 0 when not running (no file, or a
 * stale one), < 0 (-errno) when the file cannot be read. */
int ab_workspace_running(const struct ab_workspace *ws, pid_t *agentbox_pid, pid_t *init_pid);
/* Waits (10 s at most) for the init of the sandbox's last run while it is still ending:
 * its exit takes its overlay down, whose upper and work directories the next run's needs. */
void ab_workspace_wait_last_init(const struct ab_workspace *ws);
/* Writes that record for a run that started: agentbox's pid (with its start time) and
 * its sandbox's init. Best-effort. */
void ab_workspace_record_running(const struct ab_workspace *ws, pid_t agentbox_pid, pid_t init_pid);

#endif
