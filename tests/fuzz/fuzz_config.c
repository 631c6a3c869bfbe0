/*
 * libFuzzer target: the configuration loader, from a buffer (tb_config_apply_json over the
 * defaults). Checks: success gives a config that prints (tb_config_to_json); failure writes a
 * message; either way tb_config_free() releases everything.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[TB_CONFIG_ERR_LEN] = "";
    tb_config_t cfg;
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (tb_config_defaults(&cfg) == 0) {
        if (tb_config_apply_json(&cfg, text, "/nonexistent", err, sizeof(err)) == 0) {
            json_t *shown = tb_config_to_json(&cfg);
            FUZZ_CHECK(shown);
            json_decref(shown);
        } else {
            FUZZ_CHECK(err[0] != '\0');
        }
    }
    tb_config_free(&cfg);
    free(text);
    return 0;
}
