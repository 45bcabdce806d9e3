/*
 * frame_cache.c - resolved frames kept between runs; see frame_cache.h.
 *
 * File (native byte order, written and read on one machine):
 *   "MLMEMFRC", u32 version, u32 build ID length, the build ID,
 *   u64 entries; each entry: u64 offset, u32 frames, u32 flags
 *   (PROF_FRAME_CACHE_*); each frame: u32 line,
 *   u32 inlined, u32 function length, u32 file length (UINT32_MAX: none),
 *   then those bytes.
 * In memory: the entries in arrays, found by offset through an
 * open-addressing table.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "debug_cache.h"
#include "frame_cache.h"

#define FC_MAGIC "MLMEMFRC"
#define FC_VERSION 2u /* 2: entries have flags */
#define FC_NONE UINT32_MAX
#define FC_MAX_FRAMES 64u       /* per offset (inlined ones included)     */
#define FC_MAX_STRING (1u << 16)

typedef struct {
    uint64_t offset;
    uint32_t count;
    uint32_t flags;             /* PROF_FRAME_CACHE_* */
    size_t first;               /* into 'frames' */
} fc_entry_t;

struct prof_frame_cache {
    char *path;
    uint8_t id[64];
    size_t id_len;
    fc_entry_t *entries;
    size_t count, cap;
    prof_frame_t *frames;
    size_t frame_count, frame_cap;
    size_t *slots;              /* entry index + 1; 0: empty */
    size_t slot_cap;            /* power of two */
    bool dirty;
};

static size_t fc_hash(uint64_t offset)
{
    offset ^= offset >> 31;
    offset *= 0x9E3779B97F4A7C15ull;
    return (size_t)(offset ^ (offset >> 29));
}

static const fc_entry_t *fc_find(const prof_frame_cache_t *c, uint64_t offset)
{
    if (!c->slot_cap)
        return NULL;
    for (size_t i = fc_hash(offset) & (c->slot_cap - 1);; i = (i + 1) & (c->slot_cap - 1)) {
        if (!c->slots[i])
            return NULL;
        if (c->entries[c->slots[i] - 1].offset == offset)
            return &c->entries[c->slots[i] - 1];
    }
}

/* Room for one more entry in the table (at most half full). */
static int fc_grow_slots(prof_frame_cache_t *c)
{
    if (2 * (c->count + 1) <= c->slot_cap)
        return 0;
    size_t cap = c->slot_cap ? 2 * c->slot_cap : 256;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t e = 0; e < c->count; e++) {
        size_t i = fc_hash(c->entries[e].offset) & (cap - 1);
        while (slots[i])
            i = (i + 1) & (cap - 1);
        slots[i] = e + 1;
    }
    free(c->slots);
    c->slots = slots;
    c->slot_cap = cap;
    return 0;
}

static void fc_clear_frames(prof_frame_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].function);
        free(f[i].file);
        f[i].function = f[i].file = NULL;
    }
}

/* Room for 'n' more frames. */
static int fc_reserve_frames(prof_frame_cache_t *c, size_t n)
{
    if (c->frame_count + n <= c->frame_cap)
        return 0;
    size_t cap = c->frame_cap ? 2 * c->frame_cap : 1024;
    while (cap < c->frame_count + n)
        cap *= 2;
    prof_frame_t *f = realloc(c->frames, cap * sizeof *f);
    if (!f)
        return -1;
    c->frames = f;
    c->frame_cap = cap;
    return 0;
}

/* Adds an entry taking frames[0, n) as they are (their strings owned by the
 * cache from now on, freed by the caller on failure). */
static int fc_add(prof_frame_cache_t *c, uint64_t offset, const prof_frame_t *frames, size_t n,
                  uint32_t flags)
{
    if (fc_grow_slots(c) != 0)
        return -1;
    if (c->count == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        fc_entry_t *e = realloc(c->entries, cap * sizeof *e);
        if (!e)
            return -1;
        c->entries = e;
        c->cap = cap;
    }
    if (fc_reserve_frames(c, n) != 0)
        return -1;
    memcpy(c->frames + c->frame_count, frames, n * sizeof *frames);
    c->entries[c->count] = (fc_entry_t){offset, (uint32_t)n, flags, c->frame_count};
    c->frame_count += n;
    size_t i = fc_hash(offset) & (c->slot_cap - 1);
    while (c->slots[i])
        i = (i + 1) & (c->slot_cap - 1);
    c->slots[i] = ++c->count;
    return 0;
}

