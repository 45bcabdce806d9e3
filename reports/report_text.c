/*
 * report_text.c - the short human summary printed at the end of a run, in
 * the spirit of heaptrack_print and memray's summary: how the process ended,
 * the peak, its composition by category (with a bar), where it came from,
 * leaks, temporaries, RSS.
 *
 * Every line goes through rt_line(), which keeps it within REPORT_TEXT_WIDTH
 * bytes and replaces control characters, invalid UTF-8 and bidirectional
 * overrides from names in the trace, so a hostile function name or command
 * line cannot drive the terminal.
 */
#define _GNU_SOURCE
#include "report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mlmem/trace_format.h"

/* Output state: the stream, colour and the section limits. */
typedef struct {
    FILE *out;
    bool color;
    size_t max_sites;
    size_t max_frames;
} rt_ctx_t;

typedef enum { RT_PLAIN, RT_HEADING, RT_WARNING } rt_style_t;

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */

/* Cuts 's' (of length n) to at most 'width' bytes, ending in "..." when cut,
 * without splitting a UTF-8 sequence. Returns the new length. */
static size_t rt_fit(char *s, size_t n, size_t width)
{
    if (n <= width)
        return n;
    size_t cut = width - 3;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(s + cut, "...", 4);
    return cut + 3;
}

/* Prints one formatted line in 'style'. Control characters, invalid UTF-8
 * and bidirectional overrides become '?'. */
__attribute__((format(printf, 3, 4)))
static void rt_line(rt_ctx_t *c, rt_style_t style, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1;
    len = report_make_printable(buf, len);
    len = rt_fit(buf, len, REPORT_TEXT_WIDTH);
    if (c->color && style != RT_PLAIN)
        fprintf(c->out, "%s%s\033[0m\n", style == RT_HEADING ? "\033[1m" : "\033[1;31m", buf);
    else
        fprintf(c->out, "%s\n", buf);
}

/* "s" unless n is 1, for "1 allocation" / "2 allocations". */
static const char *rt_s(uint64_t n)
{
    return n == 1 ? "" : "s";
}

/* The last component of a path ("libc.so.6" for "/lib/.../libc.so.6"). */
static const char *rt_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* One frame: "function at file:line (module)". Unknown parts are left out;
 * with no function the address stands in its place. A frame too long for
 * the line loses the file's directories first. */
static void rt_frame(rt_ctx_t *c, const prof_frame_t *f)
{
    char func[512], where[512], mod[256];
    if (f->function)
        snprintf(func, sizeof(func), "%s", f->function);
    else
        snprintf(func, sizeof(func), "0x%" PRIx64, f->address);
    mod[0] = '\0';
    if (f->module && f->module[0])
        snprintf(mod, sizeof(mod), f->function ? " (%s)" : " (%s+0x%" PRIx64 ")",
                 rt_basename(f->module), f->module_offset);
    const char *inl = f->inlined ? " [inlined]" : "";

    for (int shorten = 0; shorten < 2; shorten++) {
        where[0] = '\0';
        if (f->file) {
            const char *file = shorten ? rt_basename(f->file) : f->file;
            if (f->line)
                snprintf(where, sizeof(where), " at %s:%" PRIu32, file, f->line);
            else
                snprintf(where, sizeof(where), " at %s", file);
        }
        size_t len = 8 + strlen(func) + strlen(where) + strlen(mod) + strlen(inl);
        if (len <= REPORT_TEXT_WIDTH || shorten == 1)
            break;
    }
    rt_line(c, RT_PLAIN, "        %s%s%s%s", func, where, mod, inl);
}

/* The stack of site 's', at most max_frames frames. */
static void rt_stack(rt_ctx_t *c, const prof_site_t *s)
{
    if (s->frames == NULL || s->frame_count == 0) {
        if (s->stack_id == MLMEM_STACK_NONE)
            rt_line(c, RT_PLAIN, "        (small allocations whose stack was not sampled)");
        else
            rt_line(c, RT_PLAIN, "        (no frames)");
        return;
    }
    size_t n = s->frame_count < c->max_frames ? s->frame_count : c->max_frames;
    for (size_t i = 0; i < n; i++)
        rt_frame(c, &s->frames[i]);
    if (s->frame_count > n)
        rt_line(c, RT_PLAIN, "        ... %zu more frames", (size_t)s->frame_count - n);
}

/* ------------------------------------------------------------------------ */
/* Site rankings                                                             */

typedef uint64_t (*rt_key_t)(const prof_site_t *s);

