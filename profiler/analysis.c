/*
 * analysis.c - one process's stream, decoded, ordered and accounted; see
 * analysis.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"
#include "analysis.h"
#include "advice.h"
#include "attribution.h"
#include "reorder.h"
#include "stack_store.h"
#include "symbols.h"

#define MAX_STACK_IDS (1u << 20)  /* what one shim can define (SHIM_STACK_IDS) */
#define MAX_FRAMES_PER_SITE 256
/* Sites whose stacks are given in a result: the first ones in its order
 * (bytes at the peak, then bytes allocated). A Python program profiled
 * with --stacks=all has hundreds of thousands of distinct stacks, and
 * every symbolized frame costs its strings; past these the figures stay,
 * the frames do not (docs/report-schema.md). */
#define MAX_SITES_WITH_FRAMES 20000
/* Stacks whose modules are prefetched: every one of the first, then one in
 * PREFETCH_STRIDE. Looking a frame's module up costs a search; a Python
 * program under --stacks=all defines 600,000 stacks of 40 frames, and the
 * modules they run in show up among the first few thousand. */
#define PREFETCH_ALL_BELOW 4096u
#define PREFETCH_STRIDE 64u
/* Events in order wait this many places before they are applied, the live
 * heap's slot of each loaded meanwhile, once the table has outgrown the
 * caches: tens of MiB written at random, whose cache misses were two
 * thirds of applying an event (perf on the 300-step PyTorch script's
 * report). Replays 9-14% faster (docs/benchmarks.md, eleventh round). */
#define APPLY_DELAY 16

struct prof_analysis {
    /* Ordered events not applied yet, oldest at 'delayed_head'; none are
     * left between calls into the analysis (drain_delayed()). */
    prof_event_t delayed[APPLY_DELAY];
    size_t delayed_head, delayed_count;
    int delaying;              /* the live heap has outgrown the caches */
    uint64_t undelayed;        /* events applied at once, until then    */

    prof_decoder_t *decoder;
    prof_reorder_t reorder;
    prof_acct_t *acct;
    prof_symbols_t *symbols;

    int have_hello;
    int32_t pid, ppid;
    uint64_t start_realtime_ns;
    uint32_t stack_mode;
    uint64_t stack_threshold, sample_rate;
    char *exe;
    char *command;

    int have_end;
    prof_end_info_t end;

    prof_stack_store_t stacks;

    const prof_rules_t *rules; /* the user's attribution rules, or NULL    */
    int32_t prefetch_pid;      /* prof_analysis_prefetch_symbols()         */
    uint64_t mark_seq;         /* prof_analysis_set_mark(); hook NULL: none */
    void (*mark_hook)(void *ctx);
    void *mark_ctx;
    int prefetch;              /* this stream's modules are prefetched     */

    int failed;                /* out of memory inside a callback          */
    char error[320];
};

/* ---- decoder callbacks ---------------------------------------------------- */

static void on_hello(void *ctx, const prof_hello_t *h)
{
    prof_analysis_t *a = ctx;
    a->have_hello = 1;
    a->pid = (int32_t)h->pid;
    a->prefetch = a->prefetch_pid == -1 || (a->prefetch_pid > 0 && a->prefetch_pid == a->pid);
    a->ppid = (int32_t)h->ppid;
    a->start_realtime_ns = h->start_realtime_ns;
    a->stack_mode = h->stack_mode;
    a->stack_threshold = h->stack_threshold;
    a->sample_rate = h->sample_rate;
    free(a->exe);
    free(a->command);
    a->exe = strdup(h->exe);
    /* argv arrives NUL-separated; show it space-separated. */
    size_t len = h->cmdline_len;
    while (len && h->cmdline[len - 1] == '\0')
        len--;
    a->command = malloc(len + 1);
    if (!a->exe || !a->command) {
        a->failed = 1;
        return;
    }
    for (size_t i = 0; i < len; i++)
        a->command[i] = h->cmdline[i] ? h->cmdline[i] : ' ';
    a->command[len] = '\0';
}

static void apply_event(prof_analysis_t *a, const prof_event_t *e)
{
    if (prof_acct_apply(a->acct, e) != 0)
        a->failed = 1;
    if (a->mark_hook && e->seq == a->mark_seq) {
        void (*hook)(void *) = a->mark_hook;
        a->mark_hook = NULL;
        hook(a->mark_ctx);
    }
}

static void apply_oldest_delayed(prof_analysis_t *a)
{
    apply_event(a, &a->delayed[a->delayed_head]);
    a->delayed_head = (a->delayed_head + 1) % APPLY_DELAY;
    a->delayed_count--;
}

/* Applies every delayed event: before the analysis returns to its caller,
 * and before a record that is not an event changes what they would see. */
