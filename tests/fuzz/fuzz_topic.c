/*
 * libFuzzer target: topic templates (parse) and the matcher.
 * Input: "template\ntopic". Checks: a parsed template has a filter; a match captures a valid
 * device id, and a group that is "" or a valid id.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "telebridge/topic.h"
#include "telebridge/util.h"

static void match(const tb_topic_tpl_t *t, const char *topic)
{
    char device[TB_ID_MAX + 1], group[TB_ID_MAX + 1];
    FUZZ_CHECK(tb_topic_tpl_filter(t) != NULL);
    if (tb_topic_tpl_match(t, topic, device, sizeof(device), group, sizeof(group)) != 0)
        return;
    FUZZ_CHECK(tb_id_valid(device, strlen(device)));
    FUZZ_CHECK(group[0] == '\0' || tb_id_valid(group, strlen(group)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1), err[256];
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *nl = strchr(text, '\n');
    const char *topic = "devices/d1/telemetry";
    if (nl) {
        *nl = '\0';
        topic = nl + 1;
    }
    tb_topic_tpl_t *t = tb_topic_tpl_parse(text, err, sizeof(err));
    if (t) {
        match(t, topic);
        tb_topic_tpl_free(t);
    } else {
        FUZZ_CHECK(err[0] != '\0');
    }
    free(text);
    return 0;
}