static uint64_t rt_key_at_peak(const prof_site_t *s) { return s->live_bytes_at_peak; }
static uint64_t rt_key_leaked(const prof_site_t *s) { return s->live_bytes; }
static uint64_t rt_key_temporary(const prof_site_t *s) { return s->temporary_allocations; }

/* Fills idx with the indices of the (at most) 'max' sites of largest key,
 * largest first, skipping key 0; ties keep the result's order. Returns the
 * count. */
static size_t rt_top(const prof_result_t *r, rt_key_t key, size_t *idx, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return 0;
    for (size_t i = 0; r->sites != NULL && i < r->site_count; i++) {
        uint64_t k = key(&r->sites[i]);
        if (k == 0 || (n == max && k <= key(&r->sites[idx[n - 1]])))
            continue;
        size_t j = n < max ? n++ : max - 1;
        while (j > 0 && key(&r->sites[idx[j - 1]]) < k) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

/* "exited with code 0", "killed by signal 9 (SIGKILL)", ... */
static const char *rt_ending(prof_end_t end, int32_t code, int32_t sig, char *buf, size_t len)
{
    char name[24];
    switch (end) {
    case PROF_END_EXITED:
        snprintf(buf, len, "exited with code %" PRId32, code);
        break;
    case PROF_END_SIGNALED:
        snprintf(buf, len, "killed by signal %" PRId32 " (%s)", sig,
                 report_signal_name(sig, name, sizeof(name)));
        break;
    case PROF_END_EXEC:
        snprintf(buf, len, "replaced its image (exec)");
        break;
    case PROF_END_RUNNING:
        snprintf(buf, len, "still running");
        break;
    default:
        snprintf(buf, len, "ended without a trace of how (cut off or killed)");
        break;
    }
    return buf;
}

static void rt_header(rt_ctx_t *c, const prof_result_t *r)
{
    const prof_process_t *p = &r->process;
    const prof_summary_t *s = &r->summary;
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN], d[REPORT_DURATION_BUFLEN];
    char end[96];

    const char *cmd = p->command && p->command[0] ? p->command : p->exe ? p->exe : "?";
    rt_line(c, RT_HEADING, "mlmem: %s (pid %" PRId32 ")", cmd, p->pid);
    rt_line(c, RT_PLAIN, "  %s after %s",
            rt_ending(p->end, p->exit_code, p->signal, end, sizeof(end)),
            report_format_duration(s->duration_ns, d, sizeof(d)));
    if (p->stack_mode == MLMEM_STACKS_SAMPLED)
        rt_line(c, RT_PLAIN, "  stacks: every allocation of %s or more, a sample of smaller ones "
                "(1 per %s)",
                report_format_bytes(p->sample_threshold, b1, sizeof(b1)),
                report_format_bytes(p->sample_rate, b2, sizeof(b2)));
    else if (p->stack_mode == MLMEM_STACKS_ALL)
        rt_line(c, RT_PLAIN, "  stacks: every allocation");
    rt_line(c, RT_PLAIN, "%s", "");
}

static void rt_totals(rt_ctx_t *c, const prof_result_t *r)
{
    const prof_summary_t *s = &r->summary;
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN], b3[REPORT_BYTES_BUFLEN];
    char d[REPORT_DURATION_BUFLEN];

    rt_line(c, RT_PLAIN, "Peak heap        %s at %s (heap %s + mmap %s)",
            report_format_bytes(s->peak_bytes, b1, sizeof(b1)),
            report_format_duration(s->peak_time_ns, d, sizeof(d)),
            report_format_bytes(s->peak_heap_bytes, b2, sizeof(b2)),
            report_format_bytes(s->peak_mmap_bytes, b3, sizeof(b3)));
    rt_line(c, RT_PLAIN, "Allocations      %" PRIu64 " (%" PRIu64 " freed), %s requested",
            s->total_allocations, s->total_frees,
            report_format_bytes(s->total_bytes, b1, sizeof(b1)));
    if (s->total_allocations > 0)
        rt_line(c, RT_PLAIN, "Temporary        %" PRIu64 " allocation%s (%.1f%%)",
                s->temporary_allocations, rt_s(s->temporary_allocations),
                100.0 * (double)s->temporary_allocations / (double)s->total_allocations);
    bool finished = r->process.end == PROF_END_EXITED || r->process.end == PROF_END_SIGNALED;
    rt_line(c, RT_PLAIN, "%s%s in %" PRIu64 " allocation%s",
            finished ? "Leaked           " : "Live at end      ",
            report_format_bytes(s->leaked_bytes, b1, sizeof(b1)), s->leaked_allocations,
            rt_s(s->leaked_allocations));
    if (s->rss_samples > 0)
        rt_line(c, RT_PLAIN, "Peak RSS         %s at %s",
                report_format_bytes(s->peak_rss_bytes, b1, sizeof(b1)),
                report_format_duration(s->peak_rss_time_ns, d, sizeof(d)));
    if (s->peak_file_mapped_bytes > 0)
        rt_line(c, RT_PLAIN, "File mappings    %s at most (not in the heap figures)",
                report_format_bytes(s->peak_file_mapped_bytes, b1, sizeof(b1)));
    if (r->thread_count > 1)
        rt_line(c, RT_PLAIN, "Threads          %zu", r->thread_count);
    if (s->unmatched_frees > 0)
        rt_line(c, RT_PLAIN, "Unmatched frees  %" PRIu64 " (of blocks allocated before "
                "tracking began)", s->unmatched_frees);

    if (s->dropped_events > 0 || s->lost_events > 0) {
        rt_line(c, RT_PLAIN, "%s", "");
        rt_line(c, RT_WARNING, "Warning: %" PRIu64 " events dropped by the shim and %" PRIu64
                " lost in transit;", s->dropped_events, s->lost_events);
        rt_line(c, RT_WARNING, "the figures in this report are approximate.");
    }
    if (s->stacks_lost > 0) {
        rt_line(c, RT_PLAIN, "%s", "");
        rt_line(c, RT_WARNING, "Warning: %" PRIu64 " allocations were recorded without their "
                "stack (the shim's stack table was full, or a signal handler allocated while its thread "
                "took one);", s->stacks_lost);
        rt_line(c, RT_WARNING, "their bytes are counted, with those whose stack was not "
                "sampled.");
    }
}

