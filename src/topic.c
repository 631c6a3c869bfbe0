/* topic — MQTT topic templates with {device}/{group}; see include/telebridge/topic.h. */
#include "telebridge/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telebridge/util.h"

/* Longest template and most levels accepted; real templates are a few short levels. */
#define TPL_MAX_LEN 1024
#define TPL_MAX_LEVELS 32

static const char DEVICE_PH[] = "{device}";
static const char GROUP_PH[] = "{group}";

typedef enum { LEVEL_LITERAL = 0, LEVEL_DEVICE, LEVEL_GROUP } level_kind_t;

typedef struct {
    level_kind_t kind;
    const char *text; /* into tb_topic_tpl.text; not NUL-terminated at the level's end */
    size_t len;
} level_t;

/*
 * Empty levels ("a//b", a leading '/') are legal in MQTT and kept as literal empty levels,
 * matched exactly; a captured level can never be empty since ids are 1+ bytes.
 */
struct tb_topic_tpl {
    char *text;   /* the template, owned */
    char *filter; /* the subscription filter, owned */
    level_t levels[TPL_MAX_LEVELS];
    size_t n_levels;
    bool has_group;
};

static bool level_is(const char *s, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(s, word, len) == 0;
}

/* Classifies one level; -1 with err set when it is not a literal nor a whole placeholder. */
static int classify_level(level_t *lv, char *err, size_t errlen)
{
    if (level_is(lv->text, lv->len, DEVICE_PH)) {
        lv->kind = LEVEL_DEVICE;
    } else if (level_is(lv->text, lv->len, GROUP_PH)) {
        lv->kind = LEVEL_GROUP;
    } else if (memchr(lv->text, '{', lv->len) || memchr(lv->text, '}', lv->len)) {
        tb_set_err(err, errlen, "a placeholder must be a whole level, {device} or {group}");
        return -1;
    } else {
        lv->kind = LEVEL_LITERAL;
    }
    return 0;
}

/* Splits t->text into levels and checks the placeholder counts. */
static int split_levels(tb_topic_tpl_t *t, char *err, size_t errlen)
{
    unsigned devices = 0, groups = 0;
    const char *p = t->text;
    for (;;) {
        if (t->n_levels == TPL_MAX_LEVELS) {
            tb_set_err(err, errlen, "more than %d levels", TPL_MAX_LEVELS);
            return -1;
        }
        const char *slash = strchr(p, '/');
        level_t *lv = &t->levels[t->n_levels++];
        lv->text = p;
        lv->len = slash ? (size_t)(slash - p) : strlen(p);
        if (classify_level(lv, err, errlen) != 0)
            return -1;
        devices += lv->kind == LEVEL_DEVICE;
        groups += lv->kind == LEVEL_GROUP;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (devices != 1 || groups > 1) {
        tb_set_err(err, errlen, "%s",
                   devices != 1 ? "{device} must appear exactly once"
                                : "{group} may appear at most once");
        return -1;
    }
    t->has_group = groups == 1;
    return 0;
}

/* Builds the filter: the template with each placeholder level replaced by '+'. */
static int build_filter(tb_topic_tpl_t *t, size_t len)
{
    /* A filter is never longer than its template: "+" replaces a 7- or 8-byte level. */
    t->filter = malloc(len + 1);
    if (!t->filter)
        return -1;
    char *o = t->filter;
    for (size_t i = 0; i < t->n_levels; i++) {
        const level_t *lv = &t->levels[i];
        if (i > 0)
            *o++ = '/';
        if (lv->kind == LEVEL_LITERAL) {
            memcpy(o, lv->text, lv->len);
            o += lv->len;
        } else {
            *o++ = '+';
        }
    }
    *o = '\0';
    return 0;
}

/* The checks on the whole template text; 0 or -1 with err set. */
static int check_text(const char *tpl, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        tb_set_err(err, errlen, "empty topic template");
        return -1;
    }
    if (len > TPL_MAX_LEN) {
        tb_set_err(err, errlen, "topic template longer than %d bytes", TPL_MAX_LEN);
        return -1;
    }
    if (!tb_utf8_valid(tpl, len)) {
        tb_set_err(err, errlen, "topic template is not valid UTF-8");
        return -1;
    }
    if (strpbrk(tpl, "+#")) {
        tb_set_err(err, errlen, "MQTT wildcards (+, #) are not allowed; use {device}/{group}");
        return -1;
    }
    return 0;
}

tb_topic_tpl_t *tb_topic_tpl_parse(const char *tpl, char *err, size_t errlen)
{
    size_t len = strnlen(tpl, TPL_MAX_LEN + 1);
    if (check_text(tpl, len, err, errlen) != 0)
        return NULL;
    tb_topic_tpl_t *t = calloc(1, sizeof(*t));
    if (!t)
        goto nomem;
    t->text = strdup(tpl);
    if (!t->text)
        goto nomem;
    if (split_levels(t, err, errlen) != 0)
        goto fail;
    if (build_filter(t, len) != 0)
        goto nomem;
    return t;
nomem:
    tb_set_err(err, errlen, "out of memory");
fail:
    tb_topic_tpl_free(t);
    return NULL;
}

void tb_topic_tpl_free(tb_topic_tpl_t *t)
{
    if (!t)
        return;
    free(t->text);
    free(t->filter);
    free(t);
}

const char *tb_topic_tpl_filter(const tb_topic_tpl_t *t)
{
    return t->filter;
}

/* A captured level fits out[outlen] with its NUL and is a valid id. */
static bool capture_ok(const char *s, size_t len, size_t outlen)
{
    return s && len < outlen && tb_id_valid(s, len);
}

int tb_topic_tpl_match(const tb_topic_tpl_t *t, const char *topic, char *device, size_t devlen,
                       char *group, size_t grouplen)
{
    const char *dev = NULL, *grp = NULL;
    size_t dlen = 0, glen = 0;
    const char *p = topic;
    for (size_t i = 0; i < t->n_levels; i++) {
        const level_t *lv = &t->levels[i];
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (lv->kind == LEVEL_LITERAL && (len != lv->len || memcmp(p, lv->text, len) != 0))
            return -1;
        if (lv->kind == LEVEL_DEVICE) {
            dev = p;
            dlen = len;
        } else if (lv->kind == LEVEL_GROUP) {
            grp = p;
            glen = len;
        }
        /* The topic must have as many levels as the template: no more, no fewer. */
        if ((i + 1 == t->n_levels) != (slash == NULL))
            return -1;
        if (slash)
            p = slash + 1;
    }
    if (!capture_ok(dev, dlen, devlen) || (t->has_group && !capture_ok(grp, glen, grouplen)))
        return -1;
    memcpy(device, dev, dlen);
    device[dlen] = '\0';
    if (t->has_group) {
        memcpy(group, grp, glen);
        group[glen] = '\0';
    } else if (group && grouplen > 0) {
        group[0] = '\0';
    }
    return 0;
}
