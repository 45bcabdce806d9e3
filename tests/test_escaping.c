/*
 * test_escaping.c - hostile names and command lines in the reports and on
 * the dashboard: control characters, escape sequences, invalid UTF-8
 * (stray bytes, overlongs, surrogates, truncated sequences), C1 controls,
 * bidirectional overrides, quotes and backslashes, and names of tens of
 * kilobytes.
 *
 * JSON: the file must parse (jansson) and give back every string exactly,
 *       with each byte that is not well-formed UTF-8 as U+FFFD, and hold no
 *       raw control byte.
 * Text: every line is well-formed UTF-8 without a control character (C0,
 *       DEL, C1) or a bidirectional override, at most REPORT_TEXT_WIDTH
 *       bytes long.
 * Dashboard: the same for every cell of the screen, in the ASCII fallback
 *       and in Unicode (UTF-8 locale), and a row never spills into the
 *       next (wide characters count two columns).
 */
#define _GNU_SOURCE
#define NCURSES_WIDECHAR 1
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <locale.h>
#include <wchar.h>

#include <cmocka.h>
#include <curses.h>
#include <jansson.h>

#include "reports/report.h"
#include "test_report_fixture.h"
#include "ui/ui_model.h"
#include "ui/ui_view.h"

/* Hostile strings, and what JSON must give back for each. */
static const struct {
    const char *in, *json;
} hostile[] = {
    {"ctl\x01\x02\x1b[31mred\x1b[0m\x7f\ttab\nnl\rcr", "ctl\x01\x02\x1b[31mred\x1b[0m\x7f\ttab\nnl\rcr"},
    {"quote\"back\\slash/solidus'apos", "quote\"back\\slash/solidus'apos"},
    {"stray\xff\xfe bytes", "stray\xef\xbf\xbd\xef\xbf\xbd bytes"},
    {"overlong\xc0\xaf", "overlong\xef\xbf\xbd\xef\xbf\xbd"},
    {"surrogate\xed\xa0\x80", "surrogate\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"cut\xe4\xb8", "cut\xef\xbf\xbd\xef\xbf\xbd"},
    {"c1\xc2\x9b" "31m csi", "c1\xc2\x9b" "31m csi"},
    {"bidi\xe2\x80\xae" "evil\xe2\x80\xac ok", "bidi\xe2\x80\xae" "evil\xe2\x80\xac ok"},
    {"valid caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
     "valid caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80"},
};
#define NHOSTILE (sizeof hostile / sizeof hostile[0])

/* A C++-like name of 'n' bytes: "ns::f<Pair<Pair<...>>>". */
static char *long_name(size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t o = (size_t)snprintf(s, n + 1, "ns::f<");
    while (o + 5 < n - (n - o) / 2)
        o += (size_t)snprintf(s + o, n + 1 - o, "Pair<");
    while (o < n)
        s[o++] = '>';
    s[n] = '\0';
    return s;
}

/* Well-formed UTF-8 (RFC 3629)? Sets *cps to the number of code points. */
static int utf8_ok(const unsigned char *p, size_t n, uint32_t *bad_cp)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        uint32_t cp;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            k = 1;
            cp = c;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 3;
            cp = c & 0x0F;
            lo = c == 0xE0 ? 0xA0 : 0x80;
            hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 4;
            cp = c & 0x07;
            lo = c == 0xF0 ? 0x90 : 0x80;
            hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
            return 0;
        if (i + k > n || (k > 1 && (p[i + 1] < lo || p[i + 1] > hi)))
            return 0;
        for (size_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (bad_cp && (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||
                       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069)))
            *bad_cp = cp;
        i += k;
    }
    return 1;
}

/* The fixture with hostile strings in every name a user or a trace can
 * choose: the command, the exe, frames' function, file and module, a
 * thread's name, a child's command. */
