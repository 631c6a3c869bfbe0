/* Tests for the history file (histfile.h): round trip, rotation, a torn tail cut at every
 * offset, corrupt and foreign files, records that break the rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "telebridge/histfile.h"

#define EPOCH "0123456789abcdef"
#define MAX_MSGS 64

/* What a load handed to its callback. */
typedef struct {
    size_t n;
    uint64_t seq[MAX_MSGS];
    int64_t ms[MAX_MSGS];
    char rooms[MAX_MSGS][64];
    char payload[MAX_MSGS][64];
} got_t;

static void collect(void *arg, const tb_histfile_msg_t *m)
{
    got_t *g = arg;
    assert_true(g->n < MAX_MSGS);
    g->seq[g->n] = m->seq;
    g->ms[g->n] = m->ms;
    snprintf(g->rooms[g->n], sizeof(g->rooms[0]), "%s|%s", m->rooms,
             m->n_rooms > 1 ? m->rooms + strlen(m->rooms) + 1 : "");
    snprintf(g->payload[g->n], sizeof(g->payload[0]), "%.*s", (int)m->len, m->payload);
    g->n++;
}

typedef struct {
    char dir[64];
    char path[96];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tb-histfile-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/history", f->dir);
    *state = f;
    return 0;
}

static void remove_with(const char *path, const char *suffix)
{
    char p[128];
    snprintf(p, sizeof(p), "%s%s", path, suffix);
    unlink(p);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    remove_with(f->path, "");
    remove_with(f->path, ".1");
    remove_with(f->path, ".tmp");
    remove_with(f->path, ".lock");
    rmdir(f->dir);
    free(f);
    return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Appends message seq (payload {"n":seq}, rooms device:d<seq % 3> and global, at seq * 10). */
static void append(tb_histfile_t *hf, uint64_t seq)
{
    char payload[32], rooms[32];
    int len = snprintf(payload, sizeof(payload), "{\"n\":%llu}", (unsigned long long)seq);
    int rl = snprintf(rooms, sizeof(rooms), "device:d%llu", (unsigned long long)(seq % 3));
    memcpy(rooms + rl + 1, "global", 7);
    tb_frame_t *fr = tb_frame_new(payload, (size_t)len, TB_FRAME_TELEMETRY, seq);
    assert_non_null(fr);
    tb_histfile_append(hf, fr, (int64_t)seq * 10, rooms, 2);
    tb_frame_unref(fr);
}

/* A committed file holding messages first..last (segments of capacity), not closed. */
static tb_histfile_t *write_file(const fixture_t *f, size_t capacity, uint64_t first, uint64_t last)
{
    char err[256];
    tb_histfile_t *hf = tb_histfile_open(f->path, capacity, err, sizeof(err));
    assert_non_null(hf);
    assert_int_equal(tb_histfile_begin(hf, EPOCH, 5, first - 1, err, sizeof(err)), 0);
    assert_int_equal(tb_histfile_commit(hf, err, sizeof(err)), 0);
    for (uint64_t s = first; s <= last; s++)
        append(hf, s);
    tb_histfile_flush(hf);
    return hf;
}

static int load(const fixture_t *f, got_t *g, tb_histfile_loaded_t *l)
{
    char err[256] = "";
    memset(g, 0, sizeof(*g));
    int rc = tb_histfile_load(f->path, collect, g, l, err, sizeof(err));
    if (rc)
        assert_true(err[0] != '\0');
    return rc;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_round_trip(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    tb_histfile_close(write_file(f, 16, 1, 10));
    assert_int_equal(load(f, &g, &l), 0);
    assert_string_equal(l.epoch, EPOCH);
    assert_true(l.clean && l.same_boot);
    assert_int_equal(l.messages, 10);
    assert_int_equal(l.last_seq, 10);
    assert_int_equal(l.ignored_bytes, 0);
    assert_true(l.horizon_ms == 5);
    assert_int_equal(g.n, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(g.seq[i], i + 1);
        assert_true(g.ms[i] == (int64_t)(i + 1) * 10);
    }
    assert_string_equal(g.rooms[3], "device:d1|global");
    assert_string_equal(g.payload[3], "{\"n\":4}");
    assert_int_equal(file_size(f->path) > 0, 1);
}

/* No file: a fresh start, no error. */
static void test_missing_file(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    assert_int_equal(load(f, &g, &l), 0);
    assert_string_equal(l.epoch, "");
    assert_int_equal(g.n, 0);
}

/* Segments of 4: PATH.1 keeps the previous 4, PATH the rest; a load reads both in order, and
 * the horizon is PATH.1's (the last message before it); without PATH.1, PATH's own. */
static void test_rotation_keeps_two_segments(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    char old[128];
    snprintf(old, sizeof(old), "%s.1", f->path);
    tb_histfile_t *hf = write_file(f, 4, 1, 10); /* PATH.1: 5..8, PATH: 9, 10 */
    assert_int_equal(load(f, &g, &l), 0);
    assert_int_equal(g.n, 6);
    assert_int_equal(g.seq[0], 5);
    assert_int_equal(g.seq[5], 10);
    assert_true(l.horizon_ms == 40);
    assert_false(l.clean);
    assert_true(l.same_boot);
    tb_histfile_close(hf);
    unlink(old);
    assert_int_equal(load(f, &g, &l), 0);
    assert_int_equal(g.n, 2);
    assert_true(l.horizon_ms == 80);
    assert_true(l.clean);
}

/* Writes bytes[0..len) as the file at path. */
static void write_bytes(const char *path, const unsigned char *bytes, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    fclose(fp);
}

/* Copies the file at from to to. */
static void copy_file(const char *from, const char *to)
{
    static unsigned char bytes[8192];
    FILE *fp = fopen(from, "rb");
    assert_non_null(fp);
    size_t n = fread(bytes, 1, sizeof(bytes), fp);
    fclose(fp);
    write_bytes(to, bytes, n);
}

/* Stopped at start-up between the rename of the rewritten PATH and the removal of PATH.1: the
 * rewritten PATH holds what was restored, so PATH.1 is not read before it. */
static void test_rewrite_cut_before_removing_old(void **state)
{
    fixture_t *f = *state;
    char err[256], old[128], saved[128];
    got_t g;
    tb_histfile_loaded_t l;
    snprintf(old, sizeof(old), "%s.1", f->path);
    snprintf(saved, sizeof(saved), "%s.saved", f->path);
    tb_histfile_close(write_file(f, 4, 1, 6)); /* PATH.1: 1..4, PATH: 5, 6 */
    copy_file(old, saved);
    tb_histfile_t *hf = tb_histfile_open(f->path, 8, err, sizeof(err));
    assert_non_null(hf);
    assert_int_equal(tb_histfile_begin(hf, EPOCH, 20, 2, err, sizeof(err)), 0);
    for (uint64_t s = 3; s <= 6; s++)
        append(hf, s); /* the restored ring of 4 */
    assert_int_equal(tb_histfile_commit(hf, err, sizeof(err)), 0);
    append(hf, 7);
    tb_histfile_flush(hf);
    copy_file(saved, old); /* as if the start had stopped before unlink(PATH.1) */
    unlink(saved);
    assert_int_equal(load(f, &g, &l), 0);
    assert_int_equal(g.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(g.seq[i], i + 3);
    assert_true(l.horizon_ms == 20);
    tb_histfile_close(hf);
}

/* A crash cut the last record at any byte: the messages before it load, the rest is ignored. */
static void test_torn_tail_at_every_offset(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    static unsigned char bytes[4096];
    tb_histfile_t *hf = write_file(f, 16, 1, 4);
    long before_last = file_size(f->path);
    append(hf, 5);
    tb_histfile_flush(hf);
    long full = file_size(f->path);
    assert_true(full > before_last + TB_HISTFILE_RECORD_OVERHEAD && full < (long)sizeof(bytes));
    tb_histfile_close(hf); /* adds a CLOSE record, cut off below */
    FILE *fp = fopen(f->path, "rb");
    assert_int_equal(fread(bytes, 1, (size_t)full, fp), (size_t)full);
    fclose(fp);
    for (long cut = before_last; cut <= full; cut++) {
        write_bytes(f->path, bytes, (size_t)cut);
        assert_int_equal(load(f, &g, &l), 0);
        assert_string_equal(l.epoch, EPOCH);
        assert_int_equal(g.n, cut == full ? 5 : 4);
        assert_int_equal(l.last_seq, cut == full ? 5 : 4);
        assert_int_equal(l.ignored_bytes, cut == full ? 0 : (size_t)(cut - before_last));
        assert_false(l.clean);
    }
}

/* A flipped byte anywhere in a record ends the valid prefix there. */
static void test_corrupt_record_ends_prefix(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    tb_histfile_t *hf = write_file(f, 16, 1, 2);
    long third = file_size(f->path);
    append(hf, 3);
    append(hf, 4);
    tb_histfile_close(hf);
    long fourth_at = third + (file_size(f->path) - third - 9) / 2;
    FILE *fp = fopen(f->path, "r+b");
    for (long at = third; at < fourth_at; at++) {
        int c;
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        c = fgetc(fp);
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        fputc(c ^ 0x20, fp);
        fflush(fp);
        assert_int_equal(load(f, &g, &l), 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(fseek(fp, at, SEEK_SET), 0);
        fputc(c, fp);
        fflush(fp);
    }
    fclose(fp);
    assert_int_equal(load(f, &g, &l), 0);
    assert_int_equal(g.n, 4);
}

/* Files that are not history files (or whose header is damaged) are refused, never crash. */
static void test_foreign_and_damaged_files(void **state)
{
    fixture_t *f = *state;
    got_t g;
    tb_histfile_loaded_t l;
    static const char *const foreign[] = {"", "TBHIST1", "TBHIST1\n", "hello, world\n",
                                          "{\"history\": []}"};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        FILE *fp = fopen(f->path, "wb");
        fwrite(foreign[i], 1, strlen(foreign[i]), fp);
        fclose(fp);
        assert_int_equal(load(f, &g, &l), -1);
        assert_int_equal(g.n, 0);
    }
    tb_histfile_close(write_file(f, 16, 1, 3));
    FILE *fp = fopen(f->path, "r+b");
    fseek(fp, TB_HISTFILE_MAGIC_LEN + 10, SEEK_SET);
    fputc('X', fp); /* in the header's epoch: its CRC fails */
    fclose(fp);
    assert_int_equal(load(f, &g, &l), -1);
    assert_int_equal(g.n, 0);
}

/* Builds a one-message segment with the given body fields, CRC right; parses it. */
static size_t parse_crafted(uint8_t kind, uint8_t n_rooms, const char *rooms, size_t rooms_len,
                            const char *payload, uint64_t seq, uint64_t after)
{
    unsigned char buf[512], *p = buf;
    memcpy(p, TB_HISTFILE_MAGIC, TB_HISTFILE_MAGIC_LEN);
    p += TB_HISTFILE_MAGIC_LEN;
    unsigned char hdr[1 + TB_HISTFILE_EPOCH_LEN + TB_HISTFILE_BOOT_LEN + 16] = {1};
    memcpy(hdr + 1, EPOCH, TB_HISTFILE_EPOCH_LEN);
    unsigned char body[256] = {2};
    size_t bl = 1;
    for (int i = 0; i < 8; i++)
        body[bl++] = (unsigned char)(seq >> (8 * i));
    for (int i = 0; i < 8; i++)
        body[bl++] = 0;
    body[bl++] = kind;
    body[bl++] = n_rooms;
    memcpy(body + bl, rooms, rooms_len);
    bl += rooms_len;
    memcpy(body + bl, payload, strlen(payload));
    bl += strlen(payload);
    const unsigned char *parts[2] = {hdr, body};
    size_t lens[2] = {sizeof(hdr), bl};
    for (int k = 0; k < 2; k++) {
        uint32_t n = (uint32_t)lens[k], crc = (uint32_t)crc32(0, parts[k], n);
        for (int i = 0; i < 4; i++)
            *p++ = (unsigned char)(n >> (8 * i));
        for (int i = 0; i < 4; i++)
            *p++ = (unsigned char)(crc >> (8 * i));
        memcpy(p, parts[k], n);
        p += n;
    }
    tb_histfile_segment_t seg;
    assert_int_equal(tb_histfile_parse(buf, (size_t)(p - buf), after, NULL, NULL, &seg), 0);
    return seg.messages;
}

/* Records with a valid CRC that break a rule end the prefix (the file came from elsewhere). */
static void test_rule_breaking_records(void **state)
{
    (void)state;
    static const char global[] = "global";
    assert_int_equal(parse_crafted(1, 1, global, sizeof(global), "{}", 7, 0), 1);
    assert_int_equal(parse_crafted(9, 1, global, sizeof(global), "{}", 7, 0), 0); /* kind */
    assert_int_equal(parse_crafted(1, 0, "", 0, "{}", 7, 0), 0);                  /* no room */
    assert_int_equal(parse_crafted(1, 2, global, sizeof(global), "{}", 7, 0), 0); /* count */
    assert_int_equal(parse_crafted(1, 1, "bogus", 6, "{}", 7, 0), 0);             /* name */
    assert_int_equal(parse_crafted(1, 1, global, sizeof(global) - 1, "{}", 7, 0), 0);
    assert_int_equal(parse_crafted(1, 1, global, sizeof(global), "[]", 7, 0), 0); /* object */
    assert_int_equal(parse_crafted(1, 1, global, sizeof(global), "{}", 7, 7), 0); /* seq */
    assert_int_equal(parse_crafted(1, 1, global, sizeof(global), "{}", 0, 0), 0);
}

/* One writer per file: a second one is refused while the first lives, allowed after. */
static void test_second_writer_refused(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    tb_histfile_t *a = write_file(f, 16, 1, 2);
    assert_null(tb_histfile_open(f->path, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "another bridge"));
    tb_histfile_close(a);
    tb_histfile_t *b = tb_histfile_open(f->path, 16, err, sizeof(err));
    assert_non_null(b);
    tb_histfile_close(b); /* nothing begun: the file stays as a left it */
    got_t g;
    tb_histfile_loaded_t l;
    assert_int_equal(load(f, &g, &l), 0);
    assert_int_equal(g.n, 2);
    assert_true(l.clean);
}

/* A write error (here the file size limit, as a full disk would) turns the writer off and
 * removes the files: the next start must not restore a last seq older than what was sent. */
static void test_write_error_removes_the_file(void **state)
{
    fixture_t *f = *state;
    struct rlimit old, small = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    got_t g;
    tb_histfile_loaded_t l;
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    tb_histfile_t *hf = write_file(f, 1000, 1, 2);
    assert_true(tb_histfile_on(hf));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    for (uint64_t s = 3; s < 200 && tb_histfile_on(hf); s++) {
        append(hf, s);
        tb_histfile_flush(hf);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_false(tb_histfile_on(hf));
    assert_int_equal(file_size(f->path), -1);
    append(hf, 500); /* a no-op once off */
    tb_histfile_close(hf);
    assert_int_equal(file_size(f->path), -1);
    assert_int_equal(load(f, &g, &l), 0);
    assert_string_equal(l.epoch, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_round_trip),
        TEST(test_missing_file),
        TEST(test_rotation_keeps_two_segments),
        TEST(test_torn_tail_at_every_offset),
        TEST(test_rewrite_cut_before_removing_old),
        TEST(test_corrupt_record_ends_prefix),
        TEST(test_foreign_and_damaged_files),
        TEST(test_second_writer_refused),
        TEST(test_write_error_removes_the_file),
        cmocka_unit_test(test_rule_breaking_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