static void drain_delayed(prof_analysis_t *a)
{
    while (a->delayed_count)
        apply_oldest_delayed(a);
}

/* Events are applied in the order they come here: at once while the live
 * heap fits in the caches, else APPLY_DELAY behind. */
static void on_ordered_event(void *ctx, const prof_event_t *e)
{
    prof_analysis_t *a = ctx;
    if (e->type == MLMEM_EV_NOP)
        return;
    if (!a->delaying) {
        /* Asked once in 4096 events: the table never shrinks. */
        if ((++a->undelayed & 4095) == 0)
            a->delaying = prof_acct_worth_prefetching(a->acct);
        if (!a->delaying) {
            apply_event(a, e);
            return;
        }
    }
    if (a->delayed_count == APPLY_DELAY)
        apply_oldest_delayed(a);
    prof_acct_prefetch(a->acct, e);
    a->delayed[(a->delayed_head + a->delayed_count) % APPLY_DELAY] = *e;
    a->delayed_count++;
}

static void on_event(void *ctx, const prof_event_t *e)
{
    prof_analysis_t *a = ctx;
    if (e->seq == 0) { /* an RSS sample: not in the order, applied as it comes */
        on_ordered_event(ctx, e);
        return;
    }
    uint64_t lost_before = a->reorder.lost;
    if (prof_reorder_push(&a->reorder, e) != 0)
        a->failed = 1;
    if (a->reorder.lost != lost_before)
        prof_acct_add_lost(a->acct, a->reorder.lost - lost_before);
}

static void on_stack(void *ctx, uint32_t id, uint64_t seq, const uint64_t *frames, uint32_t depth)
{
    prof_analysis_t *a = ctx;
    if (id >= MAX_STACK_IDS)
        return; /* beyond what a shim defines: nothing to keep */
    if (prof_stack_store_put(&a->stacks, id, seq, frames, depth) != 0)
        a->failed = 1;
    if (a->prefetch && (id < PREFETCH_ALL_BELOW || id % PREFETCH_STRIDE == 0))
        prof_symbols_prefetch(a->symbols, frames, depth, seq);
}

static void on_module(void *ctx, const prof_module_t *m)
{
    prof_analysis_t *a = ctx;
    if (prof_symbols_add_module(a->symbols, m->id, m->path, m->bias, m->start, m->end,
                                m->load_seq) != 0)
        a->failed = 1;
}

static void on_unload(void *ctx, uint32_t id, uint64_t seq)
{
    prof_analysis_t *a = ctx;
    prof_symbols_unload_module(a->symbols, id, seq);
}

static void on_dropped(void *ctx, uint64_t total)
{
    prof_analysis_t *a = ctx;
    drain_delayed(a);
    prof_acct_set_dropped(a->acct, total);
}

static void on_thread(void *ctx, uint32_t tid, const char *name)
{
    prof_analysis_t *a = ctx;
    drain_delayed(a);
    prof_acct_thread_name(a->acct, tid, name);
}

static void on_end(void *ctx, const prof_end_info_t *e)
{
    prof_analysis_t *a = ctx;
    drain_delayed(a);
    a->have_end = 1;
    a->end = *e;
    prof_acct_set_dropped(a->acct, e->dropped);
    prof_acct_set_stacks_lost(a->acct, e->stacks_lost);
}

/* ---- life cycle -------------------------------------------------------------- */

prof_analysis_t *prof_analysis_new(void)
{
    prof_analysis_t *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    prof_decoder_sink_t sink = {
        .hello = on_hello,
        .event = on_event,
        .stack = on_stack,
        .module = on_module,
        .unload = on_unload,
        .dropped = on_dropped,
        .thread = on_thread,
        .end = on_end,
        .ctx = a,
    };
    prof_stack_store_init(&a->stacks);
    a->decoder = prof_decoder_new(&sink);
    a->acct = prof_acct_new(NULL);
    a->symbols = prof_symbols_new();
    if (!a->decoder || !a->acct || !a->symbols ||
        prof_reorder_init(&a->reorder, 0, on_ordered_event, a) != 0) {
        prof_analysis_free(a);
        return NULL;
    }
    return a;
}

void prof_analysis_finish_symbols(prof_analysis_t *a)
{
    prof_symbols_finish(a->symbols);
}

void prof_analysis_free(prof_analysis_t *a)
{
    if (!a)
        return;
    prof_decoder_free(a->decoder);
    prof_reorder_destroy(&a->reorder);
    prof_acct_free(a->acct);
    prof_symbols_free(a->symbols);
    free(a->exe);
    free(a->command);
    prof_stack_store_destroy(&a->stacks);
    free(a);
}

