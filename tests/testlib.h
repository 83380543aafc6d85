/* A small assertion kit for the ctest programs: each CHECK prints the file, line and the
 * values involved, counts the failure and lets the test go on; main returns test_finish(). */
#ifndef DUET_TESTLIB_H
#define DUET_TESTLIB_H

#include <math.h>
#include <stdio.h>

extern int test_failures;
extern int test_checks;

#define CHECK(cond)                                                               \
  do {                                                                            \
    test_checks++;                                                                \
    if (!(cond)) {                                                                \
      test_failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
    }                                                                             \
  } while (0)

#define CHECK_MSG(cond, ...)                                                      \
  do {                                                                            \
    test_checks++;                                                                \
    if (!(cond)) {                                                                \
      test_failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                               \
      fputc('\n', stderr);                                                        \
    }                                                                             \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                     \
  do {                                                                            \
    double _a = (double)(a), _b = (double)(b), _t = (double)(tol);                \
    test_checks++;                                                                \
    if (!(fabs(_a - _b) <= _t)) {                                                 \
      test_failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %.3g\n", \
              __FILE__, __LINE__, #a, _a, #b, _b, _t);                            \
    }                                                                             \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                        \
  do {                                                                            \
    long long _a = (long long)(a), _b = (long long)(b);                           \
    test_checks++;                                                                \
    if (_a != _b) {                                                               \
      test_failures++;                                                            \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s = %lld, %s = %lld\n", __FILE__,  \
              __LINE__, #a, _a, #b, _b);                                          \
    }                                                                             \
  } while (0)

/* Prints "<name>: N passed, M failed" and returns the exit code for main. */
int test_finish(const char *name);

/* A scratch directory unique to this test process, created on first use. */
const char *test_tmpdir(void);

#endif
