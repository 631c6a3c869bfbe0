/*
 * libFuzzer target: the client frame validator (tb_wsframe_feed), with the bytes a client sends.
 * Checks: the verdict is 0, 1002 or 1007, with a reason exactly when it is not 0; and it does
 * not depend on how the stream is cut: fed whole, one byte at a time, and in two pieces at a
 * point chosen by the input, the verdict is the same.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/wsframe.h"

static int verdict(const uint8_t *data, size_t size, size_t piece, const char **reason)
{
    static char kept[128];
    tb_wsframe_t *v = tb_wsframe_create();
    int code = 0;
    FUZZ_CHECK(v != NULL);
    for (size_t at = 0; at < size; at += piece) {
        size_t n = size - at < piece ? size - at : piece;
        int rc = tb_wsframe_feed(v, data + at, n);
        FUZZ_CHECK(code == 0 || rc == code); /* a violation sticks */
        code = rc;
    }
    if (size == 0)
        code = tb_wsframe_feed(v, data, 0);
    FUZZ_CHECK(strlen(tb_wsframe_reason(v)) < sizeof(kept));
    strcpy(kept, tb_wsframe_reason(v));
    *reason = kept;
    tb_wsframe_destroy(v);
    return code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *reason;
    int whole = verdict(data, size, size ? size : 1, &reason);
    char whole_reason[128];
    FUZZ_CHECK(whole == 0 || whole == TB_WSFRAME_PROTOCOL_ERROR ||
               whole == TB_WSFRAME_INVALID_PAYLOAD);
    FUZZ_CHECK((whole == 0) == (reason[0] == '\0'));
    strcpy(whole_reason, reason);
    FUZZ_CHECK(verdict(data, size, 1, &reason) == whole);
    FUZZ_CHECK(strcmp(reason, whole_reason) == 0);
    if (size > 1) {
        size_t cut = 1 + data[0] % (size - 1);
        tb_wsframe_t *v = tb_wsframe_create();
        FUZZ_CHECK(v != NULL);
        int first = tb_wsframe_feed(v, data, cut);
        FUZZ_CHECK(first == 0 || first == whole);
        FUZZ_CHECK(tb_wsframe_feed(v, data + cut, size - cut) == whole);
        tb_wsframe_destroy(v);
    }
    return 0;
}