static int check_failed(prof_analysis_t *a)
{
    if (a->failed && !a->error[0])
        snprintf(a->error, sizeof a->error, "out of memory while analyzing");
    return a->failed ? -1 : 0;
}

int prof_analysis_feed(prof_analysis_t *a, const uint8_t *data, size_t len)
{
    if (a->failed)
        return -1;
    if (prof_decoder_feed(a->decoder, data, len) != 0) {
        snprintf(a->error, sizeof a->error, "%s", prof_decoder_error(a->decoder));
        a->failed = 1;
    }
    drain_delayed(a);
    return check_failed(a);
}

int prof_analysis_finish(prof_analysis_t *a)
{
    uint64_t lost_before = a->reorder.lost;
    prof_reorder_flush(&a->reorder);
    drain_delayed(a);
    prof_acct_add_lost(a->acct, a->reorder.lost - lost_before);
    if (!a->failed && prof_decoder_finish(a->decoder) != 0) {
        snprintf(a->error, sizeof a->error, "%s", prof_decoder_error(a->decoder));
        a->failed = 1;
    }
    return check_failed(a);
}

const char *prof_analysis_error(const prof_analysis_t *a)
{
    return a->failed ? a->error : NULL;
}

int32_t prof_analysis_pid(const prof_analysis_t *a)
{
    return a->pid;
}

int prof_analysis_has_end(const prof_analysis_t *a)
{
    return a->have_end;
}

uint64_t prof_analysis_live_bytes(const prof_analysis_t *a)
{
    return prof_acct_live_bytes(a->acct);
}

uint64_t prof_analysis_peak_bytes(const prof_analysis_t *a)
{
    return prof_acct_peak_bytes(a->acct);
}

uint64_t prof_analysis_peak_seq(const prof_analysis_t *a)
{
    return prof_acct_peak_seq(a->acct);
}

uint64_t prof_analysis_events(const prof_analysis_t *a)
{
    return prof_decoder_events(a->decoder);
}

/* ---- results ------------------------------------------------------------------ */

/* The frames of 'site's stack into 'addrs' (STACK_STORE_MAX_DEPTH of room)
 * and its seq into '*seq' (may be NULL): its depth, 0 if it has none. */
static uint32_t site_stack(const prof_analysis_t *a, const prof_site_t *site, uint64_t *addrs,
                           uint64_t *seq)
{
    if (site->stack_id == MLMEM_STACK_NONE)
        return 0;
    return prof_stack_store_get(&a->stacks, site->stack_id, addrs, STACK_STORE_MAX_DEPTH, seq);
}

/* The length of 'str' and its NUL in the site's string block, 0 if it
 * takes no room: NULL, or the very string of the frame before (the
 * symbolizer's path of one module: a stack's frames come in runs of one
 * module). */
static size_t packed_size(const char *str, const char *before)
{
    return str && str != before ? strlen(str) + 1 : 0;
}

/* 'str' in the block at '*at' (advanced past it), or where the frame before
 * has it ('before_copy', for 'before'). */
static char *pack(const char *str, const char *before, char *before_copy, char **at)
{
    if (!str)
        return NULL;
    if (str == before)
        return before_copy;
    size_t len = strlen(str) + 1;
    char *copy = memcpy(*at, str, len);
    *at += len;
    return copy;
}

static int symbolize_site(prof_analysis_t *a, prof_site_t *site)
{
    uint64_t addrs[STACK_STORE_MAX_DEPTH], seq = 0;
    uint32_t depth = site_stack(a, site, addrs, &seq);
    if (!depth)
        return 0;
    /* Resolved here with the symbolizer's strings, then copied to a block
     * of the frames' size and one of their strings' (a zeroed block of the
     * room inline frames might need, 12 KiB a site, and three string copies
     * a frame, 300,000 for 'import torch''s report, were most of its time
     * after the program ended: their page faults cost 11 us each in the VMs
     * these runs are measured on; docs/benchmarks.md, eleventh round). */
    prof_frame_t frames[MAX_FRAMES_PER_SITE];
    size_t n = 0;
    for (uint32_t i = 0; i < depth && n < MAX_FRAMES_PER_SITE; i++)
        n += prof_symbols_resolve_shared(a->symbols, addrs[i], seq, 1, frames + n,
                                         MAX_FRAMES_PER_SITE - n);
    if (n == 0)
        return 0;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const prof_frame_t *f = &frames[i], none = {0}, *b = i ? &frames[i - 1] : &none;
        bytes += packed_size(f->function, b->function) + packed_size(f->file, b->file) +
                 packed_size(f->module, b->module);
    }
    site->frames = malloc(n * sizeof *site->frames);
    site->frame_strings = malloc(bytes ? bytes : 1);
    if (!site->frames || !site->frame_strings) {
        prof_site_drop_frames(site);
        return -1;
    }
    char *at = site->frame_strings;
    for (size_t i = 0; i < n; i++) {
        const prof_frame_t *f = &frames[i], none = {0}, *b = i ? &frames[i - 1] : &none;
        const prof_frame_t *prev = i ? &site->frames[i - 1] : &none;
        prof_frame_t *out = &site->frames[i];
        *out = *f;
        out->function = pack(f->function, b->function, prev->function, &at);
        out->file = pack(f->file, b->file, prev->file, &at);
        out->module = pack(f->module, b->module, prev->module, &at);
    }
    site->frame_count = (uint32_t)n;
    return 0;
}

