/* Tests for util (time, ids, UTF-8), log (redaction, rate limit) and groups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telebridge/groups.h"
#include "telebridge/log.h"
#include "telebridge/util.h"

static void test_rfc3339(void **state)
{
    static const struct {
        int64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {1700000000123, "2023-11-14T22:13:20.123Z"},
        {-1, "1969-12-31T23:59:59.999Z"},
        {INT64_C(400000000000000), "9999-12-31T23:59:59.999Z"},
        {INT64_C(951782400000), "2000-02-29T00:00:00.000Z"},
        {INT64_C(4107542399999), "2100-02-28T23:59:59.999Z"},
        {INT64_C(4107542400000), "2100-03-01T00:00:00.000Z"},
        {INT64_C(253402300799999), "9999-12-31T23:59:59.999Z"},
        {INT64_C(253402300800000), "9999-12-31T23:59:59.999Z"},
        {INT64_C(-62167219200000), "0000-01-01T00:00:00.000Z"},
        {INT64_C(-62167219200001), "9999-12-31T23:59:59.999Z"},
    };
    char ts[TB_RFC3339_LEN];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tb_format_rfc3339_ms(cases[i].ms, ts);
        assert_string_equal(ts, cases[i].want);
    }
}

/* The calendar arithmetic agrees with the C library's gmtime_r across the whole range. */
static void test_rfc3339_matches_gmtime(void **state)
{
    (void)state;
    /* A step prime to every calendar period, so the samples land on every kind of day. */
    const int64_t step = INT64_C(97) * 86400000 + 3723457;
    char ts[TB_RFC3339_LEN], want[64];
    for (int64_t ms = INT64_C(-62167219200000); ms < INT64_C(253402300800000); ms += step) {
        time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
        struct tm tm;
        assert_non_null(gmtime_r(&secs, &tm));
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)secs * 1000));
        tb_format_rfc3339_ms(ms, ts);
        assert_string_equal(ts, want);
    }
}

/* Parsing what tb_format_rfc3339_ms writes gives the instant back, across the whole range. */
static void test_rfc3339_parse_round_trip(void **state)
{
    (void)state;
    const int64_t step = INT64_C(97) * 86400000 + 3723457;
    char ts[TB_RFC3339_LEN];
    for (int64_t ms = INT64_C(-62167219200000); ms < INT64_C(253402300800000); ms += step) {
        int64_t back = 0;
        tb_format_rfc3339_ms(ms, ts);
        assert_int_equal(tb_parse_rfc3339_ms(ts, strlen(ts), &back), 0);
        assert_true(back == ms);
    }
}

static void test_rfc3339_parse(void **state)
{
    static const struct {
        const char *s;
        int64_t ms; /* when valid */
        bool ok;
    } cases[] = {
        {"2023-11-14T22:13:20.123Z", 1700000000123, true},
        {"2023-11-14t22:13:20.123z", 1700000000123, true},
        {"2023-11-14T22:13:20Z", 1700000000000, true},
        {"2023-11-14T22:13:20.1234567Z", 1700000000123, true},
        {"2023-11-14T23:13:20.123+01:00", 1700000000123, true},
        {"2023-11-14T21:43:20.123-00:30", 1700000000123, true},
        {"2000-02-29T00:00:00Z", INT64_C(951782400000), true},
        {"1970-01-01T00:00:60Z", 60000, true},
        {"2100-02-29T00:00:00Z", 0, false},
        {"2023-13-01T00:00:00Z", 0, false},
        {"2023-00-01T00:00:00Z", 0, false},
        {"2023-04-31T00:00:00Z", 0, false},
        {"2023-11-14T24:00:00Z", 0, false},
        {"2023-11-14T22:60:00Z", 0, false},
        {"2023-11-14T22:13:20", 0, false},
        {"2023-11-14T22:13:20.Z", 0, false},
        {"2023-11-14T22:13:20.1234567890Z", 0, false},
        {"2023-11-14 22:13:20Z", 0, false},
        {"2023-11-14T22:13:20+0100", 0, false},
        {"2023-11-14T22:13:20+24:00", 0, false},
        {"2023-11-14T22:13:20.123Zx", 0, false},
        {"23-11-14T22:13:20Z", 0, false},
        {"", 0, false},
        {"1700000000123", 0, false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t ms = -42;
        int rc = tb_parse_rfc3339_ms(cases[i].s, strlen(cases[i].s), &ms);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_true(ms == cases[i].ms);
        } else {
            assert_int_equal(rc, -1);
            assert_true(ms == -42);
        }
    }
    /* Only len bytes count: a valid time followed by more bytes outside len is read alone. */
    int64_t ms = 0;
    assert_int_equal(tb_parse_rfc3339_ms("1970-01-01T00:00:01Zjunk", 20, &ms), 0);
    assert_true(ms == 1000);
}

