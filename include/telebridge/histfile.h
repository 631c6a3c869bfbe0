/*
 * histfile — the history ring and the epoch on disk (history.file), so that a restart of the
 * same bridge keeps its epoch, its last seq and the messages `since` replays.
 *
 * Files: PATH, the segment being appended to, PATH.1, the one before it, and PATH.lock, which
 * the writer holds. A segment is the
 * 8 bytes TB_HISTFILE_MAGIC, then records. A record is its body's length (u32, little-endian),
 * the CRC-32 (zlib) of the body, then the body, whose first byte is its type:
 *   HEADER   the first record of every segment: the epoch (TB_HISTFILE_EPOCH_LEN hex digits),
 *            the boot id of the machine that wrote it (TB_HISTFILE_BOOT_LEN bytes, from
 *            /proc/sys/kernel/random/boot_id), the horizon (i64 Unix ms, history.h: every message
 *            recorded after it is in this segment or a later one), the seq base (u64: the
 *            bridge's last seq before this segment's first message);
 *   MESSAGE  seq (u64), recording time (i64 Unix ms), frame kind (u8), room count (u8), the
 *            room names each NUL-terminated, then the frame's payload (the envelope's bytes);
 *   CLOSE    empty: the bridge stopped cleanly after the record before it.
 * Integers are little-endian. A record cut short, failing its CRC or breaking a rule (a seq not
 * above the one before, bad room names, a first record that is no header) ends the segment:
 * what precedes it is the valid prefix, the rest is ignored (a torn tail after a crash).
 *
 * Writing: each routed message is appended to a buffer, which tb_histfile_flush() writes with
 * one write() — per batch, before the batch's frames go to any socket, so a process crash
 * (SIGKILL included) never loses from the file a message a client was sent. The buffer is also
 * written whenever it passes TB_HISTFILE_BUFFER. tb_histfile_sync() (once a second) fdatasync()s
 * what was written since the last: a power loss may lose up to that second. A segment holds at
 * most `capacity` messages; the next one renames PATH to PATH.1 (dropping the older PATH.1) and
 * starts a new PATH, so both hold at most 2 × capacity messages together. A write error turns
 * the writer off and removes the files (logged once): the bridge carries on in memory only, and
 * its next start is a fresh one (a stale file would bring back an older last seq).
 *
 * Ownership: the caller owns the writer (tb_histfile_close()); records handed to a
 * tb_histfile_msg_fn are borrowed for the call. Service thread only.
 */
#ifndef TELEBRIDGE_HISTFILE_H
#define TELEBRIDGE_HISTFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "telebridge/frame.h"

#define TB_HISTFILE_MAGIC "TBHIST1\n"
#define TB_HISTFILE_MAGIC_LEN 8
#define TB_HISTFILE_EPOCH_LEN 16
#define TB_HISTFILE_BOOT_LEN 36
/* Bytes a record adds to its message: length, CRC, type, seq, time, kind, room count. */
#define TB_HISTFILE_RECORD_OVERHEAD 27
/* The append buffer is written out when it holds more than this. */
#define TB_HISTFILE_BUFFER (1u << 20)

typedef struct tb_histfile tb_histfile_t;

/* One message record; the pointers borrow from the file's bytes. */
typedef struct {
    uint64_t seq;
    int64_t ms;
    uint8_t kind;        /* < TB_FRAME_KIND_N */
    uint8_t n_rooms;     /* >= 1 */
    const char *rooms;   /* n_rooms NUL-terminated valid room names, one after another */
    const char *payload; /* a JSON object's bytes, '{' … '}' */
    size_t len;
} tb_histfile_msg_t;

/* Called for each message record, in seq order. */
typedef void (*tb_histfile_msg_fn)(void *arg, const tb_histfile_msg_t *m);

/* What one segment's valid prefix holds. */
typedef struct {
    char epoch[TB_HISTFILE_EPOCH_LEN + 1];
    char boot[TB_HISTFILE_BOOT_LEN + 1];
    int64_t horizon_ms;
    uint64_t seq_base;
    size_t messages;
    size_t valid_bytes; /* length of the valid prefix; the rest of the buffer is ignored */
    uint64_t last_seq;  /* of the last valid message, or the largest of after and seq_base */
    bool closed;        /* the valid prefix ends with a CLOSE record */
} tb_histfile_segment_t;

