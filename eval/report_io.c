#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report.h"

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
