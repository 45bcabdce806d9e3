/*
 * mlmem.c - the mlmem command: run, record, report.
 *
 *   mlmem run [options] -- CMD ARGS...     profile CMD live, write the trace,
 *                                         print the summary, optional JSON
 *   mlmem record -o TRACE [options] -- CMD   write the trace only
 *   mlmem report TRACE [--json OUT] [--text] [--pid PID] [--partial]
 *   mlmem run --tui [options] -- CMD ARGS...   the live dashboard (ui/)
 *   mlmem tui TRACE [--pid PID] [--partial]    replay a trace in the dashboard
 *
 * The command is a thin front end: the work is in the analyzer library
 * (session, launch, trace_file) and in reports/. Errors end the command
 * through die(), which says what went wrong and what to do.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mlmem/trace_format.h>

#include "advice.h"
#include "attribution.h"
#include "huge_pages.h"
#include "launch.h"
#include "report.h"
#include "session.h"
#include "trace_file.h"
#include "ui.h"

#define MLMEM_VERSION "0.1.0"

/* The analysis in progress, whose symbol helper threads die() stops before
 * the process exits: one still inside libdw then can crash mlmem. */
static prof_session_t *session_in_progress;

static void __attribute__((noreturn, format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mlmem: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (session_in_progress)
        prof_session_finish_symbols(session_in_progress);
    exit(code);
}

static void usage(FILE *out)
{
    fputs("usage: mlmem run [options] -- CMD [ARGS...]\n"
          "       mlmem record -o TRACE [options] -- CMD [ARGS...]\n"
          "       mlmem report TRACE [--json OUT] [--text] [--pid PID] [--partial]\n"
          "       mlmem run --tui [options] -- CMD [ARGS...]\n"
          "       mlmem tui TRACE [--pid PID] [--partial]\n"
          "       mlmem advise TRACE|REPORT.json [--budget SIZE] [--pid PID] [--rules FILE]\n"
          "       mlmem diff BASE NEW [--json OUT] [--sites N] [--rules FILE]\n"
          "\n"
          "run and record options:\n"
          "  -o, --output TRACE       trace file (run: default mlmem.<cmd>.<pid>.zst)\n"
          "      --no-trace           run: do not keep a trace file\n"
          "      --json FILE          run: also write the JSON report\n"
          "  -q, --quiet              run: do not print the text summary\n"
          "      --stacks=MODE        'sampled' (default): every allocation counted, a stack\n"
          "                           for each one >= the threshold and an unbiased sample of\n"
          "                           smaller ones; 'all': a stack for every allocation\n"
          "      --stack-threshold=N  bytes (default 4096; K, M, G suffixes)\n"
          "      --sample-rate=N      mean bytes between sampled small allocations (512K)\n"
          "      --no-follow-fork     profile only the command, not its children\n"
          "      --sites=N            sites shown in the text summary (default 10)\n"
          "      --rules FILE         attribution rules tried before the built-in ones\n"
          "                           (format: docs/attribution.md)\n"
          "      --tui                run: the live dashboard while CMD runs (docs/tui.md)\n"
          "      --log FILE           run --tui: where CMD's stdout and stderr go\n"
          "                           (default mlmem.<cmd>.<pid>.log; o shows it)\n"
          "\n"
          "report options:\n"
          "      --json FILE          write the JSON report (schema: docs/report-schema.md)\n"
          "      --text               print the text summary (default without --json)\n"
          "      --pid PID            report on that process of the run (default: the command)\n"
          "      --rules FILE         attribution rules, as for run\n"
          "      --partial            analyze a trace that was cut short\n"
          "\n"
          "tui: replays TRACE in the dashboard; --pid and --partial as for report\n"
          "\n"
          "advise: what to change to need less memory, from a trace (replayed) or a JSON\n"
          "report; --budget SIZE (K, M, G) also plans the cheapest changes that fit\n"
          "\n"
          "diff: what changed from run BASE to run NEW (each a trace or a JSON report):\n"
          "the figures side by side, the peak by category, BASE's prediction nearest NEW's\n"
          "peak, and the sites whose share of the peak changed most (traces, or reports\n"
          "with stacks); --json OUT writes it (schema: docs/report-schema.md)\n",
          out);
}

/* Parses "123", "4K", "2M", "1G". Dies with the option's name otherwise. */
static uint64_t parse_size(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        die(2, "%s: '%s' is not a size (examples: 4096, 64K, 2M)", opt, s);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    }
    if (*end)
        die(2, "%s: '%s' is not a size (examples: 4096, 64K, 2M)", opt, s);
    return v;
}