/* ------------------------------------------------------------------------ */
/* Categories                                                                */

#define RT_BAR_WIDTH 60

/* Letters of the composition bar, by mlmem_category_t. */
static const char rt_cat_letter[MLMEM_CATEGORY_COUNT] = {
    [MLMEM_CAT_OTHER] = '.', [MLMEM_CAT_WEIGHTS] = 'W', [MLMEM_CAT_GRADIENTS] = 'G',
    [MLMEM_CAT_OPTIMIZER_STATE] = 'O', [MLMEM_CAT_ACTIVATIONS] = 'A', [MLMEM_CAT_DATA] = 'D',
    [MLMEM_CAT_TEMPORARIES] = 'T',
};

/* Splits RT_BAR_WIDTH cells over the categories by their bytes at the peak
 * (largest remainder, so the cells add up exactly), in category order with
 * 'other' last. */
static void rt_bar(const prof_result_t *r, uint64_t total, char *bar)
{
    size_t cells[MLMEM_CATEGORY_COUNT] = {0}, used = 0;
    double rest[MLMEM_CATEGORY_COUNT] = {0};
    for (size_t k = 0; k < r->category_count; k++) {
        double exact = (double)RT_BAR_WIDTH * (double)r->categories[k].bytes_at_peak /
                       (double)total;
        cells[k] = (size_t)exact;
        rest[k] = exact - (double)cells[k];
        used += cells[k];
    }
    while (used < RT_BAR_WIDTH) {
        size_t best = 0;
        for (size_t k = 1; k < r->category_count; k++)
            if (rest[k] > rest[best])
                best = k;
        cells[best]++;
        rest[best] = -1;
        used++;
    }
    size_t n = 0;
    for (size_t step = 0; step < r->category_count; step++) {
        size_t k = (step + 1) % r->category_count; /* other (0) last */
        for (size_t i = 0; i < cells[k]; i++)
            bar[n++] = rt_cat_letter[k];
    }
    bar[n] = '\0';
}

