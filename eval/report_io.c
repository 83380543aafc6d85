#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/report.h"

int duet_mkdir_p(const char *dir, duet_err *err) {
  char buf[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf)
    return duet_err_set(err, DUET_EINVAL, "bad output folder '%s'", dir);
  memcpy(buf, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    char c = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return duet_err_set(err, DUET_EIO, "%s: cannot create folder (%s)", buf, strerror(errno));
    buf[i] = c;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return duet_err_set(err, DUET_EIO, "%s: not a folder", dir);
  return DUET_OK;
}

int duet_write_file_atomic(const char *path, const void *data, size_t len, duet_err *err) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
    return duet_err_set(err, DUET_EINVAL, "%s: path too long", path);
  FILE *f = fopen(tmp, "wb");
  if (!f) return duet_err_set(err, DUET_EIO, "%s: cannot create (%s)", tmp, strerror(errno));
  size_t w = fwrite(data, 1, len, f);
  int flush_failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
  if (fclose(f) != 0 || w != len || flush_failed) {
    int e = errno;
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: write failed (%s)", tmp, strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return duet_err_set(err, DUET_EIO, "%s: cannot rename into place (%s)", path, strerror(e));
  }
  return DUET_OK;
}

int duet_write_json(const char *path, const cJSON *root, duet_err *err) {
  char *text = cJSON_Print(root);
  if (!text) return duet_err_set(err, DUET_ENOMEM, "%s: cannot format JSON", path);
  size_t n = strlen(text);
  char *withnl = malloc(n + 2);
  if (!withnl) {
    cJSON_free(text);
    return duet_err_set(err, DUET_ENOMEM, "%s: out of memory", path);
  }
  memcpy(withnl, text, n);
  withnl[n] = '\n';
  withnl[n + 1] = '\0';
  cJSON_free(text);
  int rc = duet_write_file_atomic(path, withnl, n + 1, err);
  free(withnl);
  return rc;
}