static prof_result_t *hostile_result(size_t pick, char **longn)
{
    prof_result_t *r = rtest_result_new();
    *longn = long_name(20000);
    free(r->process.command);
    r->process.command = rtest_strdup(hostile[pick].in);
    free(r->process.exe);
    r->process.exe = rtest_strdup(hostile[(pick + 1) % NHOSTILE].in);
    prof_frame_t *f = &r->sites[0].frames[0];
    free(f->function);
    f->function = rtest_strdup(hostile[(pick + 2) % NHOSTILE].in);
    free(f->file);
    f->file = rtest_strdup(hostile[(pick + 3) % NHOSTILE].in);
    free(f->module);
    f->module = rtest_strdup(hostile[(pick + 4) % NHOSTILE].in);
    prof_frame_t *g = &r->sites[0].frames[1];
    free(g->function);
    g->function = rtest_strdup(*longn);
    free(r->children[0].command);
    r->children[0].command = rtest_strdup(hostile[(pick + 5) % NHOSTILE].in);
    memset(r->threads[0].name, 0, sizeof r->threads[0].name);
    memcpy(r->threads[0].name, "th\x1b\xff\"\\x", 8);
    return r;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_escaping_json_round_trips(void **state)
{
    (void)state;
    char dir[] = "/tmp/mlmem-esc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/r.json", dir);
    for (size_t pick = 0; pick < NHOSTILE; pick++) {
        char *longn;
        prof_result_t *r = hostile_result(pick, &longn);
        char err[256];
        assert_int_equal(report_json_write(r, path, err, sizeof err), 0);

        /* The raw file: UTF-8 throughout, no control byte but newlines. */
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        static unsigned char raw[1 << 20];
        size_t n = fread(raw, 1, sizeof raw, fp);
        fclose(fp);
        assert_true(n > 0 && n < sizeof raw);
        assert_true(utf8_ok(raw, n, NULL));
        for (size_t i = 0; i < n; i++)
            assert_true(raw[i] >= 0x20 || raw[i] == '\n');

        json_error_t e;
        json_t *j = json_load_file(path, 0, &e);
        if (!j)
            fail_msg("%s: %s (line %d)", path, e.text, e.line);
        json_t *proc = json_object_get(j, "process");
        assert_string_equal(jstr(proc, "command"), hostile[pick].json);
        assert_string_equal(jstr(proc, "exe"), hostile[(pick + 1) % NHOSTILE].json);
        json_t *site = json_array_get(json_object_get(j, "sites"), 0);
        json_t *f0 = json_array_get(json_object_get(site, "frames"), 0);
        assert_string_equal(jstr(f0, "function"), hostile[(pick + 2) % NHOSTILE].json);
        assert_string_equal(jstr(f0, "file"), hostile[(pick + 3) % NHOSTILE].json);
        assert_string_equal(jstr(f0, "module"), hostile[(pick + 4) % NHOSTILE].json);
        json_t *f1 = json_array_get(json_object_get(site, "frames"), 1);
        assert_string_equal(jstr(f1, "function"), longn); /* kept whole */
        json_t *child = json_array_get(json_object_get(j, "children"), 0);
        assert_string_equal(jstr(child, "command"), hostile[(pick + 5) % NHOSTILE].json);
        json_t *th = json_array_get(json_object_get(j, "threads"), 0);
        assert_string_equal(jstr(th, "name"), "th\x1b\xef\xbf\xbd\"\\x");
        json_decref(j);
        rtest_result_free(r);
        free(longn);
    }
    unlink(path);
    rmdir(dir);
}

/* Every line of 'text' is safe for a terminal and fits the width. */
static void check_safe_lines(const char *text)
{
    const char *line = text;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        uint32_t bad = 0;
        if (!utf8_ok((const unsigned char *)line, n, &bad))
            fail_msg("line is not well-formed UTF-8: %.*s", (int)n, line);
        if (bad)
            fail_msg("line holds U+%04X: %.*s", bad, (int)n, line);
        if (n > REPORT_TEXT_WIDTH)
            fail_msg("line of %zu bytes: %.*s", n, (int)n, line);
        line += n + (end != NULL);
    }
}

static char *text_report(const prof_result_t *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(report_text_write(r, f, NULL), 0);
    fclose(f);
    return buf;
}

static void test_escaping_text_report_is_safe(void **state)
{
    (void)state;
    for (size_t pick = 0; pick < NHOSTILE; pick++) {
        char *longn;
        prof_result_t *r = hostile_result(pick, &longn);
        r->sites[0].frames[1].function[0] = 'n'; /* still the long name */
        char *text = text_report(r);
        check_safe_lines(text);
        free(text);
        rtest_result_free(r);
        free(longn);
    }
    /* What the replacements look like: one '?' per unsafe character or
     * stray byte; valid text is kept. */
    char *longn;
    prof_result_t *r = hostile_result(0, &longn);
    char *text = text_report(r);
    assert_non_null(strstr(text, "mlmem: ctl???[31mred?[0m??tab?nl?cr (pid 4242)"));
    rtest_result_free(r);
    free(text);
    free(longn);
    r = hostile_result(2, &longn); /* command: stray bytes */
    free(r->process.command);
    r->process.command = rtest_strdup("x\xff\xfey \xc2\x9b" "1m \xe2\x80\xae" "z caf\xc3\xa9");
    text = text_report(r);
    assert_non_null(strstr(text, "mlmem: x??y ?1m ?z caf\xc3\xa9 (pid 4242)"));
    rtest_result_free(r);
    free(text);
    free(longn);
}

/* ---- the dashboard ---- */

static SCREEN *scr;
static FILE *scr_out, *scr_in;

static int ui_setup(void **state)
{
    (void)state;
    if (!setlocale(LC_ALL, "C.UTF-8"))
        setlocale(LC_ALL, "");
    scr_out = fopen("/dev/null", "w");
    scr_in = fopen("/dev/null", "r");
    scr = newterm("xterm", scr_out, scr_in);
    if (!scr)
        return -1;
    set_term(scr);
    return 0;
}

static int ui_teardown(void **state)
{
    (void)state;
    if (scr) {
        endwin();
        delscreen(scr);
    }
    fclose(scr_out);
    fclose(scr_in);
    return 0;
}

