/* histfile — the history on disk; see include/telebridge/histfile.h. */
#include "telebridge/histfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "telebridge/log.h"
#include "telebridge/room.h"
#include "telebridge/util.h"

enum { REC_HEADER = 1, REC_MESSAGE = 2, REC_CLOSE = 3 };

/* Record framing: length, CRC. Header body: type, epoch, boot id, horizon. Message body before
 * its rooms: type, seq, ms, kind, room count. */
#define FRAME_BYTES 8
#define HEADER_BODY (1 + TB_HISTFILE_EPOCH_LEN + TB_HISTFILE_BOOT_LEN + 8 + 8)
#define MESSAGE_FIXED 19
#define MAX_ROOMS 255
#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"

_Static_assert(FRAME_BYTES + MESSAGE_FIXED == TB_HISTFILE_RECORD_OVERHEAD,
               "the documented overhead is the framing plus the fixed message fields");

/* ---- little-endian fields ---------------------------------------------------------------- */

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static unsigned char *put64(unsigned char *p, uint64_t v)
{
    return put32(put32(p, (uint32_t)v), (uint32_t)(v >> 32));
}

static uint32_t crc_of(const unsigned char *p, size_t len)
{
    return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)len);
}

/* ---- parsing ------------------------------------------------------------------------------ */

/* The header body b[0..len) into seg; false when it is not one. */
static bool parse_header(const unsigned char *b, size_t len, tb_histfile_segment_t *seg)
{
    if (len != HEADER_BODY || b[0] != REC_HEADER)
        return false;
    memcpy(seg->epoch, b + 1, TB_HISTFILE_EPOCH_LEN);
    seg->epoch[TB_HISTFILE_EPOCH_LEN] = '\0';
    for (size_t i = 0; i < TB_HISTFILE_EPOCH_LEN; i++)
        if (!((seg->epoch[i] >= '0' && seg->epoch[i] <= '9') ||
              (seg->epoch[i] >= 'a' && seg->epoch[i] <= 'f')))
            return false;
    memcpy(seg->boot, b + 1 + TB_HISTFILE_EPOCH_LEN, TB_HISTFILE_BOOT_LEN);
    seg->boot[TB_HISTFILE_BOOT_LEN] = '\0';
    seg->horizon_ms = (int64_t)get64(b + 1 + TB_HISTFILE_EPOCH_LEN + TB_HISTFILE_BOOT_LEN);
    seg->seq_base = get64(b + 1 + TB_HISTFILE_EPOCH_LEN + TB_HISTFILE_BOOT_LEN + 8);
    return true;
}

/* The byte after n NUL-terminated valid room names starting at p, before end; NULL when
 * p[0..end) does not start with them. */
static const char *rooms_end(const char *p, const char *end, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul || nul == p || (size_t)(nul - p) > TB_ROOM_MAX ||
            tb_room_parse(p, (size_t)(nul - p), NULL, NULL) == TB_ROOM_INVALID)
            return NULL;
        p = nul + 1;
    }
    return p;
}

/* The message body b[0..len) into *m; false when it breaks a rule. */
static bool parse_message(const unsigned char *b, size_t len, uint64_t after, tb_histfile_msg_t *m)
{
    if (len < MESSAGE_FIXED || b[0] != REC_MESSAGE)
        return false;
    m->seq = get64(b + 1);
    m->ms = (int64_t)get64(b + 9);
    m->kind = b[17];
    m->n_rooms = b[18];
    if (m->seq <= after || m->kind >= TB_FRAME_KIND_N || m->n_rooms == 0)
        return false;
    const char *rooms = (const char *)b + MESSAGE_FIXED, *end = (const char *)b + len;
    const char *p = rooms_end(rooms, end, m->n_rooms);
    if (!p)
        return false;
    m->rooms = rooms;
    m->payload = p;
    m->len = (size_t)(end - p);
    return m->len >= 2 && m->payload[0] == '{' && m->payload[m->len - 1] == '}';
}

/* The body of the record at buf[at..len), its length in *body_len; NULL when there is none
 * whole with a matching CRC. */
static const unsigned char *next_body(const unsigned char *buf, size_t len, size_t at,
                                      size_t *body_len)
{
    if (len - at < FRAME_BYTES)
        return NULL;
    uint32_t n = get32(buf + at), crc = get32(buf + at + 4);
    if (n == 0 || n > len - at - FRAME_BYTES)
        return NULL;
    const unsigned char *body = buf + at + FRAME_BYTES;
    if (crc_of(body, n) != crc)
        return NULL;
    *body_len = n;
    return body;
}

