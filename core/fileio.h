/* Files that are never seen half-written.
 *
 * An atomic file is written under a hidden temporary name in the same directory
 * (".<name>.tmp-<pid>"), flushed to disk, renamed over the final name and the directory entry
 * flushed too. A reader therefore finds either the old file or the complete new one, also after
 * a crash or power loss; a failed or abandoned write leaves only the temporary file, which
 * duet_atomic_abort() removes. */
#ifndef DUET_CORE_FILEIO_H
#define DUET_CORE_FILEIO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define DUET_PATH_MAX 4096

typedef struct duet_atomic_file {
  int fd; /* -1 when not open */
  char path[DUET_PATH_MAX];
  char tmp_path[DUET_PATH_MAX];
  uint64_t written;
} duet_atomic_file;

/* Creates the temporary file (replacing a stale one left by a dead process of the same pid). */
int duet_atomic_open(duet_atomic_file *f, const char *path, duet_err *err);
/* Writes all n bytes (retrying short writes); on failure the caller still calls abort. */
int duet_atomic_write(duet_atomic_file *f, const void *buf, size_t n, duet_err *err);
/* fsync, close, rename over path, fsync the directory. On failure the temporary is removed. */
int duet_atomic_commit(duet_atomic_file *f, duet_err *err);
/* Closes and removes the temporary file; safe to call after commit or twice. */
void duet_atomic_abort(duet_atomic_file *f);

/* The whole of data into path, atomically. */
int duet_write_file_atomic(const char *path, const void *data, size_t n, duet_err *err);
/* Reads a whole (small) file into a NUL-terminated heap buffer; *size excludes the NUL. */
int duet_read_file(const char *path, size_t max_bytes, char **data, size_t *size, duet_err *err);

/* Flushes a directory's entries (after a rename or create inside it). */
int duet_fsync_dir(const char *dir, duet_err *err);
/* The directory part of path ("." when there is none) into out. */
int duet_path_dir(const char *path, char *out, size_t size);
/* dir + "/" + name into out; DUET_EINVAL naming the path when it does not fit. */
int duet_path_join(char *out, size_t size, const char *dir, const char *name, duet_err *err);
/* mkdir -p. */
int duet_mkdir_p(const char *dir, duet_err *err);
/* Removes a file, symlink or directory tree (symlinks are removed, not followed). A path
 * that does not exist is not an error. */
int duet_remove_tree(const char *path, duet_err *err);
/* Makes link (a symlink to target, stored as given) atomically: a new link is created under a
 * temporary name and renamed over link. */
int duet_symlink_atomic(const char *target, const char *link, duet_err *err);
int duet_path_exists(const char *path); /* lstat succeeds */

#endif