static void rt_categories(rt_ctx_t *c, const prof_result_t *r)
{
    uint64_t total = 0;
    for (size_t k = 0; k < r->category_count; k++)
        total += r->categories[k].bytes_at_peak;
    if (r->category_count != MLMEM_CATEGORY_COUNT || total == 0)
        return;
    char bar[RT_BAR_WIDTH + 1], b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN];
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "Peak by category:");
    rt_bar(r, total, bar);
    rt_line(c, RT_PLAIN, "  [%s]", bar);
    for (size_t step = 0; step < r->category_count; step++) {
        size_t k = (step + 1) % r->category_count;
        const prof_category_t *cat = &r->categories[k];
        if (cat->bytes_at_peak == 0 && cat->max_bytes == 0)
            continue;
        rt_line(c, RT_PLAIN, "  %c %-16s %10s %5.1f%%  max %10s  %s", rt_cat_letter[k],
                cat->name, report_format_bytes(cat->bytes_at_peak, b1, sizeof(b1)),
                100.0 * (double)cat->bytes_at_peak / (double)total,
                report_format_bytes(cat->max_bytes, b2, sizeof(b2)),
                cat->evidence ? cat->evidence : "");
    }
    const prof_steps_t *st = &r->steps;
    if (st->count > 0) {
        char d[REPORT_DURATION_BUFLEN], per[64] = "";
        if (st->period_allocations)
            snprintf(per, sizeof(per), ", %" PRIu64 " allocations each", st->period_allocations);
        char phases[96] = "";
        static const char *const names[] = {"none", "data", "forward", "backward",
                                            "optimizer", "eval"};
        size_t len = 0;
        for (unsigned i = 1; i < 6; i++)
            if (st->phases_seen & (1u << i))
                len += (size_t)snprintf(phases + len, sizeof(phases) - len, "%s%s",
                                        len ? ", " : "; phases: ", names[i]);
        rt_line(c, RT_PLAIN, "Steps            %" PRIu64 " (%s), every %s%s%s", st->count,
                st->source ? st->source : "?",
                report_format_duration(st->period_ns, d, sizeof(d)), per, phases);
        if (st->eval_batches)
            rt_line(c, RT_PLAIN,
                    "                 and %" PRIu64 " forward-only (evaluation) batches: the "
                    "forward sites ran %" PRIu64 " times",
                    st->eval_batches, st->count + st->eval_batches);
        if (st->forward_end > 0) {
            char back[48] = "";
            if (st->backward_end > 0)
                snprintf(back, sizeof(back), ", backward %.0f-%.0f%%", 100.0 * st->forward_end,
                         100.0 * st->backward_end);
            rt_line(c, RT_PLAIN,
                    "                 inferred from live bytes: forward 0-%.0f%% of a step%s",
                    100.0 * st->forward_end, back);
        }
        if (st->peak_where && strcmp(st->peak_where, "step") == 0) {
            char into[96] = "";
            if (st->peak_step_fraction >= 0)
                snprintf(into, sizeof(into), ", %.0f%% into it%s", 100.0 * st->peak_step_fraction,
                         st->forward_end <= 0                         ? ""
                         : st->peak_step_fraction <= st->forward_end ? " (forward)"
                         : st->peak_step_fraction <= st->backward_end ? " (backward)"
                                                                       : "");
            rt_line(c, RT_PLAIN, "                 the peak is in step %" PRIu64 " of %" PRIu64 "%s",
                    st->peak_step + 1, st->count, into);
        } else if (st->peak_where) {
            static const struct {
                const char *where, *text;
            } says[] = {{"before_steps", "before the first step (setup)"},
                        {"after_steps", "after the last step"},
                        {"evaluation", "after the last step, in evaluation"}};
            for (size_t i = 0; i < sizeof(says) / sizeof(says[0]); i++)
                if (strcmp(st->peak_where, says[i].where) == 0)
                    rt_line(c, RT_PLAIN, "                 the peak is %s", says[i].text);
        }
    }
}

/* One ranked site: its headline, then its stack. */
static void rt_site_block(rt_ctx_t *c, size_t rank, const prof_site_t *s, const char *headline)
{
    if (s->category)
        rt_line(c, RT_PLAIN, "  #%-3zu %s%s [%s]", rank, headline, s->sampled ? " (sampled)" : "",
                s->category);
    else
        rt_line(c, RT_PLAIN, "  #%-3zu %s%s", rank, headline, s->sampled ? " (sampled)" : "");
    rt_stack(c, s);
}

static void rt_peak_sites(rt_ctx_t *c, const prof_result_t *r, size_t *idx)
{
    const prof_summary_t *s = &r->summary;
    char b1[REPORT_BYTES_BUFLEN], head[160];
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "Peak memory came from:");
    size_t n = rt_top(r, rt_key_at_peak, idx, c->max_sites);
    if (n == 0) {
        rt_line(c, RT_PLAIN, "  %s", s->peak_bytes ? "(no stacks recorded)" : "(nothing was live)");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const prof_site_t *site = &r->sites[idx[i]];
        double pct = s->peak_bytes ? 100.0 * (double)site->live_bytes_at_peak /
                                         (double)s->peak_bytes : 0.0;
        snprintf(head, sizeof(head), "%s (%.1f%% of peak) in %" PRIu64 " allocation%s",
                 report_format_bytes(site->live_bytes_at_peak, b1, sizeof(b1)), pct,
                 site->live_allocations_at_peak, rt_s(site->live_allocations_at_peak));
        rt_site_block(c, i + 1, site, head);
    }
}