/*
 * Parses one segment buf[0..len) (outside input: any bytes): calls fn (may be NULL) for each
 * message of its valid prefix, whose seqs must exceed after and the seq base, and fills *seg.
 * Returns 0, or -1 when buf does not start with the magic and a valid header (then nothing was
 * called).
 */
int tb_histfile_parse(const unsigned char *buf, size_t len, uint64_t after, tb_histfile_msg_fn fn,
                      void *arg, tb_histfile_segment_t *seg);

/* What tb_histfile_load() found. */
typedef struct {
    char epoch[TB_HISTFILE_EPOCH_LEN + 1]; /* "" when there was no file */
    int64_t horizon_ms;
    uint64_t last_seq; /* the last message's seq, or the seq base of a segment without one */
    size_t messages;
    size_t ignored_bytes; /* past the valid prefixes (a torn or corrupt tail) */
    bool clean;           /* the last segment ended with a CLOSE record */
    bool same_boot;       /* the last segment was written since the machine last booted */
} tb_histfile_loaded_t;

/*
 * Reads PATH.1 (when there is no valid PATH, or PATH has its epoch and goes on where it ends:
 * PATH's seq base is at least PATH.1's last seq) then PATH, calling fn for each
 * message in seq order. Returns 0 with *out filled (out->epoch "" when neither file exists), or
 * -1 with a message in err (errlen bytes), fn not called, when a file exists but cannot be read
 * or neither file is a history file with a valid header (then the caller starts afresh).
 */
int tb_histfile_load(const char *path, tb_histfile_msg_fn fn, void *arg, tb_histfile_loaded_t *out,
                     char *err, size_t errlen);

/*
 * The writer of PATH for segments of capacity (>= 1) messages: takes PATH.lock (flock(), for
 * the writer's life: two bridges never write one file) and writes nothing yet. NULL with a
 * message in err when the lock is held by another process, cannot be made, or memory runs out.
 * Then: tb_histfile_load() (what to restore), tb_histfile_begin(), the restored messages with
 * tb_histfile_append(), tb_histfile_commit().
 */
tb_histfile_t *tb_histfile_open(const char *path, size_t capacity, char *err, size_t errlen);

/*
 * Starts a new segment in PATH.tmp with a header naming epoch (TB_HISTFILE_EPOCH_LEN hex
 * digits), horizon_ms and seq_base (the last seq before what it will hold). Once. 0, or -1 with
 * a message in err (then close the writer).
 */
int tb_histfile_begin(tb_histfile_t *hf, const char *epoch, int64_t horizon_ms, uint64_t seq_base,
                      char *err, size_t errlen);

/*
 * Makes the new segment PATH: writes and fdatasync()s it, renames PATH.tmp over PATH, removes
 * PATH.1. 0, or -1 with a message in err (the writer is then off; nothing was replaced). Until
 * then appends, flushes and syncs go to PATH.tmp, and a close removes it.
 */
int tb_histfile_commit(tb_histfile_t *hf, char *err, size_t errlen);

/*
 * Appends frame f (its seq above every appended before), recorded at ms and routed to the
 * n_rooms (1..255) packed names rooms. Rotates first when the segment is full. A no-op once off.
 */
void tb_histfile_append(tb_histfile_t *hf, const tb_frame_t *f, int64_t ms, const char *rooms,
                        size_t n_rooms);

/* Writes what was appended since the last flush (one write()). A no-op when nothing is new. */
void tb_histfile_flush(tb_histfile_t *hf);
/* fdatasync()s what was written since the last sync (and the folder after a rotation). */
void tb_histfile_sync(tb_histfile_t *hf);
/* True until a write error turned the writer off. */
bool tb_histfile_on(const tb_histfile_t *hf);
/* Bytes of the current segment, written or buffered. */
uint64_t tb_histfile_size(const tb_histfile_t *hf);

/* After a commit appends a CLOSE record, writes and fdatasync()s; closes (the lock too) and
 * frees. NULL is a no-op. */
void tb_histfile_close(tb_histfile_t *hf);

#endif
