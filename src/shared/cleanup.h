/* Scope-bound cleanup: ownership leaves a variable only through TAKE_PTR()/TAKE_FD(). */
#ifndef AB_CLEANUP_H
#define AB_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void ab_freep(void *p) { free(*(void **)p); }
static inline void ab_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
static inline void ab_fclosep(FILE **f)
{
	if (*f) {
		int saved = errno;
		fclose(*f);
		errno = saved;
	}
}
static inline void ab_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}
static inline void ab_strv_freep(char ***v) { ab_strv_free(*v); }

#define _cleanup_free_ _cleanup_(ab_freep)
#define _cleanup_close_ _cleanup_(ab_closep)
#define _cleanup_fclose_ _cleanup_(ab_fclosep)
#define _cleanup_strv_free_ _cleanup_(ab_strv_freep)

#define TAKE_PTR(p) ({ __typeof__(p) _taken = (p); (p) = NULL; _taken; })
#define TAKE_FD(fd) ({ int _taken = (fd); (fd) = -1; _taken; })

#define AB_ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
