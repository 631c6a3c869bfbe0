/*
 * topic — MQTT topic templates with {device} and optional {group} placeholders.
 *
 * A template is a topic filter whose levels are literal, "{device}" or "{group}". {device}
 * must appear exactly once, {group} at most once, each as a whole level; MQTT wildcards
 * (+, #) and empty templates are refused.
 */
#ifndef TELEBRIDGE_TOPIC_H
#define TELEBRIDGE_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tb_topic_tpl tb_topic_tpl_t;

/* Parses tpl. NULL on error with a reason in err (errlen bytes). Caller frees with _free. */
tb_topic_tpl_t *tb_topic_tpl_parse(const char *tpl, char *err, size_t errlen);
void tb_topic_tpl_free(tb_topic_tpl_t *t);

/* The MQTT subscription filter, placeholders as '+' ("devices/+/telemetry"). Owned by t. */
const char *tb_topic_tpl_filter(const tb_topic_tpl_t *t);

/*
 * Matches a concrete topic. On a match returns 0 and copies the {device} level into
 * device[devlen] and the {group} level into group[grouplen] ("" when the template has none).
 * Returns -1 when the topic does not match, or a captured level does not fit or is not a valid
 * id (tb_id_valid()).
 */
int tb_topic_tpl_match(const tb_topic_tpl_t *t, const char *topic, char *device, size_t devlen,
                       char *group, size_t grouplen);

#endif
