/* Tests for POST /api/v1/publish body validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "telebridge/publish.h"

/* tb_publish_check on the JSON text; NULL when valid (then *out is filled). */
static const char *check(const char *text, size_t max, tb_publish_msg_t *out, json_t **keep)
{
    json_t *body = json_loads(text, 0, NULL);
    assert_non_null(body);
    const char *err = tb_publish_check(body, max, out);
    *keep = body;
    return err;
}

static void test_valid_body(void **state)
{
    (void)state;
    tb_publish_msg_t m;
    json_t *body;
    assert_null(
        check("{\"room\":\"group:ops\",\"type\":\"alert\",\"payload\":{\"a\":1}}", 64, &m, &body));
    assert_string_equal(m.room, "group:ops");
    assert_string_equal(m.type, "alert");
    assert_int_equal(json_integer_value(json_object_get(m.payload, "a")), 1);
    json_decref(body);
    const char *rooms[] = {"device:x", "global"};
    const char *types[] = {"notice", "telemetry", "device_status"};
    char text[160];
    for (size_t i = 0; i < 2; i++) {
        for (size_t k = 0; k < 3; k++) {
            snprintf(text, sizeof(text), "{\"room\":\"%s\",\"type\":\"%s\",\"payload\":{}}",
                     rooms[i], types[k]);
            assert_null(check(text, 64, &m, &body));
            json_decref(body);
        }
    }
}

static void test_refused_bodies(void **state)
{
    (void)state;
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"{\"type\":\"alert\",\"payload\":{}}", TB_PUBLISH_E_ROOM},
        {"{\"room\":\"device:\",\"type\":\"alert\",\"payload\":{}}", TB_PUBLISH_E_ROOM},
        {"{\"room\":\"device:a b\",\"type\":\"alert\",\"payload\":{}}", TB_PUBLISH_E_ROOM},
        {"{\"room\":\"global*\",\"type\":\"alert\",\"payload\":{}}", TB_PUBLISH_E_ROOM},
        {"{\"room\":[\"global\"],\"type\":\"alert\",\"payload\":{}}", TB_PUBLISH_E_ROOM},
        {"{\"room\":\"global\",\"payload\":{}}", TB_PUBLISH_E_TYPE},
        {"{\"room\":\"global\",\"type\":\"subscribed\",\"payload\":{}}", TB_PUBLISH_E_TYPE},
        {"{\"room\":\"global\",\"type\":\"error\",\"payload\":{}}", TB_PUBLISH_E_TYPE},
        {"{\"room\":\"global\",\"type\":1,\"payload\":{}}", TB_PUBLISH_E_TYPE},
        {"{\"room\":\"global\",\"type\":\"alert\",\"payload\":\"x\"}", TB_PUBLISH_E_PAYLOAD},
        {"{\"room\":\"global\",\"type\":\"alert\",\"payload\":null}", TB_PUBLISH_E_PAYLOAD},
        {"{\"room\":\"global\",\"type\":\"alert\",\"payload\":{},\"x\":1}", TB_PUBLISH_E_MEMBER},
        {"{\"room\":\"global\",\"type\":\"alert\",\"payload\":{\"blob\":\"0123456789\"}}",
         TB_PUBLISH_E_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_publish_msg_t m;
        json_t *body;
        const char *err = check(cases[i].text, 16, &m, &body);
        assert_non_null(err);
        assert_string_equal(err, cases[i].err);
        json_decref(body);
    }
}

/* The bound is on the compact encoding, inclusive. */
static void test_payload_bound_inclusive(void **state)
{
    (void)state;
    tb_publish_msg_t m;
    json_t *body;
    const char *text = "{\"room\":\"global\",\"type\":\"notice\",\"payload\": { \"a\" : 1 }}";
    assert_null(check(text, 7, &m, &body)); /* {"a":1} */
    json_decref(body);
    assert_string_equal(check(text, 6, &m, &body), TB_PUBLISH_E_TOO_LARGE);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_body),
        cmocka_unit_test(test_refused_bodies),
        cmocka_unit_test(test_payload_bound_inclusive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