static void print_text(const prof_result_t *r, size_t sites)
{
    report_text_options_t o = {0};
    o.max_sites = sites;
    if (report_text_write(r, stdout, &o) != 0)
        die(1, "cannot write the text report: %s", strerror(errno));
    fflush(stdout);
}

static void write_json(const prof_result_t *r, const char *path)
{
    char err[512];
    if (report_json_write(r, path, err, sizeof err) != 0)
        die(1, "%s", err);
}

/* Loads the user's attribution rules into 'rules'; dies with file:line on
 * a bad rule, before anything is started or written. No operation without
 * --rules. */
static void load_rules(const char *path, prof_rules_t *rules)
{
    if (!path)
        return;
    char err[1024];
    if (prof_rules_load(path, rules, err, sizeof err) != 0)
        die(2, "%s", err);
}

/* Replays the trace at 'path' (with the user's rules, if any) and fills 'out'
 * for process 'pid' (0: the command), symbolized and attributed; dies with
 * a clear message otherwise. A trace cut short ('partial') or a malformed
 * stream is analyzed as far as it goes, with a warning. */
static void trace_result(const char *path, const char *rules_path, int partial, int32_t pid,
                         prof_result_t *out)
{
    prof_rules_t rules = {0};
    load_rules(rules_path, &rules);
    prof_session_t *s = prof_session_new();
    if (!s)
        die(1, "out of memory");
    session_in_progress = s;
    if (rules_path)
        prof_session_set_rules(s, &rules);
    prof_session_prefetch_symbols(s, pid);
    char err[1024];
    prof_trace_stats_t st;
    if (prof_trace_replay(path, s, partial, &st, err, sizeof err) != 0)
        die(1, "%s", err);
    if (!st.complete)
        fprintf(stderr, "mlmem: warning: %s was cut short; figures cover what it holds\n", path);
    if (prof_session_error(s))
        fprintf(stderr, "mlmem: warning: %s: %s; that process's figures stop there\n", path,
                prof_session_error(s));
    int rc = prof_session_result(s, pid, 1, 0, out); /* rules need symbols */
    if (rc == -2)
        die(1, pid ? "%s: no process with pid %d in this trace" : "%s: the trace holds no process",
            path, (int)pid);
    if (rc != 0)
        die(1, "out of memory building the report");
    session_in_progress = NULL;
    prof_session_free(s);
    prof_rules_free(&rules);
}

/* ---- run / record ------------------------------------------------------------ */

typedef struct {
    prof_session_t *session;      /* NULL: record only                     */
    prof_trace_writer_t *trace;   /* NULL: no trace                        */
    int trace_failed;
    int analysis_warned;
    ui_live_t *tui;               /* NULL: no dashboard                    */
    char tui_warning[512];        /* the first warning shown on the dashboard,
                                     repeated on stderr after it closes     */
} run_ctx_t;

/* A warning during the run: on stderr, or on the dashboard's status line
 * while it holds the terminal. */
static void __attribute__((format(printf, 2, 3))) run_warn(run_ctx_t *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->tui) {
        ui_live_message(c->tui, msg);
        if (!c->tui_warning[0])
            snprintf(c->tui_warning, sizeof c->tui_warning, "%s", msg);
    } else
        fprintf(stderr, "mlmem: %s\n", msg);
}

static void trace_record(run_ctx_t *c, uint8_t tag, uint32_t id, const uint8_t *d, size_t n)
{
    if (!c->trace || c->trace_failed)
        return;
    if (prof_trace_write_stream(c->trace, tag, id, d, n) != 0) {
        run_warn(c, "%s; the run continues without a trace", prof_trace_writer_error(c->trace));
        c->trace_failed = 1;
    }
}

static void analysis_warning(run_ctx_t *c)
{
    if (!c->analysis_warned) {
        run_warn(c, "%s", prof_session_error(c->session));
        c->analysis_warned = 1;
    }
}