static void rt_leaks(rt_ctx_t *c, const prof_result_t *r, size_t *idx)
{
    const prof_summary_t *s = &r->summary;
    char b1[REPORT_BYTES_BUFLEN], head[160];
    /* Memory still live is a leak only if the process really finished. */
    bool finished = r->process.end == PROF_END_EXITED || r->process.end == PROF_END_SIGNALED;
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "%s", finished ? "Leaks at exit:" : "Still live at the end of the trace:");
    if (s->leaked_bytes == 0 && s->leaked_allocations == 0) {
        rt_line(c, RT_PLAIN, "  none: every block was freed");
        return;
    }
    size_t n = rt_top(r, rt_key_leaked, idx, c->max_sites);
    if (n == 0)
        rt_line(c, RT_PLAIN, "  %s in %" PRIu64 " allocation%s (no stacks recorded)",
                report_format_bytes(s->leaked_bytes, b1, sizeof(b1)), s->leaked_allocations,
                rt_s(s->leaked_allocations));
    for (size_t i = 0; i < n; i++) {
        const prof_site_t *site = &r->sites[idx[i]];
        snprintf(head, sizeof(head), "%s in %" PRIu64 " allocation%s",
                 report_format_bytes(site->live_bytes, b1, sizeof(b1)), site->live_allocations,
                 rt_s(site->live_allocations));
        rt_site_block(c, i + 1, site, head);
    }
}

static void rt_temporaries(rt_ctx_t *c, const prof_result_t *r, size_t *idx)
{
    size_t n = rt_top(r, rt_key_temporary, idx, c->max_sites);
    if (n == 0)
        return;
    char head[160];
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "Most temporary allocations (freed right after):");
    for (size_t i = 0; i < n; i++) {
        const prof_site_t *site = &r->sites[idx[i]];
        snprintf(head, sizeof(head), "%" PRIu64 " temporary of %" PRIu64 " allocation%s",
                 site->temporary_allocations, site->allocations, rt_s(site->allocations));
        rt_site_block(c, i + 1, site, head);
    }
}

static void rt_children(rt_ctx_t *c, const prof_result_t *r)
{
    if (r->children == NULL || r->child_count == 0)
        return;
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN], end[96];
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "Child processes:");
    for (size_t i = 0; i < r->child_count; i++) {
        const prof_child_t *ch = &r->children[i];
        rt_line(c, RT_PLAIN, "  pid %" PRId32 ": %s", ch->pid, ch->command ? ch->command : "?");
        rt_line(c, RT_PLAIN, "        peak %s, %" PRIu64 " allocation%s, leaked %s, %s",
                report_format_bytes(ch->peak_bytes, b1, sizeof(b1)), ch->total_allocations,
                rt_s(ch->total_allocations),
                report_format_bytes(ch->leaked_bytes, b2, sizeof(b2)),
                rt_ending(ch->end, ch->exit_code, ch->signal, end, sizeof(end)));
    }
}

/* The recommendations, largest saving first: what to change and the peak
 * predicted after it (mlmem advise prints the reasoning in full). */
static void rt_advice(rt_ctx_t *c, const prof_result_t *r)
{
    if (r->recommendations == NULL || r->recommendation_count == 0)
        return;
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN];
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "What to change (predicted peak after each change alone):");
    for (size_t i = 0; i < r->recommendation_count; i++) {
        const prof_recommendation_t *a = &r->recommendations[i];
        rt_line(c, RT_PLAIN, "  %zu. %s", i + 1, a->title ? a->title : "?");
        if (a->kind == PROF_ADVICE_CHURN)
            rt_line(c, RT_PLAIN, "     peak unchanged; saves page faults every step");
        else
            rt_line(c, RT_PLAIN, "     %s %s (saves %s), confidence %.0f%%",
                    a->deployment_only ? "deployed weights save; peak" : "peak",
                    report_format_bytes(a->predicted_peak_bytes, b1, sizeof(b1)),
                    report_format_bytes(a->bytes_saved, b2, sizeof(b2)), 100.0 * a->confidence);
        rt_line(c, RT_PLAIN, "     cost: %s", a->cost ? a->cost : "?");
        if (a->flags)
            rt_line(c, RT_PLAIN, "     mlmem-train: %s", a->flags);
    }
    rt_line(c, RT_PLAIN, "  (mlmem advise REPORT.json explains each one; --budget SIZE plans)");
}

