/*
 * fuzz_rules.c - libFuzzer harness: arbitrary bytes as a rules file
 * (prof_rules_parse(), the text up to the first NUL). Beyond not crashing:
 * a failure names the file and a line that exists ("fuzz.rules:LINE: ..."),
 * has no control bytes (it goes to a terminal) and keeps only rules of the
 * lines before it; a success gives rules that
 * all match against a small synthetic site (user rules, built-in rules and
 * the framework cut-off) without trouble. Aborts when a promise is broken.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribution.h"

#define FUZZ_NAME "fuzz.rules"

/* The number of the last line of 'text' (1 for one line without '\n'). */
static unsigned long fuzz_lines(const char *text)
{
    unsigned long n = 1;
    for (const char *p = text; *p; p++)
        if (*p == '\n' && p[1])
            n++;
    return n;
}

/* LINE of a "fuzz.rules:LINE..." origin or message, with what follows it
 * in *rest; 0 if it is not one. */
static unsigned long fuzz_line_of(const char *s, const char **rest)
{
    size_t k = strlen(FUZZ_NAME);
    if (strncmp(s, FUZZ_NAME ":", k + 1) != 0 || s[k + 1] < '1' || s[k + 1] > '9')
        return 0;
    char *end;
    unsigned long line = strtoul(s + k + 1, &end, 10);
    *rest = end;
    return line;
}

static int fuzz_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    prof_rules_t rules = {0};
    char err[512] = "";
    int rc = prof_rules_parse(text, FUZZ_NAME, &rules, err, sizeof err);
    unsigned long last = fuzz_lines(text);
    unsigned long bad = 0;
    if (rc != 0) {
        const char *rest = "";
        bad = fuzz_line_of(err, &rest);
        if (bad == 0 || bad > last || strncmp(rest, ": ", 2) != 0 || !rest[2] ||
            fuzz_has_control(err)) {
            fprintf(stderr, "fuzz_rules: error does not name a line of the file, or is not "
                            "printable: '%s'\n", err);
            abort();
        }
    }
    for (size_t i = 0; i < rules.n; i++) {
        const prof_rule_t *r = &rules.v[i];
        const char *rest = "";
        unsigned long line = fuzz_line_of(r->origin, &rest);
        if (!r->glob || (unsigned)r->category >= MLMEM_CATEGORY_COUNT ||
            (unsigned)r->field > PROF_RULE_MODULE || line == 0 || line > last || *rest ||
            (rc != 0 && line >= bad)) {
            fprintf(stderr, "fuzz_rules: rule %zu (%s) is malformed\n", i, r->origin);
            abort();
        }
    }

    /* Innermost first: the rule's own glob as a name (a pattern matched
     * against itself), an everyday frame, a framework's tensor allocator. */
    for (size_t i = 0; i < rules.n; i++) {
        char *g = rules.v[i].glob;
        prof_frame_t frames[] = {
            {.function = g, .file = g, .module = g},
            {.function = "train_step(float*, unsigned long)", .file = "/src/train.c",
             .module = "/usr/bin/train"},
            {.function = "c10::alloc_cpu(unsigned long)", .module = "/opt/torch/lib/libc10.so"},
            {0},
        };
        prof_site_t site = {.frames = frames, .frame_count = 4, .largest_allocation = 4096};
        const prof_rule_t *m = prof_rules_match(&rules, &site);
        if (m && m->category >= MLMEM_CATEGORY_COUNT)
            abort();
    }
    prof_rules_free(&rules);
    free(text);
    return 0;
}