/* Raw frames without symbols: addresses only. */
static int raw_site(prof_analysis_t *a, prof_site_t *site)
{
    uint64_t addrs[STACK_STORE_MAX_DEPTH];
    uint32_t depth = site_stack(a, site, addrs, NULL);
    if (!depth)
        return 0;
    site->frames = calloc(depth, sizeof *site->frames);
    if (!site->frames)
        return -1;
    for (uint32_t i = 0; i < depth; i++)
        site->frames[i].address = addrs[i];
    site->frame_count = depth;
    return 0;
}

static void fill_process(const prof_analysis_t *a, prof_process_t *p)
{
    p->pid = a->pid;
    p->ppid = a->ppid;
    p->exe = a->exe ? strdup(a->exe) : NULL;
    p->command = a->command ? strdup(a->command) : NULL;
    p->start_realtime_ns = a->start_realtime_ns;
    p->stack_mode = a->stack_mode;
    p->sample_threshold = a->stack_threshold;
    p->sample_rate = a->sample_rate;
    p->end = PROF_END_UNKNOWN;
    if (a->have_end) {
        switch (a->end.reason) {
        case MLMEM_END_EXIT:
        case MLMEM_END_UNDERSCORE_EXIT:
            p->end = PROF_END_EXITED;
            p->exit_code = a->end.code_known ? a->end.code : -1;
            break;
        case MLMEM_END_EXEC:
            p->end = PROF_END_EXEC;
            break;
        case MLMEM_END_ABORT:
            p->end = PROF_END_SIGNALED;
            p->signal = 6; /* SIGABRT */
            break;
        default:
            break;
        }
    }
}

/* Attribution over all sites, before any are cut, with the allocation log
 * that accounting kept for step detection. */
static int attribute(prof_analysis_t *a, prof_result_t *out)
{
    prof_attr_input_t in = {a->rules, NULL, 0, 0, NULL, 0, 0};
    in.log = prof_acct_alloc_log(a->acct, &in.log_count);
    /* Full: allocations after the log's end were not logged. */
    in.log_truncated = in.log_count >= PROF_ACCT_LOG_CAP;
    in.ranges = prof_acct_live_ranges(a->acct, &in.range_count, &in.range_width_ns);
    return prof_attribute(out, &in);
}

int prof_analysis_result(prof_analysis_t *a, int symbolize, size_t max_sites, prof_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (prof_acct_result(a->acct, out) != 0)
        return -1;
    fill_process(a, &out->process);
    for (size_t i = 0; i < out->site_count; i++) {
        prof_site_t *s = &out->sites[i];
        s->sampled = a->stack_mode == MLMEM_STACKS_SAMPLED && s->stack_id != MLMEM_STACK_NONE &&
                     s->largest_allocation < a->stack_threshold && !s->is_mmap;
        if (i >= MAX_SITES_WITH_FRAMES)
            continue;
        if ((symbolize ? symbolize_site(a, s) : raw_site(a, s)) != 0) {
            prof_result_free(out);
            return -1;
        }
    }
    if (attribute(a, out) != 0 || prof_advise(out) != 0) {
        prof_result_free(out);
        return -1;
    }
    if (max_sites && out->site_count > max_sites) {
        for (size_t i = max_sites; i < out->site_count; i++)
            prof_site_release(&out->sites[i]);
        out->site_count = max_sites;
    }
    return 0;
}

void prof_analysis_set_rules(prof_analysis_t *a, const prof_rules_t *rules)
{
    a->rules = rules;
}

void prof_analysis_prefetch_symbols(prof_analysis_t *a, int32_t pid)
{
    a->prefetch_pid = pid;
}

void prof_analysis_set_mark(prof_analysis_t *a, uint64_t seq, void (*hook)(void *ctx),
                            void *ctx)
{
    a->mark_seq = seq;
    a->mark_hook = hook;
    a->mark_ctx = ctx;
}

int prof_analysis_prefetching(const prof_analysis_t *a)
{
    return a->prefetch;
}

const struct prof_acct *prof_analysis_acct(const prof_analysis_t *a)
{
    return a->acct;
}