/* ------------------------------------------------------------------------ */

/* Fails (-1) when the ranking buffer cannot be allocated or 'out' reports an
 * error; what was written by then stays written. */
int report_text_write(const prof_result_t *r, FILE *out, const report_text_options_t *opt)
{
    rt_ctx_t c = {
        .out = out,
        .color = opt && opt->use_color,
        .max_sites = opt && opt->max_sites ? opt->max_sites : REPORT_TEXT_MAX_SITES,
        .max_frames = opt && opt->max_frames ? opt->max_frames : REPORT_TEXT_MAX_FRAMES,
    };
    if (r->sites == NULL || c.max_sites > r->site_count)
        c.max_sites = r->sites ? r->site_count : 0;
    size_t *idx = malloc((c.max_sites + 1) * sizeof(*idx));
    if (idx == NULL)
        return -1;
    rt_header(&c, r);
    rt_totals(&c, r);
    rt_categories(&c, r);
    rt_peak_sites(&c, r, idx);
    rt_leaks(&c, r, idx);
    rt_temporaries(&c, r, idx);
    rt_children(&c, r);
    rt_advice(&c, r);
    free(idx);
    return ferror(out) || fflush(out) != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Diff of two runs (report_diff.c joins the sites)                          */

/* "+1.50 MiB (+12.3%)", "-512 B (-0.1%)", "0", "+2.00 KiB (new)". */
/* "+1.50 MiB", "-512 B": now - base, '+' when not lower. */
static const char *rt_delta_bytes(uint64_t base, uint64_t now, char *buf, size_t len)
{
    char b[REPORT_BYTES_BUFLEN];
    report_format_bytes(now > base ? now - base : base - now, b, sizeof b);
    snprintf(buf, len, "%c%s", now >= base ? '+' : '-', b);
    return buf;
}

static const char *rt_change_bytes(uint64_t base, uint64_t now, char *buf, size_t len)
{
    char d[REPORT_BYTES_BUFLEN + 1];
    if (base == now)
        snprintf(buf, len, "0");
    else if (base == 0)
        snprintf(buf, len, "%s (new)", rt_delta_bytes(base, now, d, sizeof d));
    else
        snprintf(buf, len, "%s (%+.1f%%)", rt_delta_bytes(base, now, d, sizeof d),
                 100.0 * ((double)now - (double)base) / (double)base);
    return buf;
}

static const char *rt_change_count(uint64_t base, uint64_t now, char *buf, size_t len)
{
    if (base == now)
        snprintf(buf, len, "0");
    else if (base == 0)
        snprintf(buf, len, "+%" PRIu64 " (new)", now);
    else
        snprintf(buf, len, "%c%" PRIu64 " (%+.1f%%)", now > base ? '+' : '-',
                 now > base ? now - base : base - now,
                 100.0 * ((double)now - (double)base) / (double)base);
    return buf;
}

static void rt_diff_bytes_row(rt_ctx_t *c, const char *label, uint64_t base, uint64_t now)
{
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN], ch[64];
    rt_line(c, RT_PLAIN, "  %-22s %14s %14s  %s", label, report_format_bytes(base, b1, sizeof b1),
            report_format_bytes(now, b2, sizeof b2), rt_change_bytes(base, now, ch, sizeof ch));
}

static void rt_diff_count_row(rt_ctx_t *c, const char *label, uint64_t base, uint64_t now)
{
    char ch[64];
    rt_line(c, RT_PLAIN, "  %-22s %14" PRIu64 " %14" PRIu64 "  %s", label, base, now,
            rt_change_count(base, now, ch, sizeof ch));
}

static void rt_diff_side(rt_ctx_t *c, const char *role, const char *name, const prof_result_t *r)
{
    char end[96], d[REPORT_DURATION_BUFLEN];
    const prof_process_t *p = &r->process;
    const char *cmd = p->command && p->command[0] ? p->command : p->exe ? p->exe : "?";
    rt_line(c, RT_PLAIN, "  %-4s %s: %s", role, name, cmd);
    rt_line(c, RT_PLAIN, "       %s after %s%s", rt_ending(p->end, p->exit_code, p->signal, end,
                                                          sizeof end),
            report_format_duration(r->summary.duration_ns, d, sizeof d),
            r->summary.dropped_events + r->summary.lost_events
                ? "; events were dropped or lost: its figures are approximate" : "");
}

