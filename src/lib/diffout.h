/* Writes a list of changes (ab_changes_collect) for people or programs.
 *
 * AB_DIFF_TEXT: git-like. Per change a bold "diff --agentbox a/PATH b/PATH" header, then
 *   "new file mode 100644" / "deleted file mode 100644" ("directory" for directories),
 *   "old mode"/"new mode", "old owner UID:GID"/"new owner UID:GID", "type changed: file ->
 *   symlink"; symlinks as "-symlink -> OLD" / "+symlink -> NEW" (never followed); binary
 *   files as "Binary files differ: 10 bytes sha256 0123456789abcdef.. -> /dev/null"; text
 *   as "--- a/PATH" "+++ b/PATH" and unified hunks with 3 lines of context (old content
 *   from project, new from upper; see textdiff.h for the caps). Paths holding a space,
 *   '"', '\\', a control character or bytes that are not UTF-8 are quoted C-style:
 *   "a/x\ny". Colour: bold headers, cyan hunk headers, red removed and green added lines.
 * AB_DIFF_STAT: " M path | 12 ++++----" per change (A added, M modified, D deleted, T type,
 *   m metadata only; "Bin 10 -> 20 bytes" for binary files, "mode 0644 -> 0755" or "owner
 *   1000:1000 -> 0:0" for metadata), then "N files changed, X insertions(+), Y deletions(-)".
 *   Added and deleted files are only counted; modified ones go through the line diff.
 * AB_DIFF_JSON: an array, one object per change:
 *   {"path": "...", "change": "added|modified|deleted|meta|type",
 *    "old": {"type": "file|dir|symlink|fifo|socket|chardev|blockdev", "mode": "0644",
 *            "size": 12, "sha256": "hex" | null, "link": "target" | null, "uid": 0,
 *            "gid": 0} | null,
 *    "new": {...} | null, "binary": false, "insertions": 3, "deletions": 1}
 *   A path (or link) that is not valid UTF-8 has its bad bytes replaced by U+FFFD in
 *   "path", and the exact bytes in "path_bytes" (hex). Counts are 0 for binary files, for
 *   directories and for text over the caps; a symlink target counts as one line.
 *
 * Library code: it writes only to `out`; NO_COLOR and terminals are the caller's business.
 * A file that vanished or changed type since the changes were collected is an error. */
#ifndef AB_DIFFOUT_H
#define AB_DIFFOUT_H

#include <stdbool.h>
#include <stdio.h>

#include "workspace.h"

enum ab_diff_format {
	AB_DIFF_TEXT,
	AB_DIFF_STAT,
	AB_DIFF_JSON,
};

int ab_diff_write(FILE *out, const struct ab_change *changes, size_t n, const char *upper,
		  const char *project, enum ab_diff_format fmt, bool color, struct ab_error *err);

/* C-style quoting of prefix+path when needed (see above), for messages too. */
char *ab_diff_quote_path(const char *prefix, const char *path);

#endif