static int on_open(void *ctx, uint32_t id)
{
    run_ctx_t *c = ctx;
    trace_record(c, MLMEM_TREC_STREAM_OPEN, id, NULL, 0);
    if (c->session && prof_session_open(c->session, id) != 0)
        analysis_warning(c);
    return 0;
}

static int on_data(void *ctx, uint32_t id, const uint8_t *data, size_t len)
{
    run_ctx_t *c = ctx;
    trace_record(c, MLMEM_TREC_STREAM_DATA, id, data, len);
    if (c->session && prof_session_data(c->session, id, data, len) != 0)
        analysis_warning(c);
    return 0;
}

static int on_close(void *ctx, uint32_t id)
{
    run_ctx_t *c = ctx;
    trace_record(c, MLMEM_TREC_STREAM_CLOSE, id, NULL, 0);
    if (c->session && prof_session_close(c->session, id) != 0)
        analysis_warning(c);
    return 0;
}

static void on_tick(void *ctx)
{
    run_ctx_t *c = ctx;
    /* In a quiet spell no record arrives to trigger the trace's periodic
     * flush: do it here, so a killed mlmem leaves everything up to now. */
    if (c->trace && !c->trace_failed && prof_trace_writer_tick(c->trace) != 0) {
        fprintf(stderr, "mlmem: %s; the run continues without a trace\n",
                prof_trace_writer_error(c->trace));
        c->trace_failed = 1;
    }
    if (c->tui)
        ui_live_tick(c->tui);
}

/* Dies unless 'path' can be written: an existing file must be writable, a
 * new one's directory must be. Creates nothing. */
static void check_writable(const char *path, const char *what)
{
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) != 0)
            die(1, "cannot write %s %s: %s", what, path, strerror(errno));
        return;
    }
    char *copy = strdup(path);
    const char *dir = copy ? dirname(copy) : ".";
    if (access(dir, W_OK) != 0)
        die(1, "cannot write %s %s: %s", what, path, strerror(errno));
    free(copy);
}

static int exit_status_of(const prof_run_info_t *info)
{
    if (info->end == PROF_END_EXITED)
        return info->exit_code;
    if (info->end == PROF_END_SIGNALED)
        return 128 + info->signal;
    return 1;
}

/* cmd_run's analysis, which the process's end frees (see there). */
static prof_session_t *session_left_to_exit;

/* main()'s argv, for executing mlmem again (huge_pages.h). */
static char **main_argv;