static void test_id_valid(void **state)
{
    (void)state;
    char longid[TB_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid));
    assert_true(tb_id_valid("sensor-01_a.b", 13));
    assert_true(tb_id_valid(longid, TB_ID_MAX));
    assert_false(tb_id_valid(longid, TB_ID_MAX + 1));
    assert_false(tb_id_valid("", 0));
    assert_false(tb_id_valid("a b", 3));
    assert_false(tb_id_valid("a:b", 3));
    assert_false(tb_id_valid("a/b", 3));
    assert_false(tb_id_valid("é", 2));
}

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"plain", 5, true},
        {"caf\xc3\xa9", 5, true},
        {"\xe2\x82\xac", 3, true},      /* € */
        {"\xf0\x9f\x98\x80", 4, true},  /* emoji */
        {"\xc3", 1, false},             /* truncated */
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
        {"\xff", 1, false},
        {"a\x80", 2, false}, /* stray continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (tb_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("utf8 case %zu", i);
}

static void test_redact_query(void **state)
{
    (void)state;
    char out[128];
    assert_string_equal(tb_log_redact_query("/ws?token=abc.def.ghi", out, sizeof(out)),
                        "/ws?token=REDACTED");
    assert_string_equal(tb_log_redact_query("/ws?a=1&ticket=T1&b=2", out, sizeof(out)),
                        "/ws?a=1&ticket=REDACTED&b=2");
    assert_string_equal(tb_log_redact_query("/ws?mytoken=x", out, sizeof(out)), "/ws?mytoken=x");
    assert_string_equal(tb_log_redact_query("/token=x", out, sizeof(out)), "/token=x");
    tb_log_redact_query("/ws?token=abcdefghijklmnop", out, 12);
    assert_string_equal(out, "/ws?token=R");
}

static void test_ratelimit(void **state)
{
    (void)state;
    tb_log_ratelimit_t rl = {0};
    unsigned suppressed = 99;
    assert_true(tb_log_ratelimit(&rl, &suppressed));
    assert_int_equal(suppressed, 0);
    int allowed = 0;
    for (int i = 0; i < 1000; i++)
        allowed += tb_log_ratelimit(&rl, &suppressed);
    /* The loop takes far less than a second, but it may straddle one boundary. */
    assert_true(allowed <= 1);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    tb_log_level_t l;
    assert_int_equal(tb_log_level_parse("debug", &l), 0);
    assert_int_equal(l, TB_LOG_DEBUG);
    assert_int_equal(tb_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, TB_LOG_WARN);
    assert_int_equal(tb_log_level_parse("loud", &l), -1);
}

static void test_groups(void **state)
{
    (void)state;
    char *a_pats[] = {"sensor-temp-001", "sensor-hum-*"};
    char *b_pats[] = {"*"};
    char *c_pats[] = {"sensor-hum-9"};
    tb_config_group_t cfg[] = {
        {.name = "building-a", .patterns = a_pats, .n_patterns = 2},
        {.name = "all", .patterns = b_pats, .n_patterns = 1},
        {.name = "nine", .patterns = c_pats, .n_patterns = 1},
    };
    tb_groups_t *g = tb_groups_create(cfg, 3);
    const char *names[TB_GROUPS_PER_DEVICE_MAX];
    assert_int_equal(tb_groups_of(g, "sensor-hum-9", names, TB_GROUPS_PER_DEVICE_MAX), 3);
    assert_string_equal(names[0], "building-a");
    assert_string_equal(names[1], "all");
    assert_string_equal(names[2], "nine");
    assert_int_equal(tb_groups_of(g, "sensor-temp-0011", names, TB_GROUPS_PER_DEVICE_MAX), 1);
    assert_string_equal(names[0], "all");
    assert_int_equal(tb_groups_of(g, "sensor-hum-9", names, 1), 1);
    tb_groups_destroy(g);
    g = tb_groups_create(NULL, 0);
    assert_int_equal(tb_groups_of(g, "x", names, TB_GROUPS_PER_DEVICE_MAX), 0);
    tb_groups_destroy(g);
}

static void test_read_file(void **state)
{
    (void)state;
    char path[] = "/tmp/tb-test-util-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello\n", 6), 6);
    close(fd);
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(tb_read_file(path, 6, &buf, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "hello\n");
    free(buf);
    buf = NULL;
    assert_int_equal(tb_read_file(path, 5, &buf, &len), -EFBIG);
    assert_null(buf);
    unlink(path);
    assert_int_equal(tb_read_file(path, 5, &buf, &len), -ENOENT);
    assert_null(buf);
}

/* The published FNV-1a test vectors; a length, not a NUL, ends the input. */
static void test_hash_fnv1a(void **state)
{
    (void)state;
    assert_int_equal(tb_hash_fnv1a("", 0), 0x811c9dc5u);
    assert_int_equal(tb_hash_fnv1a("a", 1), 0xe40c292cu);
    assert_int_equal(tb_hash_fnv1a("foobar", 6), 0xbf9cf968u);
    assert_int_equal(tb_hash_fnv1a("foobarXYZ", 6), 0xbf9cf968u);
    /* The 64-bit variant: the published FNV-1a test vectors. */
    assert_true(tb_hash_fnv1a64("", 0) == 0xcbf29ce484222325u);
    assert_true(tb_hash_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cu);
    assert_true(tb_hash_fnv1a64("foobarXYZ", 6) == 0x85944171f73967e8u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339),
        cmocka_unit_test(test_rfc3339_matches_gmtime),
        cmocka_unit_test(test_rfc3339_parse_round_trip),
        cmocka_unit_test(test_rfc3339_parse),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_redact_query),
        cmocka_unit_test(test_ratelimit),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_groups),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_hash_fnv1a),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
