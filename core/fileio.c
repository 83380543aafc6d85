#include "core/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int duet_path_dir(const char *path, char *out, size_t size) {
  const char *slash = strrchr(path, '/');
  if (!slash) return snprintf(out, size, ".") < (int)size ? 0 : -1;
  size_t n = slash == path ? 1 : (size_t)(slash - path);
  if (n + 1 > size) return -1;
  memcpy(out, path, n);
  out[n] = '\0';
  return 0;
}

int duet_path_join(char *out, size_t size, const char *dir, const char *name, duet_err *err) {
  int n = snprintf(out, size, "%s/%s", dir, name);
  if (n < 0 || (size_t)n >= size)
    return duet_err_set(err, DUET_EINVAL, "%s/%s: path too long", dir, name);
  return DUET_OK;
}

/* ".<base>.tmp-<pid>" beside path: hidden, so globs over the directory skip it, and unique
 * per process, so two runs writing into one directory do not collide. */
static int temp_name(const char *path, const char *what, char *out, size_t size, duet_err *err) {
  char dir[DUET_PATH_MAX];
  if (duet_path_dir(path, dir, sizeof dir) != 0)
    return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!*base) return duet_err_set(err, DUET_EINVAL, "%s: path names no file", path);
  int n = slash ? snprintf(out, size, "%s/.%s.%s-%ld", dir, base, what, (long)getpid())
                : snprintf(out, size, ".%s.%s-%ld", base, what, (long)getpid());
  if (n < 0 || (size_t)n >= size) return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  return DUET_OK;
}

int duet_atomic_open(duet_atomic_file *f, const char *path, duet_err *err) {
  f->fd = -1;
  f->written = 0;
  f->tmp_path[0] = '\0';
  if (strlen(path) >= sizeof f->path) return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  strcpy(f->path, path);
  int rc = temp_name(path, "tmp", f->tmp_path, sizeof f->tmp_path, err);
  if (rc) return rc;
  f->fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) {
    rc = duet_err_set(err, DUET_EIO, "%s: cannot create temporary file: %s", path, strerror(errno));
    f->tmp_path[0] = '\0';
    return rc;
  }
  return DUET_OK;
}

int duet_atomic_write(duet_atomic_file *f, const void *buf, size_t n, duet_err *err) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(f->fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return duet_err_set(err, DUET_EIO, "%s: write failed after %llu bytes: %s", f->path,
                          (unsigned long long)f->written, strerror(errno));
    }
    p += w;
    n -= (size_t)w;
    f->written += (uint64_t)w;
  }
  return DUET_OK;
}

int duet_fsync_dir(const char *dir, duet_err *err) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return duet_err_set(err, DUET_EIO, "%s: cannot open directory: %s", dir, strerror(errno));
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  /* Some file systems cannot sync a directory; the rename is still atomic there. */
  if (rc != 0 && e != EINVAL && e != ENOTSUP)
    return duet_err_set(err, DUET_EIO, "%s: cannot sync directory: %s", dir, strerror(e));
  return DUET_OK;
}

int duet_atomic_commit(duet_atomic_file *f, duet_err *err) {
  int rc = DUET_OK;
  if (fsync(f->fd) != 0)
    rc = duet_err_set(err, DUET_EIO, "%s: cannot sync to disk: %s", f->path, strerror(errno));
  /* close() is where some network file systems first report a failed write. */
  if (close(f->fd) != 0 && !rc)
    rc = duet_err_set(err, DUET_EIO, "%s: close failed: %s", f->path, strerror(errno));
  f->fd = -1;
  if (!rc && rename(f->tmp_path, f->path) != 0)
    rc = duet_err_set(err, DUET_EIO, "%s: cannot rename temporary file into place: %s", f->path,
                      strerror(errno));
  if (rc) {
    duet_atomic_abort(f);
    return rc;
  }
  f->tmp_path[0] = '\0';
  char dir[DUET_PATH_MAX];
  duet_path_dir(f->path, dir, sizeof dir);
  return duet_fsync_dir(dir, err);
}

void duet_atomic_abort(duet_atomic_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  if (f->tmp_path[0]) unlink(f->tmp_path);
  f->tmp_path[0] = '\0';
}

int duet_write_file_atomic(const char *path, const void *data, size_t n, duet_err *err) {
  duet_atomic_file f;
  int rc = duet_atomic_open(&f, path, err);
  if (!rc) rc = duet_atomic_write(&f, data, n, err);
  if (!rc) return duet_atomic_commit(&f, err);
  duet_atomic_abort(&f);
  return rc;
}

int duet_read_file(const char *path, size_t max_bytes, char **data, size_t *size, duet_err *err) {
  *data = NULL;
  *size = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return duet_err_set(err, DUET_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return duet_err_set(err, DUET_EIO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > max_bytes) {
    close(fd);
    return duet_err_set(err, DUET_EFORMAT, "%s: %lld bytes, more than the %zu expected", path,
                        (long long)st.st_size, max_bytes);
  }
  size_t n = (size_t)st.st_size, got = 0;
  char *buf = malloc(n + 1);
  if (!buf) {
    close(fd);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int rc = duet_err_set(err, DUET_EIO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file shrank");
      free(buf);
      close(fd);
      return rc;
    }
    got += (size_t)r;
  }
  close(fd);
  buf[n] = '\0';
  *data = buf;
  *size = n;
  return DUET_OK;
}

int duet_mkdir_p(const char *dir, duet_err *err) {
  char buf[DUET_PATH_MAX];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf) return duet_err_set(err, DUET_EINVAL, "'%s': bad directory path", dir);
  memcpy(buf, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return duet_err_set(err, DUET_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return duet_err_set(err, DUET_EIO, "%s: exists and is not a directory", dir);
  return DUET_OK;
}

int duet_path_exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

int duet_remove_tree(const char *path, duet_err *err) {
  struct stat st;
  if (lstat(path, &st) != 0) {
    if (errno == ENOENT) return DUET_OK;
    return duet_err_set(err, DUET_EIO, "%s: %s", path, strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (!d) return duet_err_set(err, DUET_EIO, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = DUET_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)) != NULL) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char child[DUET_PATH_MAX];
      rc = duet_path_join(child, sizeof child, path, e->d_name, err);
      if (!rc) rc = duet_remove_tree(child, err);
    }
    closedir(d);
    if (rc) return rc;
    if (rmdir(path) != 0) return duet_err_set(err, DUET_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return DUET_OK;
  }
  if (unlink(path) != 0) return duet_err_set(err, DUET_EIO, "%s: cannot remove: %s", path, strerror(errno));
  return DUET_OK;
}

int duet_symlink_atomic(const char *target, const char *link, duet_err *err) {
  char tmp[DUET_PATH_MAX];
  int rc = temp_name(link, "tmp", tmp, sizeof tmp, err);
  if (rc) return rc;
  unlink(tmp);
  if (symlink(target, tmp) != 0)
    return duet_err_set(err, DUET_EIO, "%s: cannot create link: %s", tmp, strerror(errno));
  if (rename(tmp, link) != 0) {
    rc = duet_err_set(err, DUET_EIO, "%s: cannot rename link into place: %s", link, strerror(errno));
    unlink(tmp);
    return rc;
  }
  char dir[DUET_PATH_MAX];
  duet_path_dir(link, dir, sizeof dir);
  return duet_fsync_dir(dir, err);
}