static int cmd_run(int argc, char **argv, int record_only)
{
    enum { OPT_NO_TRACE = 256, OPT_JSON, OPT_STACKS, OPT_THRESHOLD, OPT_RATE, OPT_NO_FOLLOW,
           OPT_SITES, OPT_TUI, OPT_LOG, OPT_RULES };
    static const struct option opts[] = {
        {"output", required_argument, 0, 'o'},
        {"no-trace", no_argument, 0, OPT_NO_TRACE},
        {"json", required_argument, 0, OPT_JSON},
        {"quiet", no_argument, 0, 'q'},
        {"stacks", required_argument, 0, OPT_STACKS},
        {"stack-threshold", required_argument, 0, OPT_THRESHOLD},
        {"sample-rate", required_argument, 0, OPT_RATE},
        {"no-follow-fork", no_argument, 0, OPT_NO_FOLLOW},
        {"sites", required_argument, 0, OPT_SITES},
        {"rules", required_argument, 0, OPT_RULES},
        {"tui", no_argument, 0, OPT_TUI},
        {"log", required_argument, 0, OPT_LOG},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *trace_path = NULL, *json_path = NULL, *log_path = NULL, *rules_path = NULL;
    prof_rules_t rules = {0};
    int no_trace = 0, quiet = 0, tui = 0;
    size_t sites = 0;
    prof_launch_options_t lo = {.stack_mode = MLMEM_STACKS_SAMPLED, .follow_fork = 1,
                                .grace_ms = 2000};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': trace_path = optarg; break;
        case OPT_NO_TRACE: no_trace = 1; break;
        case OPT_JSON: json_path = optarg; break;
        case 'q': quiet = 1; break;
        case OPT_STACKS:
            if (strcmp(optarg, "all") == 0)
                lo.stack_mode = MLMEM_STACKS_ALL;
            else if (strcmp(optarg, "sampled") == 0)
                lo.stack_mode = MLMEM_STACKS_SAMPLED;
            else
                die(2, "--stacks: '%s' is not a mode (use 'sampled' or 'all')", optarg);
            break;
        case OPT_THRESHOLD: lo.stack_threshold = parse_size("--stack-threshold", optarg); break;
        case OPT_RATE: lo.sample_rate = parse_size("--sample-rate", optarg); break;
        case OPT_NO_FOLLOW: lo.follow_fork = 0; break;
        case OPT_SITES: sites = (size_t)parse_size("--sites", optarg); break;
        case OPT_RULES: rules_path = optarg; break;
        case OPT_TUI: tui = 1; break;
        case OPT_LOG: log_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (record_only && tui)
        die(2, "record: --tui is an option of run (mlmem run --tui -- CMD)");
    if (log_path && !tui)
        die(2, "--log goes with --tui (without it the command's output is on the terminal)");
    if (tui && (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)))
        die(2, "--tui needs a terminal (stdin and stdout are not both terminals); "
               "run without --tui for the text summary");
    if (optind >= argc)
        die(2, "%s: no command given (usage: mlmem %s [options] -- CMD ARGS...)",
            record_only ? "record" : "run", record_only ? "record -o TRACE" : "run");
    lo.argv = argv + optind;
    if (record_only && !trace_path)
        die(2, "record: -o TRACE is required");
    /* Only the analysis of every stack needs the analyzer's heap on huge
     * pages (hundreds of thousands of sites); record keeps none, and the
     * sampled mode's few sites would pay an exec for nothing. */
    if (!record_only && lo.stack_mode == MLMEM_STACKS_ALL)
        prof_huge_pages_exec(main_argv);
    load_rules(rules_path, &rules);

    char *preload = prof_launch_find_preload();
    if (!preload)
        die(1, "cannot find libmlmem_preload.so next to the mlmem executable "
               "(set MLMEM_PRELOAD to its path)");
    lo.preload = preload;

    char default_trace[4096];
    if (!trace_path && !no_trace) {
        char *name = strdup(lo.argv[0]);
        snprintf(default_trace, sizeof default_trace, "mlmem.%s.%d.zst", basename(name),
                 (int)getpid());
        free(name);
        trace_path = default_trace;
    }

    run_ctx_t ctx = {0};
    char err[1024];
    /* Open the outputs before the command starts: a bad path is reported
     * now, not after an hour of training. */
    if (trace_path) {
        ctx.trace = prof_trace_writer_open(trace_path, err, sizeof err);
        if (!ctx.trace)
            die(1, "%s", err);
    }
    if (json_path)
        check_writable(json_path, "the JSON report");
    if (!record_only) {
        ctx.session = prof_session_new();
        if (!ctx.session)
            die(1, "out of memory");
        session_in_progress = ctx.session;
        if (rules_path)
            prof_session_set_rules(ctx.session, &rules);
        prof_session_prefetch_symbols(ctx.session, 0);
    }
    lo.on_open = on_open;
    lo.on_data = on_data;
    lo.on_close = on_close;
    lo.on_tick = on_tick;
    lo.ctx = &ctx;

    char default_log[4096];
    if (tui) {
        if (!log_path) {
            char *name = strdup(lo.argv[0]);
            snprintf(default_log, sizeof default_log, "mlmem.%s.%d.log", basename(name),
                     (int)getpid());
            free(name);
            log_path = default_log;
        }
        /* Private, and never through a link: the default name is in the
         * current directory, which may be a shared one such as /tmp. */
        int probe = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (probe < 0)
            die(1, "cannot write the command's output log %s: %s (choose another with --log)",
                log_path, errno == ELOOP ? "it is a symbolic link" : strerror(errno));
        close(probe);
        lo.output_log = log_path;
        char cmdline[1024] = "";
        for (char *const *a = lo.argv; *a; a++) {
            size_t used = strlen(cmdline);
            snprintf(cmdline + used, sizeof cmdline - used, "%s%s", used ? " " : "", *a);
        }
        ctx.tui = ui_live_begin(ctx.session, cmdline, log_path, err, sizeof err);
        if (!ctx.tui)
            die(1, "%s", err);
    }

    prof_run_info_t info;
    if (prof_launch_run(&lo, &info, err, sizeof err) != 0) {
        ui_live_close(ctx.tui);
        if (ctx.trace) {
            /* Nothing ran: leave no empty trace behind. */
            prof_trace_writer_abort(ctx.trace);
            unlink(trace_path);
        }
        die(1, "%s", err);
    }
    int status = exit_status_of(&info);
    if (ctx.tui) {
        /* The final figures stay until the user quits; then the usual
         * outputs follow on the restored terminal. */
        ui_live_end_run(ctx.tui, &info);
        ui_live_wait(ctx.tui);
        ui_live_close(ctx.tui);
        ctx.tui = NULL;
        if (ctx.tui_warning[0])
            fprintf(stderr, "mlmem: %s\n", ctx.tui_warning);
        if (!quiet)
            fprintf(stderr, "mlmem: the command's output is in %s\n", log_path);
    }

    if (ctx.trace) {
        if (!ctx.trace_failed && prof_trace_write_run_info(ctx.trace, &info) != 0)
            ctx.trace_failed = 1;
        if (ctx.trace_failed) {
            prof_trace_writer_abort(ctx.trace);
        } else if (prof_trace_writer_close(ctx.trace, err, sizeof err) != 0) {
            fprintf(stderr, "mlmem: %s: %s\n", trace_path, err);
            ctx.trace_failed = 1;
        } else if (!quiet) {
            fprintf(stderr, "mlmem: trace written to %s (mlmem report %s)\n", trace_path,
                    trace_path);
        }
    }
    if (ctx.session) {
        prof_session_set_run_info(ctx.session, &info);
        if (prof_session_stream_count(ctx.session) == 0) {
            fprintf(stderr, "mlmem: no process of the run loaded the shim: is %s statically "
                            "linked, or setuid? Nothing was recorded.\n", lo.argv[0]);
        } else {
            prof_result_t r;
            int rc = prof_session_result(ctx.session, 0, 1, 0, &r);
            if (rc == -2)
                die(1, "no process of the run sent any data: it ended before the shim "
                       "could report anything");
            if (rc != 0)
                die(1, "out of memory building the report");
            /* JSON first: a closed stdout must not cost the report. */
            if (json_path)
                write_json(&r, json_path);
            if (!quiet)
                print_text(&r, sites);
            prof_result_free(&r);
        }
        /* Not freed: the process ends now, and the kernel takes the
         * analysis back at once, where freeing it piece by piece (libdw's
         * trees, the accounting's tables) cost 1.5 ms after every run
         * (docs/benchmarks.md, ninth round). Kept reachable for leak
         * checkers. Its symbol helper threads are stopped first: one still
         * inside libdw when the process exits crashed it (one run in many
         * under load), and the frames are saved for the next run. */
        prof_session_finish_symbols(ctx.session);
        session_left_to_exit = ctx.session;
    } else {
        free(info.command);
    }
    prof_rules_free(&rules);
    free(preload);
    /* record's one product is the trace: without it, a command that
     * succeeded must not look like a successful recording. */
    if (record_only && ctx.trace_failed && status == 0)
        return 1;
    return status;
}

