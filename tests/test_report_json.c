/*
 * test_report_json.c - the JSON report: exact fields and values for a known
 * result, the schema string, the empty categories/recommendations, strings
 * that are not valid UTF-8, the atomic write with its error message, and the
 * errors of the reader (report_json_read()).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "reports/report.h"
#include "test_report_fixture.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

/* Builds the report of 'r', dumps it to text and parses it back, so every
 * check sees what a reader of the file would see. */
static json_t *rjtest_roundtrip(const prof_result_t *r)
{
    json_t *doc = report_json_build(r);
    assert_non_null(doc);
    char *text = json_dumps(doc, 0);
    json_decref(doc);
    assert_non_null(text);
    json_error_t jerr;
    json_t *back = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(back);
    return back;
}

/* The integer at obj[key]; fails the test if it is missing or not one. */
static long long rjtest_int(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

static const char *rjtest_str(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_string(v))
        fail_msg("%s is not a string", key);
    return json_string_value(v);
}

static void rjtest_is_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || !json_is_null(v))
        fail_msg("%s is not null", key);
}

/* A fresh empty directory under /tmp; the caller removes it. */
static void rjtest_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/mlmem-report-json-XXXXXX");
    assert_non_null(mkdtemp(buf));
}

/* Number of entries in 'dir' other than . and .. */
static int rjtest_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                   */