static void fill_hostile_model(ui_model_t *m, const char *cmd, const char *fn)
{
    prof_result_t *r = rtest_result_new();
    free(r->sites[0].frames[0].function);
    r->sites[0].frames[0].function = rtest_strdup(fn);
    free(r->sites[1].frames[0].function);
    r->sites[1].frames[0].function = rtest_strdup(fn);
    ui_model_init(m);
    ui_model_set_command(m, cmd, 4242);
    ui_model_update(m, r, 1, 0);
    free(r); /* the model owns what the result held now */
}

/* Row 'y' of 'w' as wide characters; checks each is printable and safe. */
static void check_row_safe(WINDOW *w, int y)
{
    wchar_t row[600];
    int cols = getmaxx(w);
    for (int x = 0; x < cols; x++) {
        cchar_t cc;
        wchar_t wc[CCHARW_MAX + 1];
        attr_t at;
        short pair;
        if (mvwin_wch(w, y, x, &cc) == ERR)
            continue;
        getcchar(&cc, wc, &at, &pair, NULL);
        for (int k = 0; wc[k]; k++) {
            uint32_t cp = (uint32_t)wc[k];
            if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
                (cp >= 0x2066 && cp <= 0x2069))
                fail_msg("row %d column %d holds U+%04X", y, x, cp);
        }
    }
    (void)row;
}

static int find_row(WINDOW *w, const char *text)
{
    char buf[600];
    for (int y = 0; y < getmaxy(w); y++) {
        mvwinnstr(w, y, 0, buf, (int)sizeof buf - 1); /* bytes, not columns */
        if (strstr(buf, text))
            return y;
    }
    return -1;
}

/* Fails with the whole screen shown. */
static void dump_fail(WINDOW *w, const char *what)
{
    char buf[600];
    for (int y = 0; y < getmaxy(w); y++) {
        mvwinnstr(w, y, 0, buf, (int)sizeof buf - 1); /* bytes, not columns */
        fprintf(stderr, "%2d|%s|\n", y, buf);
    }
    fail_msg("%s", what);
}

static void render_and_check(int unicode, const char *cmd, const char *fn)
{
    ui_view_opts_t o = {.unicode = unicode, .color = 0, .title = "live"};
    ui_model_t m;
    fill_hostile_model(&m, cmd, fn);
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &o, &m);
    for (int y = 0; y < 24; y++)
        check_row_safe(w, y);
    /* Nothing spilled: the key line is still the last row, the threads'
     * header is where the layout puts it, and pid 4242 is on row 0. */
    if (find_row(w, "q quit") != 23 || find_row(w, "threads:") <= 0 ||
        find_row(w, "pid 4242") != 0)
        dump_fail(w, "a row spilled or moved");
    /* The site's stack overlay lists the hostile frame safely too. */
    ui_model_apply(&m, UI_ACT_SELECT);
    ui_view_render(w, &o, &m);
    for (int y = 0; y < 24; y++)
        check_row_safe(w, y);
    if (find_row(w, "q quit") != 23)
        dump_fail(w, "a row spilled or moved in the stack view");
    delwin(w);
    ui_model_free(&m);
}

static void test_escaping_dashboard_is_safe(void **state)
{
    (void)state;
    char *longn = long_name(5000);
    /* Wide characters: 60 CJK ideographs are 120 columns. */
    char wide[60 * 3 + 1];
    for (int i = 0; i < 60; i++)
        memcpy(wide + 3 * i, "\xe4\xb8\xad", 3);
    wide[180] = '\0';
    for (int unicode = 0; unicode < 2; unicode++) {
        for (size_t pick = 0; pick < NHOSTILE; pick++)
            render_and_check(unicode, hostile[pick].in, hostile[(pick + 2) % NHOSTILE].in);
        render_and_check(unicode, wide, wide);
        render_and_check(unicode, longn, longn);
    }
    free(longn);
}

/* In Unicode the wide title is cut at the column limit, whole characters
 * only, and a C1 CSI in the command is shown as '?'. */
static void test_escaping_dashboard_wide_and_c1(void **state)
{
    (void)state;
    if (MB_CUR_MAX < 2 || wcwidth(0x4E2D) != 2)
        skip(); /* no UTF-8 locale here */
    ui_view_opts_t o = {.unicode = 1, .color = 0, .title = "live"};
    ui_model_t m;
    fill_hostile_model(&m, "a\xc2\x9b" "31mb", "f\xc3\xa9");
    WINDOW *w = newpad(24, 80);
    ui_view_render(w, &o, &m);
    assert_true(find_row(w, "a?31mb") == 0);
    delwin(w);
    ui_model_free(&m);
}

int main(void)
{
    const struct CMUnitTest report_tests[] = {
        cmocka_unit_test(test_escaping_json_round_trips),
        cmocka_unit_test(test_escaping_text_report_is_safe),
    };
    const struct CMUnitTest ui_tests[] = {
        cmocka_unit_test(test_escaping_dashboard_is_safe),
        cmocka_unit_test(test_escaping_dashboard_wide_and_c1),
    };
    int rc = cmocka_run_group_tests(report_tests, NULL, NULL);
    rc += cmocka_run_group_tests(ui_tests, ui_setup, ui_teardown);
    return rc;
}
