/*
 * fuzz_check — the fuzz targets' contract checks. Unlike assert() they stay in release builds
 * (test.sh builds the targets RelWithDebInfo, which defines NDEBUG): a failed check prints
 * itself and aborts, which libFuzzer reports as a crash with its input.
 */
#ifndef TELEBRIDGE_FUZZ_CHECK_H
#define TELEBRIDGE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
