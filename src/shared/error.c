#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ab_error_set(struct ab_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (code < 0)
		code = -code;
	err->code = code;
	va_start(ap, fmt);
	n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		err->msg[0] = '\0';
	if (code && n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s", strerror(code));
	return code ? -code : -EINVAL;
}

int ab_error_wrap(struct ab_error *err, const char *fmt, ...)
{
	char prefix[AB_ERROR_MSG_MAX];
	char old[AB_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	size_t n;

	memcpy(old, err->msg, sizeof(old));
	n = strnlen(prefix, sizeof(prefix) - 1);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, prefix, n);
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	memcpy(err->msg + n, old, strnlen(old, sizeof(err->msg) - n - 1));
	err->msg[n + strnlen(old, sizeof(err->msg) - n - 1)] = '\0';
	return err->code ? -err->code : -EINVAL;
}

int ab_error_restore(struct ab_error *err, int code, const char *msg)
{
	err->code = code < 0 ? -code : code;
	snprintf(err->msg, sizeof(err->msg), "%s", msg);
	return err->code ? -err->code : -EINVAL;
}