/* Writes to 'out' the words of 'a' that 'b' lacks (each word of 'b'
 * matches one of 'a' at most), in a's order. */
static void rt_words_missing(const char *a, const char *b, char *out, size_t len)
{
    char bw[2048];
    snprintf(bw, sizeof bw, "%s", b);
    const char *p = a;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n)
            break;
        /* Find the word in what is left of b, and use it up. */
        char *q = bw, *hit = NULL;
        while (*q && !hit) {
            while (*q == ' ')
                q++;
            size_t m = strcspn(q, " ");
            if (m == n && strncmp(q, p, n) == 0)
                hit = q;
            q += m;
        }
        if (hit) {
            memset(hit, ' ', n);
        } else {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%.*s", used ? " " : "", (int)n, p);
        }
        p += n;
    }
}

/* What the new command line adds and drops, word by word (the changed
 * flags, when one run applied a recommendation). */
static void rt_diff_arguments(rt_ctx_t *c, const prof_result_t *base, const prof_result_t *now)
{
    const char *a = base->process.command, *b = now->process.command;
    if (!a || !b || strcmp(a, b) == 0)
        return;
    char added[1024] = "", dropped[1024] = "";
    rt_words_missing(b, a, added, sizeof added);
    rt_words_missing(a, b, dropped, sizeof dropped);
    rt_line(c, RT_PLAIN, "  the new command line%s%s%s%s", added[0] ? " adds: " : "", added,
            added[0] && dropped[0] ? "; drops: " : dropped[0] ? " drops: " : "", dropped);
}

static void rt_diff_steps(rt_ctx_t *c, const prof_result_t *base, const prof_result_t *now)
{
    char sb[64], sn[64], d1[REPORT_DURATION_BUFLEN], d2[REPORT_DURATION_BUFLEN];
    const prof_result_t *r[2] = {base, now};
    char *out[2] = {sb, sn};
    char *per[2] = {d1, d2};
    int any = 0;
    for (int i = 0; i < 2; i++) {
        const prof_steps_t *st = &r[i]->steps;
        if (st->count && st->source && strcmp(st->source, "none") != 0) {
            snprintf(out[i], 64, "%" PRIu64 " %s", st->count,
                     strcmp(st->source, "annotations") == 0 ? "annotated" : "detected");
            report_format_duration(st->period_ns, per[i], REPORT_DURATION_BUFLEN);
            any = 1;
        } else {
            snprintf(out[i], 64, "-");
            snprintf(per[i], REPORT_DURATION_BUFLEN, "-");
        }
    }
    if (!any)
        return;
    rt_line(c, RT_PLAIN, "  %-22s %14s %14s", "Steps", sb, sn);
    rt_line(c, RT_PLAIN, "  %-22s %14s %14s", "  every", d1, d2);
}

static void rt_diff_categories(rt_ctx_t *c, const prof_result_t *base, const prof_result_t *now)
{
    if (base->category_count != MLMEM_CATEGORY_COUNT || now->category_count != MLMEM_CATEGORY_COUNT)
        return;
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "Peak by category:");
    for (size_t i = 0; i < MLMEM_CATEGORY_COUNT; i++) {
        const prof_category_t *a = &base->categories[i], *b = &now->categories[i];
        if (!a->bytes_at_peak && !b->bytes_at_peak)
            continue;
        rt_diff_bytes_row(c, a->name ? a->name : "?", a->bytes_at_peak, b->bytes_at_peak);
    }
}

static void rt_diff_prediction(rt_ctx_t *c, const prof_result_t *base, const prof_result_t *now,
                               const report_diff_t *d)
{
    if (d->nearest_prediction < 0)
        return;
    const prof_recommendation_t *a = &base->recommendations[d->nearest_prediction];
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN];
    uint64_t m = now->summary.peak_bytes, p = a->predicted_peak_bytes;
    rt_line(c, RT_PLAIN, "%s", "");
    rt_line(c, RT_HEADING, "The base's prediction nearest the new peak (if the new run applied it):");
    rt_line(c, RT_PLAIN, "  [%s] %s", prof_advice_kind_name(a->kind), a->title ? a->title : "");
    rt_line(c, RT_PLAIN, "  predicted %s, measured %s: %.1f%% %s", report_format_bytes(p, b1, sizeof b1),
            report_format_bytes(m, b2, sizeof b2),
            m ? 100.0 * (double)(p > m ? p - m : m - p) / (double)m : 0.0,
            p >= m ? "above the measured peak" : "below the measured peak");
}

