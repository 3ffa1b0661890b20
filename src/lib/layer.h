/* The run's own layer: each copy-on-write run writes into a directory of its own
 * (dir/layer, empty when the run starts), stacked over the sandbox's upper directory,
 * which holds what earlier runs changed and is a read-only layer while the run lasts:
 *
 *     dir/layer (the mount's upper)  ->  dir/upper (lower)  ->  the project (lower)
 *
 * The end of a run that wrote nothing finds the layer empty: one directory read, however
 * many changes upper holds. A run that wrote something has its layer folded into upper
 * at its end, by overlayfs's own rules, before anything else reads upper. Until then
 * (while the run lasts, or after a crash until the next command that may) the sandbox's
 * changes are upper with the layer over it, and readers beside a run fold a copy. */
#ifndef AB_LAYER_H
#define AB_LAYER_H

#include "../shared/error.h"
#include "workspace.h"

/* 1 when the directory holds no entry, 0 when it holds some, -errno (-ENOENT: there is
 * no such directory). */
int ab_layer_is_empty(const char *layer);

/* Moves everything in layer into upper, as overlayfs shows layer over upper over the
 * project: an entry replaces upper's entry of that name (a directory with all beneath
 * it); a directory merges into upper's directory of that name, taking its mode, owner,
 * times and "user." attributes, unless it is opaque or upper's entry is not a directory,
 * where it replaces it and is (or is made) opaque; a whiteout that hides nothing of the
 * project goes, with upper's entry. layer is left empty. Never follows a symlink. Run
 * again after an interruption, it finishes the work. */
int ab_layer_fold(const char *layer, const char *upper, const char *project, struct ab_error *err);

/* Makes dst (which must not exist) a tree of hard links to the entries of src, with
 * directories of their own that carry src's modes, owners, times and "user."
 * attributes: a view that costs a link per entry, for readers that must not change src. */
int ab_layer_link_tree(const char *src, const char *dst, struct ab_error *err);

/* The sandbox's changes as one upper directory for a reader (diff, the listing's disk
 * use): ws->upper itself when the layer is empty, else dir/view-PID-N, upper's tree with
 * the layer folded in, built of links (ab_layer_link_tree). *view is released with
 * ab_layer_view_release. */
int ab_layer_view(const struct ab_workspace *ws, char **view, struct ab_error *err);
void ab_layer_view_release(const struct ab_workspace *ws, char *view);

/* For ab_workspace_recover, and a run's start, with no run holding the sandbox: the layer
 * made when missing (an older sandbox; its mode and owner are upper's, which the sandbox
 * sees as its workspace's root), a layer left by a run whose end never came folded into
 * upper (once its init is gone), and with have_views, views left by readers removed. Sets
 * ws->layer_empty. */
int ab_layer_recover(struct ab_workspace *ws, bool have_views, struct ab_error *err);

#endif