int tb_histfile_parse(const unsigned char *buf, size_t len, uint64_t after, tb_histfile_msg_fn fn,
                      void *arg, tb_histfile_segment_t *seg)
{
    size_t at = TB_HISTFILE_MAGIC_LEN, n;
    memset(seg, 0, sizeof(*seg));
    seg->last_seq = after;
    if (len < at || memcmp(buf, TB_HISTFILE_MAGIC, at) != 0)
        return -1;
    const unsigned char *body = next_body(buf, len, at, &n);
    if (!body || !parse_header(body, n, seg))
        return -1;
    at += FRAME_BYTES + n;
    seg->valid_bytes = at;
    if (seg->seq_base > seg->last_seq)
        seg->last_seq = seg->seq_base;
    while ((body = next_body(buf, len, at, &n)) && !seg->closed) {
        tb_histfile_msg_t m;
        if (n == 1 && body[0] == REC_CLOSE) {
            seg->closed = true;
        } else if (parse_message(body, n, seg->last_seq, &m)) {
            if (fn)
                fn(arg, &m);
            seg->messages++;
            seg->last_seq = m.seq;
        } else {
            break;
        }
        at += FRAME_BYTES + n;
        seg->valid_bytes = at;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* This boot's id into out ("" when it cannot be read). */
static void read_boot_id(char out[TB_HISTFILE_BOOT_LEN + 1])
{
    memset(out, 0, TB_HISTFILE_BOOT_LEN + 1);
    FILE *f = fopen(BOOT_ID_FILE, "r");
    if (!f)
        return;
    size_t n = fread(out, 1, TB_HISTFILE_BOOT_LEN, f);
    fclose(f);
    out[n] = '\0';
}

/* A file's bytes, mapped read-only. */
typedef struct {
    unsigned char *p;
    size_t len;
    bool exists;
} mapped_t;

/* Maps path; 0 (m->exists false when there is no such file), or -1 with err. */
static int map_file(const char *path, mapped_t *m, char *err, size_t errlen)
{
    struct stat st;
    memset(m, 0, sizeof(*m));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        tb_set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    m->exists = true;
    if (fstat(fd, &st) != 0) {
        tb_set_err(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    m->len = (size_t)st.st_size;
    if (m->len) {
        void *p = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            tb_set_err(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        m->p = p;
    }
    close(fd);
    return 0;
}

static void unmap_file(mapped_t *m)
{
    if (m->p)
        munmap(m->p, m->len);
}

/* path + suffix in a new string; NULL when out of memory. */
static char *path_with(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, path, a);
        memcpy(s + a, suffix, b + 1);
    }
    return s;
}

/* Fills out from the segment that holds the last messages. */
static void loaded_from(tb_histfile_loaded_t *out, const tb_histfile_segment_t *last,
                        const char *boot)
{
    snprintf(out->epoch, sizeof(out->epoch), "%s", last->epoch);
    out->last_seq = last->last_seq;
    out->clean = last->closed;
    out->same_boot = strcmp(last->boot, boot) == 0;
}

int tb_histfile_load(const char *path, tb_histfile_msg_fn fn, void *arg, tb_histfile_loaded_t *out,
                     char *err, size_t errlen)
{
    mapped_t cur = {0}, old = {0};
    tb_histfile_segment_t sc, so;
    char boot[TB_HISTFILE_BOOT_LEN + 1];
    char *old_path = path_with(path, ".1");
    int rc = -1;
    memset(out, 0, sizeof(*out));
    read_boot_id(boot);
    if (!old_path) {
        tb_set_err(err, errlen, "out of memory");
        return -1;
    }
    if (map_file(path, &cur, err, errlen) || map_file(old_path, &old, err, errlen))
        goto done;
    bool cur_ok = cur.exists && tb_histfile_parse(cur.p, cur.len, 0, NULL, NULL, &sc) == 0;
    /* PATH.1 counts when PATH goes on where it ends (a rotation): a PATH whose seq base is
     * below PATH.1's end was rewritten at a start that stopped before removing PATH.1, and
     * holds all of it that was restored. */
    bool old_ok = old.exists && tb_histfile_parse(old.p, old.len, 0, NULL, NULL, &so) == 0 &&
                  (!cur_ok || (strcmp(so.epoch, sc.epoch) == 0 && so.last_seq <= sc.seq_base));
    uint64_t after = 0;
    if (old_ok) {
        tb_histfile_parse(old.p, old.len, 0, fn, arg, &so);
        out->horizon_ms = so.horizon_ms;
        out->messages = so.messages;
        out->ignored_bytes = old.len - so.valid_bytes;
        loaded_from(out, &so, boot);
        out->clean = false; /* PATH.1 ends where a rotation cut it */
        after = so.last_seq;
    }
    if (cur_ok) {
        tb_histfile_parse(cur.p, cur.len, after, fn, arg, &sc);
        if (!old_ok)
            out->horizon_ms = sc.horizon_ms;
        out->messages += sc.messages;
        out->ignored_bytes += cur.len - sc.valid_bytes;
        loaded_from(out, &sc, boot);
    } else if (cur.exists) {
        out->ignored_bytes += cur.len;
    }
    if (!old_ok && !cur_ok && (cur.exists || old.exists)) {
        tb_set_err(err, errlen, "%s: not a history file (or its header is damaged)",
                   cur.exists ? path : old_path);
        goto done;
    }
    rc = 0;
done:
    unmap_file(&cur);
    unmap_file(&old);
    free(old_path);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------------ */

struct tb_histfile {
    int fd;             /* the segment being written: PATH.tmp until the commit, then PATH; or -1 */
    int lock;           /* PATH.lock, flock()ed for the writer's life */
    char *path;         /* PATH */
    char *tmp;          /* PATH.tmp */
    char *old;          /* PATH.1 */
    char *folder;       /* PATH's folder, fsync()ed after a rename */
    unsigned char *buf; /* appended, not yet written: len of cap bytes */
    size_t len, cap;
    size_t capacity;   /* messages per segment */
    size_t in_segment; /* messages in the current segment */
    uint64_t size;     /* bytes of the current segment, buffered ones included */
    int64_t last_ms;   /* recording time of the last message appended */
    uint64_t last_seq; /* its seq (the seq base of a new segment) */
    char epoch[TB_HISTFILE_EPOCH_LEN + 1];
    char boot[TB_HISTFILE_BOOT_LEN + 1];
    bool off;          /* a write failed: nothing more is written */
    bool committed;    /* the segment is PATH (tb_histfile_commit()) */
    bool unsynced;     /* written since the last fdatasync() */
    bool folder_dirty; /* a rename since the last sync */
};

/* Turns the writer off after a failure of what (errno err), logging it once. */
static void writer_off(tb_histfile_t *hf, const char *what, int err)
{
    if (hf->off)
        return;
    hf->off = true;
    hf->len = 0;
    /* The seqs go on in memory: a file left behind would bring back an older last seq and the
     * same epoch at the next start, and seqs clients saw would name other messages. Without it
     * the next start is a fresh one (removing works on a full disk). */
    unlink(hf->path);
    unlink(hf->old);
    unlink(hf->tmp);
    tb_log(TB_LOG_ERROR,
           "history file off and removed: the bridge carries on with its history in memory",
           "path=\"%s\" op=%s error=\"%s\"", hf->path, what, strerror(err));
}

/* Room for more bytes in the buffer; false (writer off) when out of memory. */
static bool reserve(tb_histfile_t *hf, size_t more)
{
    if (hf->cap - hf->len >= more)
        return true;
    size_t cap = hf->cap ? hf->cap : 4096;
    while (cap - hf->len < more)
        cap *= 2;
    unsigned char *b = realloc(hf->buf, cap);
    if (!b) {
        writer_off(hf, "buffer", ENOMEM);
        return false;
    }
    hf->buf = b;
    hf->cap = cap;
    return true;
}

/* Frames the body just written at buf[at + FRAME_BYTES ..len) with its length and CRC. */
static void seal(tb_histfile_t *hf, size_t at)
{
    size_t n = hf->len - at - FRAME_BYTES;
    unsigned char *p = put32(hf->buf + at, (uint32_t)n);
    put32(p, crc_of(hf->buf + at + FRAME_BYTES, n));
    hf->size += hf->len - at;
}

/* Buffers the magic and a header record for a new segment. */
static void put_header(tb_histfile_t *hf, int64_t horizon_ms, uint64_t seq_base)
{
    if (!reserve(hf, TB_HISTFILE_MAGIC_LEN + FRAME_BYTES + HEADER_BODY))
        return;
    memcpy(hf->buf + hf->len, TB_HISTFILE_MAGIC, TB_HISTFILE_MAGIC_LEN);
    hf->len += TB_HISTFILE_MAGIC_LEN;
    hf->size += TB_HISTFILE_MAGIC_LEN;
    size_t at = hf->len;
    unsigned char *p = hf->buf + at + FRAME_BYTES;
    *p++ = REC_HEADER;
    memcpy(p, hf->epoch, TB_HISTFILE_EPOCH_LEN);
    memcpy(p + TB_HISTFILE_EPOCH_LEN, hf->boot, TB_HISTFILE_BOOT_LEN);
    put64(put64(p + TB_HISTFILE_EPOCH_LEN + TB_HISTFILE_BOOT_LEN, (uint64_t)horizon_ms), seq_base);
    hf->len = at + FRAME_BYTES + HEADER_BODY;
    seal(hf, at);
}

/* Opens name for a new segment (truncated); the descriptor, or -1 (writer off). */
static int open_segment(tb_histfile_t *hf, const char *name)
{
    int fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        writer_off(hf, "open", errno);
    return fd;
}

/* Frees hf's strings and buffer, closes its descriptors (the lock's last). */
static void writer_free(tb_histfile_t *hf)
{
    if (hf->fd >= 0)
        close(hf->fd);
    if (hf->lock >= 0)
        close(hf->lock); /* releases the flock() */
    free(hf->path);
    free(hf->tmp);
    free(hf->old);
    free(hf->folder);
    free(hf->buf);
    free(hf);
}

/* Takes PATH.lock (created if need be) for this process; 0, or -1 with err. */
static int take_lock(tb_histfile_t *hf, const char *path, char *err, size_t errlen)
{
    char *name = path_with(path, ".lock");
    if (!name) {
        tb_set_err(err, errlen, "out of memory");
        return -1;
    }
    hf->lock = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (hf->lock < 0 || flock(hf->lock, LOCK_EX | LOCK_NB) != 0) {
        tb_set_err(err, errlen, "%s: %s", name,
                   errno == EWOULDBLOCK ? "held by another bridge: every bridge needs its own "
                                          "history.file"
                                        : strerror(errno));
        free(name);
        return -1;
    }
    free(name);
    return 0;
}

tb_histfile_t *tb_histfile_open(const char *path, size_t capacity, char *err, size_t errlen)
{
    tb_histfile_t *hf = calloc(1, sizeof(*hf));
    char *copy = NULL;
    if (!hf) {
        tb_set_err(err, errlen, "out of memory");
        return NULL;
    }
    hf->fd = hf->lock = -1;
    if (!(hf->path = path_with(path, "")) || !(hf->tmp = path_with(path, ".tmp")) ||
        !(hf->old = path_with(path, ".1")) || !(copy = path_with(path, "")) ||
        !(hf->folder = path_with(dirname(copy), ""))) {
        tb_set_err(err, errlen, "out of memory");
        goto fail;
    }
    free(copy);
    copy = NULL;
    hf->capacity = capacity ? capacity : 1;
    read_boot_id(hf->boot);
    if (take_lock(hf, path, err, errlen))
        goto fail;
    return hf;
fail:
    free(copy);
    writer_free(hf);
    return NULL;
}

int tb_histfile_begin(tb_histfile_t *hf, const char *epoch, int64_t horizon_ms, uint64_t seq_base,
                      char *err, size_t errlen)
{
    snprintf(hf->epoch, sizeof(hf->epoch), "%s", epoch);
    if ((hf->fd = open_segment(hf, hf->tmp)) < 0) {
        tb_set_err(err, errlen, "%s: %s", hf->tmp, strerror(errno));
        return -1;
    }
    put_header(hf, horizon_ms, seq_base);
    if (hf->off) {
        tb_set_err(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void tb_histfile_flush(tb_histfile_t *hf)
{
    size_t done = 0;
    if (hf->fd < 0)
        return;
    while (!hf->off && done < hf->len) {
        ssize_t n = write(hf->fd, hf->buf + done, hf->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* A partial record at the end would hide every later one: the file stays torn
             * there (the next start ignores that tail) and nothing more is written. */
            writer_off(hf, "write", n < 0 ? errno : ENOSPC);
            return;
        }
        done += (size_t)n;
    }
    hf->unsynced |= hf->len > 0;
    hf->len = 0;
}

/* fsync() of PATH's folder, so that a rename survives a power loss. */
static void sync_folder(tb_histfile_t *hf)
{
    int fd = open(hf->folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    hf->folder_dirty = false;
}

void tb_histfile_sync(tb_histfile_t *hf)
{
    if (hf->off || hf->fd < 0)
        return;
    if (hf->unsynced && fdatasync(hf->fd) != 0) {
        writer_off(hf, "fdatasync", errno);
        return;
    }
    hf->unsynced = false;
    if (hf->folder_dirty)
        sync_folder(hf);
}

int tb_histfile_commit(tb_histfile_t *hf, char *err, size_t errlen)
{
    if (hf->fd < 0 || hf->committed) {
        tb_set_err(err, errlen, "no new segment to commit");
        return -1;
    }
    tb_histfile_flush(hf);
    tb_histfile_sync(hf);
    if (!hf->off && rename(hf->tmp, hf->path) != 0)
        writer_off(hf, "rename", errno);
    if (hf->off) {
        tb_set_err(err, errlen, "%s: cannot write the history file", hf->tmp);
        unlink(hf->tmp);
        return -1;
    }
    hf->committed = true;
    unlink(hf->old);
    sync_folder(hf);
    return 0;
}

/* PATH becomes PATH.1 and a new PATH starts, its horizon the last message's time. */
static void rotate(tb_histfile_t *hf)
{
    tb_histfile_flush(hf);
    if (hf->off)
        return;
    close(hf->fd);
    hf->fd = -1;
    if (rename(hf->path, hf->old) != 0) {
        writer_off(hf, "rename", errno);
        return;
    }
    if ((hf->fd = open_segment(hf, hf->path)) < 0)
        return;
    hf->in_segment = 0;
    hf->size = 0;
    hf->unsynced = true;
    hf->folder_dirty = true;
    put_header(hf, hf->last_ms, hf->last_seq);
}

void tb_histfile_append(tb_histfile_t *hf, const tb_frame_t *f, int64_t ms, const char *rooms,
                        size_t n_rooms)
{
    if (hf->off || hf->fd < 0 || n_rooms == 0 || n_rooms > MAX_ROOMS)
        return;
    if (hf->in_segment >= hf->capacity)
        rotate(hf);
    size_t rooms_len = 0;
    for (size_t i = 0; i < n_rooms; i++)
        rooms_len += strlen(rooms + rooms_len) + 1;
    size_t body = MESSAGE_FIXED + rooms_len + f->len;
    if (hf->off || body > UINT32_MAX || !reserve(hf, FRAME_BYTES + body))
        return;
    size_t at = hf->len;
    unsigned char *p = hf->buf + at + FRAME_BYTES;
    *p++ = REC_MESSAGE;
    p = put64(p, f->seq);
    p = put64(p, (uint64_t)ms);
    *p++ = f->kind;
    *p++ = (unsigned char)n_rooms;
    memcpy(p, rooms, rooms_len);
    memcpy(p + rooms_len, f->data + TB_FRAME_HEADROOM, f->len);
    hf->len = at + FRAME_BYTES + body;
    seal(hf, at);
    hf->in_segment++;
    hf->last_ms = ms;
    hf->last_seq = f->seq;
    if (hf->len > TB_HISTFILE_BUFFER)
        tb_histfile_flush(hf);
}

bool tb_histfile_on(const tb_histfile_t *hf)
{
    return !hf->off;
}

uint64_t tb_histfile_size(const tb_histfile_t *hf)
{
    return hf->size;
}

void tb_histfile_close(tb_histfile_t *hf)
{
    if (!hf)
        return;
    if (hf->committed && !hf->off && reserve(hf, FRAME_BYTES + 1)) {
        size_t at = hf->len;
        hf->buf[at + FRAME_BYTES] = REC_CLOSE;
        hf->len = at + FRAME_BYTES + 1;
        seal(hf, at);
    }
    if (hf->fd >= 0) {
        tb_histfile_flush(hf);
        tb_histfile_sync(hf);
    }
    if (!hf->committed && hf->fd >= 0)
        unlink(hf->tmp);
    writer_free(hf);
}