static void test_report_json_schema_and_sections(void **state)
{
    prof_result_t *r = rtest_result_new();
    json_t *j = rjtest_roundtrip(r);
    assert_string_equal(rjtest_str(j, "schema"), "mlmem-report/1");
    assert_string_equal(REPORT_SCHEMA, "mlmem-report/1");

    json_t *cat = json_object_get(j, "categories");
    assert_true(json_is_object(cat));
    assert_int_equal(json_object_size(cat), 0);
    json_t *rec = json_object_get(j, "recommendations");
    assert_true(json_is_array(rec));
    assert_int_equal(json_array_size(rec), 0);

    assert_true(json_is_object(json_object_get(j, "process")));
    assert_true(json_is_object(json_object_get(j, "summary")));
    assert_int_equal(json_array_size(json_object_get(j, "timeline")), 3);
    assert_int_equal(json_array_size(json_object_get(j, "sites")), 3);
    assert_int_equal(json_array_size(json_object_get(j, "threads")), 2);
    assert_int_equal(json_array_size(json_object_get(j, "children")), 1);
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_summary_values(void **state)
{
    prof_result_t *r = rtest_result_new();
    r->summary.dropped_events = 7;
    r->summary.lost_events = 3;
    r->summary.unmatched_frees = 2;
    r->summary.stacks_lost = 4;
    json_t *j = rjtest_roundtrip(r);
    json_t *s = json_object_get(j, "summary");
    assert_int_equal(rjtest_int(s, "peak_bytes"), 1572864);
    assert_int_equal(rjtest_int(s, "peak_time_ns"), 2500000000LL);
    assert_int_equal(rjtest_int(s, "peak_seq"), 777);
    assert_int_equal(rjtest_int(s, "peak_heap_bytes"), 1048576);
    assert_int_equal(rjtest_int(s, "peak_mmap_bytes"), 524288);
    assert_int_equal(rjtest_int(s, "total_allocations"), 1000);
    assert_int_equal(rjtest_int(s, "total_frees"), 990);
    assert_int_equal(rjtest_int(s, "total_bytes"), 10485760);
    assert_int_equal(rjtest_int(s, "live_bytes"), 3072);
    assert_int_equal(rjtest_int(s, "leaked_bytes"), 3072);
    assert_int_equal(rjtest_int(s, "leaked_allocations"), 10);
    assert_int_equal(rjtest_int(s, "temporary_allocations"), 250);
    assert_int_equal(rjtest_int(s, "file_mapped_bytes"), 8192);
    assert_int_equal(rjtest_int(s, "peak_file_mapped_bytes"), 16384);
    assert_int_equal(rjtest_int(s, "peak_rss_bytes"), 20971520);
    assert_int_equal(rjtest_int(s, "peak_rss_time_ns"), 3000000000LL);
    assert_int_equal(rjtest_int(s, "rss_samples"), 5);
    assert_int_equal(rjtest_int(s, "events"), 2000);
    assert_int_equal(rjtest_int(s, "dropped_events"), 7);
    assert_int_equal(rjtest_int(s, "lost_events"), 3);
    assert_int_equal(rjtest_int(s, "unmatched_frees"), 2);
    assert_int_equal(rjtest_int(s, "stacks_lost"), 4);
    assert_true(json_is_true(json_object_get(s, "approximate")));
    assert_int_equal(rjtest_int(s, "duration_ns"), 5000000000LL);
    assert_int_equal(rjtest_int(s, "steps_annotated"), 2);
    assert_int_equal(rjtest_int(s, "file_read_bytes"), 65536);
    json_decref(j);

    r->summary.dropped_events = 0;
    r->summary.lost_events = 0;
    j = rjtest_roundtrip(r);
    assert_true(json_is_false(json_object_get(json_object_get(j, "summary"), "approximate")));
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_process_exited(void **state)
{
    prof_result_t *r = rtest_result_new();
    json_t *j = rjtest_roundtrip(r);
    json_t *p = json_object_get(j, "process");
    assert_int_equal(rjtest_int(p, "pid"), 4242);
    assert_int_equal(rjtest_int(p, "ppid"), 1);
    assert_string_equal(rjtest_str(p, "command"), "python3 train.py --epochs 2");
    assert_string_equal(rjtest_str(p, "exe"), "/usr/bin/python3");
    assert_int_equal(rjtest_int(p, "start_realtime_ns"), 1700000000123456789LL);
    assert_int_equal(rjtest_int(p, "end_realtime_ns"), 1700000005123456789LL);
    assert_string_equal(rjtest_str(p, "start_time"), "2023-11-14T22:13:20.123456789Z");
    assert_string_equal(rjtest_str(p, "end_time"), "2023-11-14T22:13:25.123456789Z");
    assert_string_equal(rjtest_str(p, "end"), "exited");
    assert_int_equal(rjtest_int(p, "exit_code"), 0);
    rjtest_is_null(p, "signal");
    rjtest_is_null(p, "signal_name");
    assert_string_equal(rjtest_str(p, "stack_mode"), "sampled");
    assert_int_equal(rjtest_int(p, "sample_threshold"), 4096);
    assert_int_equal(rjtest_int(p, "sample_rate"), 524288);
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_process_end_states(void **state)
{
    prof_result_t *r = rtest_result_new();
    r->process.end = PROF_END_SIGNALED;
    r->process.signal = 9;
    r->process.exit_code = 3;        /* meaningless when signaled */
    r->process.end_realtime_ns = 0;
    r->process.stack_mode = 1;       /* MLMEM_STACKS_ALL */
    json_t *j = rjtest_roundtrip(r);
    json_t *p = json_object_get(j, "process");
    assert_string_equal(rjtest_str(p, "end"), "signaled");
    assert_int_equal(rjtest_int(p, "signal"), 9);
    assert_string_equal(rjtest_str(p, "signal_name"), "SIGKILL");
    rjtest_is_null(p, "exit_code");
    rjtest_is_null(p, "end_realtime_ns");
    rjtest_is_null(p, "end_time");
    assert_string_equal(rjtest_str(p, "stack_mode"), "all");
    json_decref(j);

    const struct { prof_end_t end; const char *name; } cases[] = {
        {PROF_END_EXEC, "exec"}, {PROF_END_RUNNING, "running"},
        {PROF_END_UNKNOWN, "unknown"}, {(prof_end_t)42, "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        r->process.end = cases[i].end;
        j = rjtest_roundtrip(r);
        p = json_object_get(j, "process");
        assert_string_equal(rjtest_str(p, "end"), cases[i].name);
        rjtest_is_null(p, "exit_code");
        rjtest_is_null(p, "signal");
        json_decref(j);
    }
    rtest_result_free(r);
}

/* More sites than the report lists: the first REPORT_JSON_MAX_SITES, in
 * order, and the rest counted. */
static void test_report_json_sites_capped(void **state)
{
    (void)state;
    prof_result_t r;
    memset(&r, 0, sizeof r);
    r.site_count = REPORT_JSON_MAX_SITES + 7;
    r.sites = calloc(r.site_count, sizeof *r.sites);
    assert_non_null(r.sites);
    for (size_t i = 0; i < r.site_count; i++) {
        r.sites[i].stack_id = (uint32_t)i + 1;
        r.sites[i].allocations = r.sites[i].bytes_allocated = 1;
    }
    json_t *j = rjtest_roundtrip(&r);
    json_t *sites = json_object_get(j, "sites");
    assert_int_equal(json_array_size(sites), REPORT_JSON_MAX_SITES);
    assert_int_equal(rjtest_int(json_array_get(sites, REPORT_JSON_MAX_SITES - 1), "stack_id"),
                     REPORT_JSON_MAX_SITES);
    assert_int_equal(rjtest_int(j, "sites_omitted"), 7);
    json_decref(j);
    free(r.sites);
}

static void test_report_json_sites_and_frames(void **state)
{
    prof_result_t *r = rtest_result_new();
    json_t *j = rjtest_roundtrip(r);
    json_t *sites = json_object_get(j, "sites");

    json_t *a = json_array_get(sites, 0);
    assert_int_equal(rjtest_int(a, "stack_id"), 1);
    assert_int_equal(rjtest_int(a, "allocations"), 100);
    assert_int_equal(rjtest_int(a, "frees"), 100);
    assert_int_equal(rjtest_int(a, "bytes_allocated"), 8388608);
    assert_int_equal(rjtest_int(a, "live_bytes_at_peak"), 1048576);
    assert_int_equal(rjtest_int(a, "live_allocations_at_peak"), 4);
    assert_int_equal(rjtest_int(a, "peak_live_bytes"), 1048576);
    assert_int_equal(rjtest_int(a, "leaked_bytes"), 0);
    assert_int_equal(rjtest_int(a, "leaked_allocations"), 0);
    assert_int_equal(rjtest_int(a, "temporary_allocations"), 10);
    assert_int_equal(rjtest_int(a, "largest_allocation"), 262144);
    json_t *life = json_object_get(a, "lifetime");
    assert_int_equal(rjtest_int(life, "min_ns"), 1000);
    assert_int_equal(rjtest_int(life, "max_ns"), 900000);
    assert_int_equal(rjtest_int(life, "mean_ns"), 50000);
    assert_true(json_is_false(json_object_get(a, "sampled")));
    assert_true(json_is_false(json_object_get(a, "is_mmap")));
    assert_null(json_object_get(a, "category"));
    assert_null(json_object_get(a, "confidence"));

    json_t *frames = json_object_get(a, "frames");
    assert_int_equal(json_array_size(frames), 2);
    json_t *f = json_array_get(frames, 0);
    assert_string_equal(rjtest_str(f, "address"), "0x555555401234");
    assert_string_equal(rjtest_str(f, "function"), "train_forward");
    assert_string_equal(rjtest_str(f, "file"), "/src/model.c");
    assert_int_equal(rjtest_int(f, "line"), 120);
    assert_string_equal(rjtest_str(f, "module"), "/opt/train");
    assert_string_equal(rjtest_str(f, "module_offset"), "0x1234");
    assert_true(json_is_false(json_object_get(f, "inlined")));

    json_t *b = json_array_get(sites, 1);
    assert_int_equal(rjtest_int(b, "leaked_bytes"), 3072);
    assert_int_equal(rjtest_int(b, "leaked_allocations"), 10);
    assert_true(json_is_true(json_object_get(b, "is_mmap")));
    life = json_object_get(b, "lifetime");
    assert_int_equal(rjtest_int(life, "mean_ns"), 0);    /* sum 0 over 10 frees */
    f = json_array_get(json_object_get(b, "frames"), 0);
    assert_string_equal(rjtest_str(f, "function"), "mlmem_test::Loader::next()");
    assert_true(json_is_true(json_object_get(f, "inlined")));
    f = json_array_get(json_object_get(b, "frames"), 1);   /* unresolved */
    rjtest_is_null(f, "function");
    rjtest_is_null(f, "file");
    rjtest_is_null(f, "line");
    assert_string_equal(rjtest_str(f, "module"), "/usr/lib/libloader.so");
    assert_string_equal(rjtest_str(f, "module_offset"), "0x2000");

    json_t *c = json_array_get(sites, 2);
    assert_int_equal(rjtest_int(c, "stack_id"), 0);
    assert_int_equal(json_array_size(json_object_get(c, "frames")), 0);
    assert_int_equal(rjtest_int(c, "temporary_allocations"), 240);
    json_decref(j);

    /* A site nothing was freed from has no lifetime figures. */
    r->sites[1].frees = 0;
    j = rjtest_roundtrip(r);
    life = json_object_get(json_array_get(json_object_get(j, "sites"), 1), "lifetime");
    rjtest_is_null(life, "min_ns");
    rjtest_is_null(life, "max_ns");
    rjtest_is_null(life, "mean_ns");
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_category_when_set(void **state)
{
    prof_result_t *r = rtest_result_new();
    r->sites[0].category = "activations";
    r->sites[0].category_confidence = 0.75;
    r->sites[0].category_evidence = rtest_strdup("born in forward, freed in backward");
    json_t *j = rjtest_roundtrip(r);
    json_t *a = json_array_get(json_object_get(j, "sites"), 0);
    assert_string_equal(rjtest_str(a, "category"), "activations");
    assert_true(json_is_real(json_object_get(a, "confidence")));
    assert_true(json_real_value(json_object_get(a, "confidence")) == 0.75);
    assert_string_equal(rjtest_str(a, "evidence"), "born in forward, freed in backward");
    assert_null(json_object_get(json_array_get(json_object_get(j, "sites"), 1), "category"));
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_timeline_threads_children(void **state)
{
    prof_result_t *r = rtest_result_new();
    json_t *j = rjtest_roundtrip(r);
    json_t *t = json_array_get(json_object_get(j, "timeline"), 1);
    assert_int_equal(rjtest_int(t, "time_ns"), 2500000000LL);
    assert_int_equal(rjtest_int(t, "live_bytes"), 1572864);
    assert_int_equal(rjtest_int(t, "heap_bytes"), 1048576);
    assert_int_equal(rjtest_int(t, "mmap_bytes"), 524288);
    assert_int_equal(rjtest_int(t, "rss_bytes"), 10485760);

    json_t *th = json_array_get(json_object_get(j, "threads"), 0);
    assert_int_equal(rjtest_int(th, "tid"), 4242);
    assert_string_equal(rjtest_str(th, "name"), "python3");
    assert_int_equal(rjtest_int(th, "allocations"), 900);
    assert_int_equal(rjtest_int(th, "frees"), 895);
    assert_int_equal(rjtest_int(th, "bytes_allocated"), 9000000);
    assert_int_equal(rjtest_int(th, "leaked_bytes"), 1024);
    assert_int_equal(rjtest_int(th, "peak_live_bytes"), 1048576);
    assert_int_equal(rjtest_int(th, "live_bytes_at_peak"), 1048576);
    /* A name filling all 16 bytes, without a terminator, is read to 16. */
    th = json_array_get(json_object_get(j, "threads"), 1);
    assert_string_equal(rjtest_str(th, "name"), "loader-thread-01");

    json_t *ch = json_array_get(json_object_get(j, "children"), 0);
    assert_int_equal(rjtest_int(ch, "pid"), 4300);
    assert_int_equal(rjtest_int(ch, "ppid"), 4242);
    assert_string_equal(rjtest_str(ch, "command"), "sh -c true");
    assert_int_equal(rjtest_int(ch, "peak_bytes"), 2048);
    assert_int_equal(rjtest_int(ch, "total_allocations"), 12);
    assert_int_equal(rjtest_int(ch, "leaked_bytes"), 0);
    assert_string_equal(rjtest_str(ch, "end"), "exited");
    assert_int_equal(rjtest_int(ch, "exit_code"), 0);
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_invalid_utf8_and_control_chars(void **state)
{
    prof_result_t *r = rtest_result_new();
    prof_frame_t *f = &r->sites[0].frames[0];
    free(f->function);
    /* A stray byte, an overlong '/', a surrogate, a control char, an escape,
     * valid multibyte text, and a sequence cut off at the end. */
    f->function = rtest_strdup("bad\xff" "x\xc0\xaf" "y\xed\xa0\x80" "z\x01\x1b[31m"
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "\xe2\x82");
    free(f->file);
    char *longname = malloc(20001);
    assert_non_null(longname);
    memset(longname, 'a', 20000);
    longname[20000] = '\0';
    f->file = longname;

    json_t *doc = report_json_build(r);
    assert_non_null(doc);
    char *text = json_dumps(doc, 0);
    assert_non_null(text);
    assert_null(strchr(text, '\x1b'));              /* escaped, not raw */
    assert_true(strstr(text, "\\u001b") != NULL || strstr(text, "\\u001B") != NULL);
    json_decref(doc);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(j);
    json_t *jf = json_array_get(json_object_get(json_array_get(json_object_get(j, "sites"), 0),
                                                "frames"), 0);
    assert_string_equal(rjtest_str(jf, "function"),
                        "bad\xef\xbf\xbd" "x\xef\xbf\xbd\xef\xbf\xbd"
                        "y\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "z\x01\x1b[31m"
                        "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(strlen(rjtest_str(jf, "file")), 20000);
    json_decref(j);

    /* Bad bytes in the command and a thread name too. */
    free(r->process.command);
    r->process.command = rtest_strdup("train\xfe");
    memcpy(r->threads[0].name, "w\x80", 3);
    j = rjtest_roundtrip(r);
    assert_string_equal(rjtest_str(json_object_get(j, "process"), "command"),
                        "train\xef\xbf\xbd");
    assert_string_equal(rjtest_str(json_array_get(json_object_get(j, "threads"), 0), "name"),
                        "w\xef\xbf\xbd");
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_empty_result(void **state)
{
    prof_result_t r;
    memset(&r, 0, sizeof(r));
    r.site_count = 5;        /* a count without an array is read as empty */
    json_t *j = rjtest_roundtrip(&r);
    assert_string_equal(rjtest_str(j, "schema"), "mlmem-report/1");
    rjtest_is_null(json_object_get(j, "process"), "command");
    rjtest_is_null(json_object_get(j, "process"), "start_time");
    assert_string_equal(rjtest_str(json_object_get(j, "process"), "end"), "unknown");
    assert_int_equal(json_array_size(json_object_get(j, "sites")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "timeline")), 0);
    assert_int_equal(rjtest_int(json_object_get(j, "summary"), "peak_bytes"), 0);
    json_decref(j);
}

static void test_report_json_clamps_huge_values(void **state)
{
    prof_result_t *r = rtest_result_new();
    r->summary.total_bytes = UINT64_MAX;
    r->summary.peak_bytes = (uint64_t)LLONG_MAX;
    r->sites[0].frames[0].address = UINT64_MAX;
    json_t *j = rjtest_roundtrip(r);
    json_t *s = json_object_get(j, "summary");
    assert_true(rjtest_int(s, "total_bytes") == LLONG_MAX);
    assert_true(rjtest_int(s, "peak_bytes") == LLONG_MAX);
    json_t *f = json_array_get(json_object_get(json_array_get(json_object_get(j, "sites"), 0),
                                               "frames"), 0);
    assert_string_equal(rjtest_str(f, "address"), "0xffffffffffffffff");
    json_decref(j);
    rtest_result_free(r);
}

static void test_report_json_write_roundtrip(void **state)
{
    char dir[64], path[128];
    rjtest_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/report.json", dir);
    prof_result_t *r = rtest_result_new();
    char err[256] = "";

    assert_int_equal(report_json_write(r, path, err, sizeof(err)), 0);
    /* A second write replaces the first in place. */
    r->summary.peak_bytes = 99;
    assert_int_equal(report_json_write(r, path, err, sizeof(err)), 0);

    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(rjtest_str(j, "schema"), "mlmem-report/1");
    assert_int_equal(rjtest_int(json_object_get(j, "summary"), "peak_bytes"), 99);
    json_decref(j);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0022, 0);          /* not group/other writable */
    assert_int_equal(st.st_mode & 0400, 0400);
    assert_int_equal(rjtest_count_entries(dir), 1);  /* no temporary left over */

    unlink(path);
    rmdir(dir);
    rtest_result_free(r);
}

/* A path that is not a regular file (a FIFO here; /dev/stdout, /dev/null)
 * is written in place: the report comes through it, and the FIFO is still
 * a FIFO, with nothing left beside it (a file renamed over it would have
 * replaced it, and as root /dev/null the same way). */
static void test_report_json_write_into_fifo(void **state)
{
    (void)state;
    char dir[64], path[128];
    rjtest_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/report.fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    /* Read and write ends held here: the report's open does not wait for a
     * reader, and the pipe holds all of it (a few KiB: 64 KiB by default,
     * made more where the system allows). */
    int fd = open(path, O_RDWR | O_NONBLOCK);
    assert_true(fd >= 0);
    (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
    prof_result_t *r = rtest_result_new();
    char err[256] = "";
    assert_int_equal(report_json_write(r, path, err, sizeof(err)), 0);

    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(rjtest_count_entries(dir), 1);
    static char text[1 << 20];
    ssize_t n = read(fd, text, sizeof text - 1);
    assert_true(n > 0);
    text[n] = '\0';
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(rjtest_str(j, "schema"), "mlmem-report/1");
    json_decref(j);

    close(fd);
    unlink(path);
    rmdir(dir);
    rtest_result_free(r);
}

/* The file's bytes, malloc'd and NUL-terminated. */
static char *rjtest_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* The written file streams its sites one at a time, and is byte for byte
 * the whole tree dumped at once (report_json_build, two-space indents,
 * then a newline): with sites and frames, with none, and with more than
 * are shown. */
static void test_report_json_write_streams_the_same_bytes(void **state)
{
    (void)state;
    char dir[64], path[128];
    rjtest_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/report.json", dir);
    prof_result_t *fixture = rtest_result_new();
    prof_result_t empty;
    memset(&empty, 0, sizeof empty);
    prof_result_t many;
    memset(&many, 0, sizeof many);
    many.site_count = REPORT_JSON_MAX_SITES + 3;
    many.sites = calloc(many.site_count, sizeof *many.sites);
    assert_non_null(many.sites);
    for (size_t i = 0; i < many.site_count; i++)
        many.sites[i].stack_id = (uint32_t)i + 1;
    const prof_result_t *results[] = {fixture, &empty, &many};
    for (size_t k = 0; k < 3; k++) {
        char err[256] = "";
        assert_int_equal(report_json_write(results[k], path, err, sizeof(err)), 0);
        char *written = rjtest_read_file(path);
        json_t *doc = report_json_build(results[k]);
        assert_non_null(doc);
        char *whole = json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(doc);
        assert_non_null(whole);
        size_t n = strlen(whole);
        assert_int_equal(strlen(written), n + 1);
        assert_memory_equal(written, whole, n);
        assert_int_equal(written[n], '\n');
        free(whole);
        free(written);
    }
    unlink(path);
    rmdir(dir);
    free(many.sites);
    rtest_result_free(fixture);
}

/* What a diff needs comes back from a written report: how the process
 * ended, the summary's figures, each site's stack id and frames (function,
 * file, line, module, offset, address, inlined). */
static void test_report_json_read_back_for_diff(void **state)
{
    (void)state;
    char dir[64], path[128], err[256] = "";
    rjtest_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/report.json", dir);
    prof_result_t *r = rtest_result_new();
    assert_int_equal(report_json_write(r, path, err, sizeof(err)), 0);
    prof_result_t back;
    assert_int_equal(report_json_read(path, &back, err, sizeof(err)), 0);
    assert_int_equal(back.process.end, PROF_END_EXITED);
    assert_int_equal(back.process.exit_code, 0);
    assert_int_equal(back.summary.peak_mmap_bytes, r->summary.peak_mmap_bytes);
    assert_int_equal(back.summary.peak_rss_bytes, r->summary.peak_rss_bytes);
    assert_int_equal(back.summary.total_bytes, r->summary.total_bytes);
    assert_int_equal(back.summary.temporary_allocations, r->summary.temporary_allocations);
    assert_int_equal(back.summary.leaked_bytes, r->summary.leaked_bytes);
    assert_int_equal(back.site_count, r->site_count);
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *a = &r->sites[i], *b = &back.sites[i];
        assert_int_equal(b->stack_id, a->stack_id);
        assert_int_equal(b->frame_count, a->frame_count);
        for (uint32_t k = 0; k < a->frame_count; k++) {
            const prof_frame_t *x = &a->frames[k], *y = &b->frames[k];
            assert_int_equal(y->address, x->address);
            assert_int_equal(y->line, x->line);
            assert_int_equal(y->inlined, x->inlined);
            assert_int_equal(y->module_offset, x->module_offset);
            if (x->function)
                assert_string_equal(y->function, x->function);
            else
                assert_null(y->function);
            if (x->file)
                assert_string_equal(y->file, x->file);
            else
                assert_null(y->file);
            assert_string_equal(y->module, x->module);
        }
    }
    prof_result_free(&back);
    /* A killed process reads back as killed, with its signal. */
    r->process.end = PROF_END_SIGNALED;
    r->process.signal = 9;
    assert_int_equal(report_json_write(r, path, err, sizeof(err)), 0);
    assert_int_equal(report_json_read(path, &back, err, sizeof(err)), 0);
    assert_int_equal(back.process.end, PROF_END_SIGNALED);
    assert_int_equal(back.process.signal, 9);
    prof_result_free(&back);
    unlink(path);
    rmdir(dir);
    rtest_result_free(r);
}

static void test_report_json_write_unwritable_path(void **state)
{
    prof_result_t *r = rtest_result_new();
    char err[256] = "";
    const char *path = "/nonexistent-mlmem-dir/sub/report.json";
    assert_int_equal(report_json_write(r, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "No such file or directory"));

    /* A directory in the way of the rename: the error names the path and no
     * temporary file stays behind. */
    char dir[64], blocked[128];
    rjtest_tmpdir(dir, sizeof(dir));
    snprintf(blocked, sizeof(blocked), "%s/report.json", dir);
    assert_int_equal(mkdir(blocked, 0755), 0);
    err[0] = '\0';
    assert_int_equal(report_json_write(r, blocked, err, sizeof(err)), -1);
    assert_non_null(strstr(err, blocked));
    assert_int_equal(rjtest_count_entries(dir), 1);

    /* No room for a message is not an error of its own. */
    assert_int_equal(report_json_write(r, path, NULL, 0), -1);
    rmdir(blocked);
    rmdir(dir);
    rtest_result_free(r);
}

/* report_json_read() on a bad report: -1, a message naming the file and
 * the field, and an empty result. */
static void rjtest_read_error(const char *dir, const char *json, const char *want)
{
    char path[128], err[512] = "";
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    assert_int_equal(fclose(f), 0);
    prof_result_t r;
    assert_int_equal(report_json_read(path, &r, err, sizeof(err)), -1);
    if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, want))
        fail_msg("error '%s' does not name %s and say '%s'", err, path, want);
    assert_null(r.sites);
    assert_int_equal(r.site_count, 0);
    unlink(path);
}

static void test_report_json_read_errors(void **state)
{
    (void)state;
    char dir[64];
    rjtest_tmpdir(dir, sizeof(dir));
    const char *head = "{\"schema\":\"mlmem-report/1\",\"process\":{},"
                       "\"summary\":{\"peak_bytes\":1},\"categories\":{},";
    char doc[512];
    rjtest_read_error(dir, "{\"schema\": 1", "not a JSON report");
    rjtest_read_error(dir, "{\"schema\":\"mlmem-report/2\"}", "field schema is not");
    snprintf(doc, sizeof(doc), "%s\"sites\":[{\"allocations\":1,\"frees\":1,"
             "\"bytes_allocated\":1,\"live_bytes_at_peak\":-1}]}", head);
    rjtest_read_error(dir, doc, "field sites[0].live_bytes_at_peak is not a non-negative");
    /* A nested field is named with its whole path. */
    snprintf(doc, sizeof(doc), "%s\"sites\":[{\"allocations\":1,\"frees\":1,"
             "\"bytes_allocated\":1,\"live_bytes_at_peak\":1,"
             "\"lifetime\":{\"mean_ns\":\"x\"}}]}", head);
    rjtest_read_error(dir, doc, "field sites[0].lifetime.mean_ns is not");
    snprintf(doc, sizeof(doc), "%s\"sites\":[{\"allocations\":1,\"frees\":1,"
             "\"bytes_allocated\":1,\"live_bytes_at_peak\":1,"
             "\"frames\":[{\"function\":\"f\",\"address\":\"12\"}]}]}", head);
    rjtest_read_error(dir, doc, "field sites[0].frames[0].address is not an address");
    /* jansson quotes the bad token; what would reach the terminal raw is
     * shown as '?' (found by tests/fuzz/fuzz_report.c). */
    rjtest_read_error(dir, "[\037" "1,_,", "invalid token near '?'");
    rjtest_read_error(dir, "{\"a\u202e\001\"}", "near '\"a?'");
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_json_schema_and_sections),
        cmocka_unit_test(test_report_json_summary_values),
        cmocka_unit_test(test_report_json_process_exited),
        cmocka_unit_test(test_report_json_process_end_states),
        cmocka_unit_test(test_report_json_sites_and_frames),
        cmocka_unit_test(test_report_json_sites_capped),
        cmocka_unit_test(test_report_json_category_when_set),
        cmocka_unit_test(test_report_json_timeline_threads_children),
        cmocka_unit_test(test_report_json_invalid_utf8_and_control_chars),
        cmocka_unit_test(test_report_json_empty_result),
        cmocka_unit_test(test_report_json_clamps_huge_values),
        cmocka_unit_test(test_report_json_write_roundtrip),
        cmocka_unit_test(test_report_json_write_into_fifo),
        cmocka_unit_test(test_report_json_write_streams_the_same_bytes),
        cmocka_unit_test(test_report_json_write_unwritable_path),
        cmocka_unit_test(test_report_json_read_errors),
        cmocka_unit_test(test_report_json_read_back_for_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
