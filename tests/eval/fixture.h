/* Fixture helpers shared by the eval tests: paths under tests/eval/fixtures and JSON files. */
#ifndef DUET_TESTS_EVAL_FIXTURE_H
#define DUET_TESTS_EVAL_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

static inline void fixture_path(char *buf, size_t cap, const char *name) {
  const char *src = getenv("DUET_SOURCE_DIR");
  snprintf(buf, cap, "%s/tests/eval/fixtures/%s", src ? src : ".", name);
}

/* Parsed JSON fixture or NULL (with a message on stderr). */
static inline cJSON *fixture_json(const char *name) {
  char path[1024];
  fixture_path(path, sizeof path, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "%s: cannot open\n", path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  size_t got = text ? fread(text, 1, (size_t)n, f) : 0;
  fclose(f);
  if (!text || got != (size_t)n) {
    free(text);
    return NULL;
  }
  text[n] = '\0';
  cJSON *j = cJSON_Parse(text);
  free(text);
  if (!j) fprintf(stderr, "%s: bad JSON\n", path);
  return j;
}

/* A JSON array of numbers as a malloc'd double array; *n gets the length. */
static inline double *json_doubles(const cJSON *arr, int *n) {
  *n = cJSON_GetArraySize(arr);
  double *v = malloc(sizeof(double) * (size_t)(*n > 0 ? *n : 1));
  for (int i = 0; v && i < *n; i++) v[i] = cJSON_GetArrayItem(arr, i)->valuedouble;
  return v;
}

#endif