static void rt_diff_sites(rt_ctx_t *c, const report_diff_t *d)
{
    rt_line(c, RT_PLAIN, "%s", "");
    if (!d->sites_comparable) {
        rt_line(c, RT_PLAIN, "Sites are not compared: a run's sites have no frames to join them "
                "on.");
        return;
    }
    rt_line(c, RT_HEADING, "Sites whose contribution to the peak changed most:");
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN], ch[64];
    size_t shown = 0;
    for (size_t i = 0; i < d->site_count && shown < c->max_sites; i++) {
        const report_diff_site_t *s = &d->sites[i];
        if (s->base.at_peak == s->now.at_peak && s->base.allocations == s->now.allocations)
            break; /* sorted: no change from here on */
        const prof_site_t *show = s->now.site ? s->now.site : s->base.site;
        const char *cb = s->base.site && s->base.site->category ? s->base.site->category : NULL;
        const char *cn = s->now.site && s->now.site->category ? s->now.site->category : NULL;
        char cats[64] = "";
        if (cb && cn && strcmp(cb, cn) != 0)
            snprintf(cats, sizeof cats, " [%s -> %s]", cb, cn);
        else if (cb || cn)
            snprintf(cats, sizeof cats, " [%s]", cn ? cn : cb);
        rt_line(c, RT_PLAIN, "  #%-3zu %s at the peak (%s -> %s), %" PRIu64 " -> %" PRIu64
                " allocations%s%s", ++shown, rt_delta_bytes(s->base.at_peak, s->now.at_peak, ch,
                                                            sizeof ch),
                report_format_bytes(s->base.at_peak, b1, sizeof b1),
                report_format_bytes(s->now.at_peak, b2, sizeof b2), s->base.allocations,
                s->now.allocations,
                !s->base.site ? ", only in new" : !s->now.site ? ", only in base" : "", cats);
        rt_stack(c, show);
    }
    if (!shown)
        rt_line(c, RT_PLAIN, "  none: every site has the same figures in both runs");
}

int report_diff_text_write(const prof_result_t *base, const prof_result_t *now,
                           const report_diff_t *d, const char *base_name, const char *now_name,
                           FILE *out, size_t max_sites)
{
    rt_ctx_t c = {
        .out = out,
        .max_sites = max_sites ? max_sites : REPORT_TEXT_MAX_SITES,
        .max_frames = REPORT_TEXT_MAX_FRAMES,
    };
    const prof_summary_t *a = &base->summary, *b = &now->summary;
    rt_line(&c, RT_HEADING, "mlmem diff");
    rt_diff_side(&c, "base", base_name, base);
    rt_diff_side(&c, "new", now_name, now);
    rt_diff_arguments(&c, base, now);
    rt_line(&c, RT_PLAIN, "%s", "");
    rt_line(&c, RT_PLAIN, "  %-22s %14s %14s  %s", "", "base", "new", "change");
    rt_diff_bytes_row(&c, "Peak heap", a->peak_bytes, b->peak_bytes);
    rt_diff_bytes_row(&c, "  of which mmap", a->peak_mmap_bytes, b->peak_mmap_bytes);
    rt_diff_bytes_row(&c, "Peak RSS", a->peak_rss_bytes, b->peak_rss_bytes);
    rt_diff_count_row(&c, "Allocations", a->total_allocations, b->total_allocations);
    rt_diff_bytes_row(&c, "Bytes requested", a->total_bytes, b->total_bytes);
    rt_diff_count_row(&c, "Temporary allocations", a->temporary_allocations,
                      b->temporary_allocations);
    rt_diff_bytes_row(&c, "Leaked", a->leaked_bytes, b->leaked_bytes);
    char d1[REPORT_DURATION_BUFLEN], d2[REPORT_DURATION_BUFLEN];
    rt_line(&c, RT_PLAIN, "  %-22s %14s %14s", "Duration",
            report_format_duration(a->duration_ns, d1, sizeof d1),
            report_format_duration(b->duration_ns, d2, sizeof d2));
    rt_diff_steps(&c, base, now);
    rt_diff_categories(&c, base, now);
    rt_diff_prediction(&c, base, now, d);
    rt_diff_sites(&c, d);
    return ferror(out) || fflush(out) != 0 ? -1 : 0;
}