/* Gives entry 'e' frames[0, n) instead of its own (freed; their slots in
 * 'frames' stay unused until the file is read again). */
static int fc_replace(prof_frame_cache_t *c, fc_entry_t *e, const prof_frame_t *frames, size_t n,
                      uint32_t flags)
{
    if (fc_reserve_frames(c, n) != 0)
        return -1;
    fc_clear_frames(c->frames + e->first, e->count);
    memcpy(c->frames + c->frame_count, frames, n * sizeof *frames);
    e->first = c->frame_count;
    e->count = (uint32_t)n;
    e->flags = flags;
    c->frame_count += n;
    return 0;
}

/* ---- reading ---- */

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} fc_cursor_t;

static void fc_take(fc_cursor_t *r, void *out, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
}

static char *fc_take_string(fc_cursor_t *r, uint32_t len)
{
    if (len == FC_NONE || r->bad)
        return NULL;
    if (len > FC_MAX_STRING || (size_t)(r->end - r->p) < len) {
        r->bad = true;
        return NULL;
    }
    char *s = strndup((const char *)r->p, len);
    if (!s)
        r->bad = true;
    r->p += len;
    return s;
}

/* Reads what the file holds into 'c'; a file that does not parse, or is of
 * another build, leaves 'c' empty. */
static void fc_load(prof_frame_cache_t *c)
{
    FILE *f = fopen(c->path, "rbe");
    if (!f)
        return;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            uint8_t *b = realloc(buf, cap);
            if (!b)
                break;
            buf = b;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    fc_cursor_t r = {buf, buf + len, buf == NULL};
    char magic[8];
    uint32_t version, id_len;
    uint8_t id[64];
    uint64_t entries;
    fc_take(&r, magic, sizeof magic);
    fc_take(&r, &version, sizeof version);
    fc_take(&r, &id_len, sizeof id_len);
    if (r.bad || memcmp(magic, FC_MAGIC, sizeof magic) != 0 || version != FC_VERSION ||
        id_len != c->id_len) {
        free(buf);
        return;
    }
    fc_take(&r, id, id_len);
    fc_take(&r, &entries, sizeof entries);
    if (r.bad || memcmp(id, c->id, id_len) != 0) {
        free(buf);
        return;
    }
    prof_frame_t frames[FC_MAX_FRAMES];
    for (uint64_t e = 0; e < entries && !r.bad; e++) {
        uint64_t offset;
        uint32_t n, flags;
        fc_take(&r, &offset, sizeof offset);
        fc_take(&r, &n, sizeof n);
        fc_take(&r, &flags, sizeof flags);
        if (r.bad || n == 0 || n > FC_MAX_FRAMES) {
            r.bad = true;
            break;
        }
        memset(frames, 0, n * sizeof frames[0]);
        for (uint32_t i = 0; i < n && !r.bad; i++) {
            uint32_t fn_len, file_len;
            fc_take(&r, &frames[i].line, sizeof frames[i].line);
            fc_take(&r, &frames[i].inlined, sizeof frames[i].inlined);
            fc_take(&r, &fn_len, sizeof fn_len);
            fc_take(&r, &file_len, sizeof file_len);
            frames[i].function = fc_take_string(&r, fn_len);
            frames[i].file = fc_take_string(&r, file_len);
        }
        if (r.bad || fc_find(c, offset) != NULL) { /* torn, or a duplicate */
            fc_clear_frames(frames, n);
            continue;
        }
        if (fc_add(c, offset, frames, n, flags) != 0) {
            fc_clear_frames(frames, n);
            r.bad = true;
        }
    }
    if (r.bad || r.p != r.end) { /* torn or foreign: start afresh */
        fc_clear_frames(c->frames, c->frame_count);
        c->count = c->frame_count = 0;
        if (c->slots)
            memset(c->slots, 0, c->slot_cap * sizeof *c->slots);
        c->dirty = true; /* replaced at the next save */
    }
    free(buf);
}

prof_frame_cache_t *prof_frame_cache_open(const char *dir, const uint8_t *id, size_t len)
{
    if (!dir || len == 0 || len > 64)
        return NULL;
    prof_frame_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    char hex[2 * 64 + 1];
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    if (asprintf(&c->path, "%s/%s.frames", dir, hex) < 0) {
        free(c);
        return NULL;
    }
    memcpy(c->id, id, len);
    c->id_len = len;
    fc_load(c);
    return c;
}

