/* project — field projection; see include/telebridge/project.h. */
#include "telebridge/project.h"

#include <stdlib.h>
#include <string.h>

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