/* ---- report ------------------------------------------------------------------ */

static int cmd_report(int argc, char **argv)
{
    prof_huge_pages_exec(main_argv); /* it may replay a trace of any size */
    enum { OPT_JSON = 256, OPT_TEXT, OPT_PID, OPT_PARTIAL, OPT_SITES, OPT_RULES };
    static const struct option opts[] = {
        {"json", required_argument, 0, OPT_JSON},
        {"text", no_argument, 0, OPT_TEXT},
        {"pid", required_argument, 0, OPT_PID},
        {"partial", no_argument, 0, OPT_PARTIAL},
        {"sites", required_argument, 0, OPT_SITES},
        {"rules", required_argument, 0, OPT_RULES},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *json_path = NULL, *rules_path = NULL;
    int text = 0, partial = 0;
    int32_t pid = 0;
    size_t sites = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json_path = optarg; break;
        case OPT_TEXT: text = 1; break;
        case OPT_PID: pid = (int32_t)parse_size("--pid", optarg); break;
        case OPT_PARTIAL: partial = 1; break;
        case OPT_SITES: sites = (size_t)parse_size("--sites", optarg); break;
        case OPT_RULES: rules_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1)
        die(2, "report: give exactly one trace file (usage: mlmem report TRACE [--json OUT])");
    const char *path = argv[optind];
    if (!json_path)
        text = 1;
    prof_result_t r;
    trace_result(path, rules_path, partial, pid, &r);
    if (json_path)
        write_json(&r, json_path);
    if (text)
        print_text(&r, sites);
    prof_result_free(&r);
    return 0;
}

