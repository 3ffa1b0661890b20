/* A detached sandbox's terminal output, kept in asciicast v2 (what `asciinema play`
 * replays): a JSON header line, then one JSON array per event, [SECONDS, "o", "DATA"] for
 * output and [SECONDS, "r", "COLSxROWS"] for a resize. Input is never recorded: keystrokes
 * may hold secrets.
 *
 * The recording is bounded: when the file would grow past max_bytes/2 it becomes
 * "<path>.1" (replacing the older one) and a new file with a fresh header continues, so
 * about max_bytes are kept on disk and the newest output is never the part dropped.
 * Event times count from the header's "timestamp" (whole Unix seconds), so header time +
 * event time is the wall time of the event. */
#ifndef AB_CAST_H
#define AB_CAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../shared/error.h"

/* The longest line the reader accepts; longer ones are skipped whole. */
#define AB_CAST_MAX_LINE (1024 * 1024)

struct ab_cast_writer;

/* Starts a new recording at path (created 0600, never through a symlink, truncated when
 * it exists; a "<path>.1" left by an earlier recording is removed). term (may be NULL)
 * goes into the header's env. max_bytes bounds the disk used by path and "<path>.1"
 * together; 0 means unbounded. */
int ab_cast_open(struct ab_cast_writer **w, const char *path, unsigned width, unsigned height,
		 const char *term, uint64_t max_bytes, struct ab_error *err);
/* Records terminal output: any bytes. Control characters are escaped, bytes that are not
 * UTF-8 become U+FFFD, and a multibyte character split across calls is kept whole (its
 * first bytes wait for the next call). Times come from CLOCK_MONOTONIC. -errno on a write
 * error (the file is left without a partial line). */
int ab_cast_output(struct ab_cast_writer *w, const void *data, size_t len);
/* Records a window size change; the header of a later rotated file carries it too. */
int ab_cast_resize(struct ab_cast_writer *w, unsigned width, unsigned height);
/* Flushes a pending incomplete character (as U+FFFD) and closes. Accepts NULL. */
void ab_cast_close(struct ab_cast_writer *w);

/* Reads a recording for `logs`: calls out(data, len, ctx) with the data of every "o"
 * event whose wall time is >= since_unix (0: all), from "<path>.1" when it exists, then
 * from path. With follow, keeps reading path as it grows (and across rotations) until
 * stop(ctx) returns true, then reads what is left and returns; a NULL stop never stops.
 * A missing path waits for it to appear when following, and is -ENOENT otherwise.
 * A last line still being written is not shown; lines that are not valid events or are
 * longer than AB_CAST_MAX_LINE are skipped. A negative value from out ends the read and
 * is returned as is (err untouched). */
int ab_cast_read(const char *path, int64_t since_unix, bool follow,
		 int (*out)(const void *data, size_t len, void *ctx), bool (*stop)(void *ctx), void *ctx,
		 struct ab_error *err);

/* Decodes one event line (without or with its '\n'): [TIME, "T", "DATA"] with JSON's
 * whitespace and escapes. Sets *t (finite, >= 0), *type (the single ASCII character) and
 * *data, a malloc'd NUL-terminated copy of the unescaped data (it may hold NUL bytes;
 * *data_len counts them); broken \u surrogates become U+FFFD. 0, -EINVAL when the line is
 * not such an event, -ENOMEM. The header line is not an event (-EINVAL). */
int ab_cast_parse_event(const char *line, size_t len, double *t, char *type, char **data, size_t *data_len);

#endif