size_t prof_frame_cache_get(const prof_frame_cache_t *c, uint64_t offset,
                            const prof_frame_t **frames, uint32_t *flags)
{
    const fc_entry_t *e = fc_find(c, offset);
    if (!e)
        return 0;
    *frames = c->frames + e->first;
    if (flags)
        *flags = e->flags;
    return e->count;
}

int prof_frame_cache_put(prof_frame_cache_t *c, uint64_t offset, const prof_frame_t *frames,
                         size_t n, uint32_t flags)
{
    if (n == 0 || n > FC_MAX_FRAMES)
        return 0;
    prof_frame_t copy[FC_MAX_FRAMES];
    memset(copy, 0, n * sizeof copy[0]);
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        copy[i].line = frames[i].line;
        copy[i].inlined = frames[i].inlined;
        if (frames[i].function && !(copy[i].function = strdup(frames[i].function)))
            oom = true;
        if (frames[i].file && !(copy[i].file = strdup(frames[i].file)))
            oom = true;
    }
    fc_entry_t *old = (fc_entry_t *)fc_find(c, offset);
    if (oom ||
        (old ? fc_replace(c, old, copy, n, flags) : fc_add(c, offset, copy, n, flags)) != 0) {
        fc_clear_frames(copy, n);
        return -1;
    }
    c->dirty = true;
    return 0;
}

/* ---- writing ---- */

/* A string's length in the file: at most FC_MAX_STRING bytes of it. */
static uint32_t fc_len(const char *s)
{
    return s ? (uint32_t)strnlen(s, FC_MAX_STRING) : FC_NONE;
}

int prof_frame_cache_save(prof_frame_cache_t *c)
{
    if (!c->dirty)
        return 0;
    char *dir = strdup(c->path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = '\0';
    int made = slash ? prof_debug_cache_make_dirs(dir) : -1;
    free(dir);
    char *tmp;
    if (made != 0 || asprintf(&tmp, "%s.tmp.XXXXXX", c->path) < 0)
        return -1;
    int fd = mkostemp(tmp, O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return -1;
    }
    uint32_t version = FC_VERSION, id_len = (uint32_t)c->id_len;
    uint64_t entries = c->count;
    bool ok = fwrite(FC_MAGIC, 8, 1, f) == 1 && fwrite(&version, 4, 1, f) == 1 &&
              fwrite(&id_len, 4, 1, f) == 1 && fwrite(c->id, c->id_len, 1, f) == 1 &&
              fwrite(&entries, 8, 1, f) == 1;
    for (size_t e = 0; ok && e < c->count; e++) {
        const fc_entry_t *x = &c->entries[e];
        ok = fwrite(&x->offset, 8, 1, f) == 1 && fwrite(&x->count, 4, 1, f) == 1 &&
             fwrite(&x->flags, 4, 1, f) == 1;
        for (uint32_t i = 0; ok && i < x->count; i++) {
            const prof_frame_t *fr = &c->frames[x->first + i];
            uint32_t fn_len = fc_len(fr->function), file_len = fc_len(fr->file);
            ok = fwrite(&fr->line, 4, 1, f) == 1 && fwrite(&fr->inlined, 4, 1, f) == 1 &&
                 fwrite(&fn_len, 4, 1, f) == 1 && fwrite(&file_len, 4, 1, f) == 1 &&
                 (fn_len == FC_NONE || fn_len == 0 || fwrite(fr->function, fn_len, 1, f) == 1) &&
                 (file_len == FC_NONE || file_len == 0 || fwrite(fr->file, file_len, 1, f) == 1);
        }
    }
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, c->path) == 0) {
        c->dirty = false;
    } else {
        unlink(tmp);
        ok = false;
    }
    free(tmp);
    return ok ? 0 : -1;
}

size_t prof_frame_cache_count(const prof_frame_cache_t *c)
{
    return c->count;
}

size_t prof_frame_cache_count_without(const prof_frame_cache_t *c, uint32_t flag)
{
    size_t n = 0;
    for (size_t e = 0; e < c->count; e++)
        n += !(c->entries[e].flags & flag);
    return n;
}

void prof_frame_cache_free(prof_frame_cache_t *c)
{
    if (!c)
        return;
    fc_clear_frames(c->frames, c->frame_count);
    free(c->frames);
    free(c->entries);
    free(c->slots);
    free(c->path);
    free(c);
}