/* ---- advise ---------------------------------------------------------------- */

/* 1 if 'path' holds a JSON document (its first non-blank byte is '{'). */
static int is_json_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die(1, "cannot open %s: %s", path, strerror(errno));
    int ch;
    while ((ch = fgetc(f)) == ' ' || ch == '\n' || ch == '\t' || ch == '\r')
        ;
    fclose(f);
    return ch == '{';
}

static void print_advice(const prof_result_t *r)
{
    char b1[REPORT_BYTES_BUFLEN], b2[REPORT_BYTES_BUFLEN];
    printf("Peak %s", report_format_bytes(r->summary.peak_bytes, b1, sizeof b1));
    if (r->process.command)
        printf(" of %s", r->process.command);
    printf("\n");
    if (r->category_count != MLMEM_CATEGORY_COUNT) {
        printf("No categories in this report (attribution did not run): no advice.\n");
        return;
    }
    if (!r->recommendation_count) {
        printf("No recommendation applies.\n");
        return;
    }
    for (size_t i = 0; i < r->recommendation_count; i++) {
        const prof_recommendation_t *a = &r->recommendations[i];
        printf("\n%zu. [%s] %s\n", i + 1, prof_advice_kind_name(a->kind), a->title);
        if (a->kind == PROF_ADVICE_CHURN)
            printf("   predicted peak: unchanged (saves page faults, not bytes)\n");
        else
            printf("   predicted peak: %s%s (saves %s), confidence %.0f%%\n",
                   report_format_bytes(a->predicted_peak_bytes, b1, sizeof b1),
                   a->deployment_only ? " at deployment" : "",
                   report_format_bytes(a->bytes_saved, b2, sizeof b2), 100 * a->confidence);
        printf("   cost: %s\n", a->cost);
        printf("   why: %s\n", a->reasoning);
        printf("   how: %s\n", a->apply);
        if (a->flags)
            printf("   mlmem-train: %s\n", a->flags);
    }
}

static void print_plan(const prof_result_t *r, uint64_t budget)
{
    prof_advice_plan_t plan;
    if (prof_advice_plan(r, budget, &plan) != 0)
        die(1, "out of memory planning for the budget");
    char b1[REPORT_BYTES_BUFLEN];
    printf("\nPlan for a budget of %s: %s\n", report_format_bytes(budget, b1, sizeof b1),
           plan.statement);
    for (size_t i = 0; i < plan.chosen_count; i++) {
        const prof_recommendation_t *a = &r->recommendations[plan.chosen[i]];
        printf("  - %s%s%s%s\n", a->title, a->flags ? " (" : "", a->flags ? a->flags : "",
               a->flags ? ")" : "");
    }
    if (plan.batch_statement)
        printf("%s\n", plan.batch_statement);
    prof_advice_plan_free(&plan);
}

/* The result of a trace (replayed, its main process or 'pid') or of a JSON
 * report (read back, advice computed again); 'who' names the command for
 * the errors. Dies on bad input with a message naming the file. */
static void load_result(const char *who, const char *path, const char *rules_path, int32_t pid,
                        prof_result_t *r)
{
    char err[1024];
    if (is_json_file(path)) {
        if (rules_path || pid)
            die(2, "%s: --rules and --pid apply to traces; %s is a JSON report", who, path);
        if (report_json_read(path, r, err, sizeof err) != 0)
            die(1, "%s", err);
        if (prof_advise(r) != 0)
            die(1, "out of memory computing the advice");
    } else {
        trace_result(path, rules_path, 1, pid, r);
    }
}

