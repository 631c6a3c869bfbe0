/* project — field projection; see include/telebridge/project.h. */
#include "telebridge/project.h"

#include <stdlib.h>
#include <string.h>

#include "telebridge/protocol.h"
#include "telebridge/room.h"

/* names[] sorted by strcmp, each a copy owned by the set. */
struct tb_project {
    size_t refs;
    size_t n;
    char *names[];
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

tb_project_t *tb_project_new(const json_t *names)
{
    size_t n = json_array_size(names);
    tb_project_t *p = calloc(1, sizeof(*p) + n * sizeof(p->names[0]));
    if (!p)
        return NULL;
    p->refs = 1;
    for (; p->n < n; p->n++) {
        p->names[p->n] = strdup(json_string_value(json_array_get(names, p->n)));
        if (!p->names[p->n]) {
            tb_project_unref(p);
            return NULL;
        }
    }
    qsort(p->names, p->n, sizeof(p->names[0]), cmp_name);
    return p;
}

tb_project_t *tb_project_ref(tb_project_t *p)
{
    if (p)
        p->refs++;
    return p;
}

void tb_project_unref(tb_project_t *p)
{
    if (!p || --p->refs)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->names[i]);
    free(p);
}

bool tb_project_shared(const tb_project_t *p)
{
    return p->refs > 1;
}

bool tb_project_has(const tb_project_t *p, const char *name)
{
    return bsearch(&name, p->names, p->n, sizeof(p->names[0]), cmp_name) != NULL;
}

bool tb_project_equal(const tb_project_t *a, const tb_project_t *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->names[i], b->names[i]) != 0)
            return false;
    return true;
}

size_t tb_project_count(const tb_project_t *p)
{
    return p->n;
}

const char *tb_project_name(const tb_project_t *p, size_t i)
{
    return p->names[i];
}

size_t tb_project_fields(json_t *fields, const tb_project_t *p)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(fields, tmp, key, v)
    {
        if (!tb_project_has(p, key))
            json_object_del(fields, key);
    }
    return json_object_size(fields);
}

tb_frame_t *tb_project_frame(const tb_frame_t *f, const tb_project_t *p, bool *none)
{
    json_t *env = json_loadb((const char *)f->data + TB_FRAME_HEADROOM, f->len, 0, NULL);
    json_t *fields = json_object_get(json_object_get(env, "payload"), "fields");
    tb_frame_t *out = NULL;
    *none = false;
    if (json_is_object(fields) && tb_project_fields(fields, p) == 0)
        *none = true;
    else if (json_is_object(fields) &&
             (out = tb_frame_from_json(env, (tb_frame_kind_t)f->kind, f->seq)))
        out->ingest_us = f->ingest_us; /* the same message: the same delivery latency */
    json_decref(env);
    return out;
}

/* payload's members in order, with `fields` cut to p (a new object; NULL when out of memory),
 * *kept the fields that remain. */
static json_t *payload_cut(const json_t *payload, const tb_project_t *p, size_t *kept)
{
    json_t *out = json_object(), *v;
    const char *key;
    *kept = 0;
    json_object_foreach((json_t *)payload, key, v)
    {
        if (!out)
            break;
        if (strcmp(key, "fields") != 0) {
            json_object_set(out, key, v);
            continue;
        }
        json_t *fields = json_object(), *fv;
        const char *name;
        json_object_foreach(v, name, fv) if (fields && tb_project_has(p, name))
            json_object_set(fields, name, fv);
        *kept = json_object_size(fields);
        if (!fields || json_object_set_new(out, key, fields)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

tb_frame_t *tb_project_payload(const tb_frame_t *f, const json_t *payload, int64_t ms,
                               const tb_project_t *p, bool *none)
{
    char room[TB_ROOM_MAX + 1], *json = NULL;
    size_t kept, len;
    tb_frame_t *out = NULL;
    *none = false;
    json_t *cut = tb_protocol_device_room(f, room) ? payload_cut(payload, p, &kept) : NULL;
    if (cut && kept == 0)
        *none = true;
    else if (cut && tb_frame_json_encode(cut, SIZE_MAX, &json, &len) == 0 &&
             (out = tb_protocol_device_spliced("telemetry", room, json, len, f->seq, ms,
                                               (tb_frame_kind_t)f->kind)))
        out->ingest_us = f->ingest_us;
    free(json);
    json_decref(cut);
    return out;
}
