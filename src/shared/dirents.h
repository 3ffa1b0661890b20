/* Reading a directory with getdents64 into a buffer on the stack: no DIR allocation and
 * none of opendir's extra system calls (a dup, fstat, two fcntl), which the start and end
 * of a run pay for every directory they read. */
#ifndef AB_DIRENTS_H
#define AB_DIRENTS_H

/* Calls fn for every entry of the directory open at fd but "." and "..", from where fd's
 * open file stands (a directory just opened: its start; every caller passes one), and
 * leaves it at the end. fn's non-zero return stops the reading and is returned. Returns
 * 0, fn's value, or -errno. */
int ab_dir_for_each(int fd, int (*fn)(const char *name, unsigned char d_type, void *data), void *data);

#endif
