/* The error object that core functions fill and front ends print.
 * A message reads "what failed 'subject': reason"; callers prepend context as it rises. */
#ifndef AB_ERROR_H
#define AB_ERROR_H

#include <stddef.h>

#define AB_ERROR_MSG_MAX 1024

/* Docker's exit-code convention, which users of container tools expect. */
enum {
	AB_EXIT_INTERNAL = 125,   /* agentbox itself failed: bad input, setup error */
	AB_EXIT_CANNOT_RUN = 126, /* the command exists but cannot be executed */
	AB_EXIT_NOT_FOUND = 127,  /* the command was not found */
};

struct ab_error {
	int code; /* positive errno, or 0 when the reason is in the message alone */
	char msg[AB_ERROR_MSG_MAX];
};

/* Fills err with the formatted message, followed by ": strerror(code)" when code != 0.
 * Returns -code, or -EINVAL when code is 0, so callers can `return ab_error_set(...)`. */
int ab_error_set(struct ab_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "context: " to the message already in err. Returns the same value as set. */
int ab_error_wrap(struct ab_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Copies a message that crossed a process boundary (code and text) into err. */
int ab_error_restore(struct ab_error *err, int code, const char *msg);

#endif