static int cmd_advise(int argc, char **argv)
{
    prof_huge_pages_exec(main_argv); /* it may replay a trace of any size */
    enum { OPT_BUDGET = 256, OPT_PID, OPT_RULES };
    static const struct option opts[] = {
        {"budget", required_argument, 0, OPT_BUDGET},
        {"pid", required_argument, 0, OPT_PID},
        {"rules", required_argument, 0, OPT_RULES},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *rules_path = NULL;
    uint64_t budget = 0;
    int32_t pid = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_BUDGET: budget = parse_size("--budget", optarg); break;
        case OPT_PID: pid = (int32_t)parse_size("--pid", optarg); break;
        case OPT_RULES: rules_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1)
        die(2, "advise: give exactly one trace or JSON report "
               "(usage: mlmem advise TRACE|REPORT.json [--budget SIZE])");
    prof_result_t r;
    load_result("advise", argv[optind], rules_path, pid, &r);
    print_advice(&r);
    if (budget)
        print_plan(&r, budget);
    prof_result_free(&r);
    return 0;
}

/* ---- diff --------------------------------------------------------------------- */

static int cmd_diff(int argc, char **argv)
{
    prof_huge_pages_exec(main_argv); /* it may replay a trace of any size */
    enum { OPT_JSON = 256, OPT_SITES, OPT_RULES };
    static const struct option opts[] = {
        {"json", required_argument, 0, OPT_JSON},
        {"sites", required_argument, 0, OPT_SITES},
        {"rules", required_argument, 0, OPT_RULES},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *json_path = NULL, *rules_path = NULL;
    size_t sites = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json_path = optarg; break;
        case OPT_SITES: sites = (size_t)parse_size("--sites", optarg); break;
        case OPT_RULES: rules_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 2)
        die(2, "diff: give two runs, each a trace or a JSON report "
               "(usage: mlmem diff BASE NEW [--json OUT])");
    const char *base_path = argv[optind], *now_path = argv[optind + 1];
    prof_result_t base, now;
    load_result("diff", base_path, rules_path, 0, &base);
    load_result("diff", now_path, rules_path, 0, &now);
    report_diff_t d;
    if (report_diff_compute(&base, &now, &d) != 0)
        die(1, "out of memory comparing the runs");
    char err[1024];
    if (json_path && report_diff_json_write(&base, &now, &d, base_path, now_path, 0, json_path,
                                            err, sizeof err) != 0)
        die(1, "%s", err);
    if (report_diff_text_write(&base, &now, &d, base_path, now_path, stdout, sites) != 0)
        die(1, "cannot write the diff to stdout: %s", strerror(errno));
    report_diff_free(&d);
    prof_result_free(&base);
    prof_result_free(&now);
    return 0;
}

/* ---- tui ---------------------------------------------------------------------- */

static int cmd_tui(int argc, char **argv)
{
    prof_huge_pages_exec(main_argv); /* it may replay a trace of any size */
    enum { OPT_PID = 256, OPT_PARTIAL };
    static const struct option opts[] = {
        {"pid", required_argument, 0, OPT_PID},
        {"partial", no_argument, 0, OPT_PARTIAL},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int partial = 0;
    int32_t pid = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PID: pid = (int32_t)parse_size("--pid", optarg); break;
        case OPT_PARTIAL: partial = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1)
        die(2, "tui: give exactly one trace file (usage: mlmem tui TRACE)");
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        die(2, "tui needs a terminal (stdin and stdout are not both terminals); "
               "mlmem report %s prints the summary", argv[optind]);
    char err[1024];
    fprintf(stderr, "mlmem: reading %s...\n", argv[optind]);
    if (ui_replay_main(argv[optind], pid, partial, err, sizeof err) != 0)
        die(1, "%s", err);
    return 0;
}

int main(int argc, char **argv)
{
    main_argv = argv;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1, 0);
    if (strcmp(cmd, "record") == 0)
        return cmd_run(argc - 1, argv + 1, 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    if (strcmp(cmd, "tui") == 0)
        return cmd_tui(argc - 1, argv + 1);
    if (strcmp(cmd, "advise") == 0)
        return cmd_advise(argc - 1, argv + 1);
    if (strcmp(cmd, "diff") == 0)
        return cmd_diff(argc - 1, argv + 1);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("mlmem %s (trace format %d, stream format %d)\n", MLMEM_VERSION,
               MLMEM_TRACE_VERSION, MLMEM_STREAM_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    die(2, "unknown command '%s' (try: mlmem run -- CMD, mlmem report TRACE)", cmd);
}
