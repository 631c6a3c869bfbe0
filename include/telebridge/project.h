/*
 * project — field projection: the subscribe option `fields` (docs/protocol.md → Subscribe
 * options). A tb_project_t is an immutable set of field names, shared by reference count (every
 * joined room of one subscribe holds a reference); one thread uses it (the service thread).
 *
 * A projected telemetry message keeps its envelope and every payload member but `fields`, whose
 * members are cut to the set's names (tags, device_id and timestamp stay). A message none of
 * whose fields is in the set is not sent at all.
 */
#ifndef TELEBRIDGE_PROJECT_H
#define TELEBRIDGE_PROJECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "telebridge/frame.h"

typedef struct tb_project tb_project_t;

/*
 * A set of the names in `names`, a JSON array of distinct strings as tb_protocol_cmsg_parse()
 * validates `fields` (1..TB_PROTOCOL_FIELDS_MAX names); one reference, the caller's. NULL when
 * out of memory.
 */
tb_project_t *tb_project_new(const json_t *names);
/* Another reference to p (NULL stays NULL); every reference is dropped with tb_project_unref(). */
tb_project_t *tb_project_ref(tb_project_t *p);
void tb_project_unref(tb_project_t *p);
/* True when p has more than one reference. */
bool tb_project_shared(const tb_project_t *p);

/* True when name is in p. O(log names). */
bool tb_project_has(const tb_project_t *p, const char *name);
/* True when a and b hold the same names (NULL, "every field", equals only NULL). */
bool tb_project_equal(const tb_project_t *a, const tb_project_t *b);
/* How many names p holds, and the i-th in byte order (i < tb_project_count(p)). */
size_t tb_project_count(const tb_project_t *p);
const char *tb_project_name(const tb_project_t *p, size_t i);

/*
 * Cuts fields (a telemetry payload's `fields` object) to p in place: the members not in p are
 * deleted. Returns how many remain (0: the message is not to be sent).
 */
size_t tb_project_fields(json_t *fields, const tb_project_t *p);

/*
 * The telemetry frame f (a device envelope of tb_protocol_device*(), or its snapshot copy) with
 * payload.fields cut to p: a new frame with one reference (same kind and seq; the envelope's
 * other members, their order and the snapshot mark unchanged), the caller's. NULL with *none
 * true when none of f's fields is in p; NULL with *none false when out of memory or when f is
 * not such a frame. Parses and encodes f once: callers share the result between recipients.
 */
tb_frame_t *tb_project_frame(const tb_frame_t *f, const tb_project_t *p, bool *none);

/*
 * The same for a telemetry frame f whose payload object is at hand (payload, the message's
 * normalised payload, and f made from it by tb_protocol_device_spliced() at ms): the projected
 * payload is built from payload's members (nothing parsed) and spliced into f's envelope, the
 * bytes tb_project_frame(f, p) gives. NULL with *none as there.
 */
tb_frame_t *tb_project_payload(const tb_frame_t *f, const json_t *payload, int64_t ms,
                               const tb_project_t *p, bool *none);

#endif
