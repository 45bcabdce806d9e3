/*
 * attribution.c - categories for every site and byte; see attribution.h and
 * docs/attribution.md.
 */
#define _GNU_SOURCE /* FNM_CASEFOLD */
#include "attribution.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h" /* PROF_ACCT_LOG_CAP */
#include "heap_table.h" /* PROF_CAT_NONE */

/* ---- names --------------------------------------------------------------- */

static const char *const attr_names[MLMEM_CATEGORY_COUNT] = {
    [MLMEM_CAT_OTHER] = "other",
    [MLMEM_CAT_WEIGHTS] = "weights",
    [MLMEM_CAT_GRADIENTS] = "gradients",
    [MLMEM_CAT_OPTIMIZER_STATE] = "optimizer_state",
    [MLMEM_CAT_ACTIVATIONS] = "activations",
    [MLMEM_CAT_DATA] = "data",
    [MLMEM_CAT_TEMPORARIES] = "temporaries",
};

const char *prof_category_name(int category)
{
    return category >= 0 && category < MLMEM_CATEGORY_COUNT ? attr_names[category] : NULL;
}

int prof_category_parse(const char *name)
{
    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++)
        if (strcmp(name, attr_names[c]) == 0)
            return c;
    return -1;
}

/* ---- rules --------------------------------------------------------------- */

/* Innermost matching frame wins, so library rules (BLAS workspaces) beat
 * the application frames above them. Order within one frame matters:
 * batch norm is an activation before "batch" is data. */
static prof_rule_t attr_builtin_v[] = {
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_MODULE, "*libopenblas*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_MODULE, "*libblas*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_MODULE, "*libmkl*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_MODULE, "*libcblas*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_MODULE, "*libz.so*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_MODULE, "*libzstd.so*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_MODULE, "*libpng*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_MODULE, "*libjpeg*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_FUNCTION, "*workspace*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_FUNCTION, "*scratch*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_FUNCTION, "*temporar*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_FUNCTION, "*temps*", "built-in"},
    {MLMEM_CAT_TEMPORARIES, PROF_RULE_FUNCTION, "*tmp*", "built-in"},
    {MLMEM_CAT_ACTIVATIONS, PROF_RULE_FUNCTION, "*batch*norm*", "built-in"},
    {MLMEM_CAT_ACTIVATIONS, PROF_RULE_FUNCTION, "*activation*", "built-in"},
    {MLMEM_CAT_ACTIVATIONS, PROF_RULE_FUNCTION, "*acts_*", "built-in"},
    {MLMEM_CAT_ACTIVATIONS, PROF_RULE_FUNCTION, "*_acts*", "built-in"},
    {MLMEM_CAT_OPTIMIZER_STATE, PROF_RULE_FUNCTION, "*optim*", "built-in"},
    {MLMEM_CAT_OPTIMIZER_STATE, PROF_RULE_FUNCTION, "*adam*", "built-in"},
    {MLMEM_CAT_OPTIMIZER_STATE, PROF_RULE_FUNCTION, "*momentum*", "built-in"},
    {MLMEM_CAT_OPTIMIZER_STATE, PROF_RULE_FILE, "*optim*", "built-in"},
    {MLMEM_CAT_GRADIENTS, PROF_RULE_FUNCTION, "*grad*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*dataset*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*data_load*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*dataloader*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*load_data*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "data_*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*collate*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*batch*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*idx*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "gz*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*_gz_*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FUNCTION, "*inflate*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*/data.c", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*/data.cc", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*/data.cpp", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*/data.py", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*dataset*", "built-in"},
    {MLMEM_CAT_DATA, PROF_RULE_FILE, "*dataloader*", "built-in"},
    /* The Python interpreter's own allocations (objects, arenas, code):
     * reached only when no inner frame (an extension's, a framework's)
     * came first. */
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/bin/python3*", "built-in"},
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/libpython3*", "built-in"},
};

/* Tensor frameworks' own libraries: every tensor is allocated through them,
 * and their function names describe the framework's machinery
 * (torch::autograd::..., index, batch_norm kernels), not the role of the
 * tensor. A frame in one of them ends the search for a built-in rule, so
 * behaviour decides (a user's rule matching the frame still applies). */
static prof_rule_t attr_framework_v[] = {
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/libc10.so*", "built-in"},
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/libc10_*.so*", "built-in"},
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/libtorch*.so*", "built-in"},
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/libcaffe2*.so*", "built-in"},
    /* NumPy's array core (numpy/core or numpy/_core): arrays of every
     * role are allocated there; Debian's build has no symbols for it. */
    {MLMEM_CAT_OTHER, PROF_RULE_MODULE, "*/numpy/*core/_multiarray_umath*", "built-in"},
};
#define ATTR_FRAMEWORK_N (sizeof attr_framework_v / sizeof attr_framework_v[0])

/* The framework's tensor allocator: a site through it holds tensor storage;
 * a site in the framework's libraries that is not (operator registries,
 * schemas, autograd nodes) is the framework's own bookkeeping: "other". */
static const char *const attr_tensor_allocators[] = {
    "c10::alloc_cpu*", "c10::DefaultCPUAllocator::*", "c10::*CPUCachingAllocator*",
};

static const prof_rules_t attr_builtin = {attr_builtin_v,
                                          sizeof(attr_builtin_v) / sizeof(attr_builtin_v[0])};

const prof_rules_t *prof_rules_builtin(void)
{
    return &attr_builtin;
}

void prof_rules_free(prof_rules_t *rules)
{
    if (!rules)
        return;
    for (size_t i = 0; i < rules->n; i++) {
        free(rules->v[i].glob);
        free(rules->v[i].origin);
    }
    free(rules->v);
    rules->v = NULL;
    rules->n = 0;
}

/* Splits 'line' in place into at most 4 whitespace-separated words. Returns
 * how many were found (4 means "more than 3"). */
static int attr_words(char *line, char *w[4])
{
    int n = 0;
    char *p = line;
    while (n < 4) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        w[n++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return n;
}

/* Replaces control bytes in a word quoted by an error message with '?': a
 * rules file must not be able to send escape sequences to the terminal
 * that shows the message. */
static const char *attr_printable(char *word)
{
    for (char *p = word; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return word;
}

static int attr_add_rule(prof_rules_t *rules, int cat, prof_rule_field_t field, const char *glob,
                         const char *name, int lineno)
{
    char origin[512];
    snprintf(origin, sizeof origin, "%s:%d", name, lineno);
    prof_rule_t *v = realloc(rules->v, (rules->n + 1) * sizeof *v);
    if (!v)
        return -1;
    rules->v = v;
    prof_rule_t *r = &v[rules->n];
    r->category = (mlmem_category_t)cat;
    r->field = field;
    r->glob = strdup(glob);
    r->origin = strdup(origin);
    if (!r->glob || !r->origin) {
        free(r->glob);
        free(r->origin);
        return -1;
    }
    rules->n++;
    return 0;
}

int prof_rules_parse(const char *text, const char *name, prof_rules_t *rules, char *err,
                     size_t errlen)
{
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        lineno++;
        if (len >= sizeof line) {
            snprintf(err, errlen, "%s:%d: line longer than %zu bytes", name, lineno,
                     sizeof line - 1);
            return -1;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol ? eol + 1 : p + len;

        char *w[4];
        int n = attr_words(line, w);
        if (n == 0 || w[0][0] == '#')
            continue;
        if (n < 3) {
            snprintf(err, errlen, "%s:%d: expected 'category field glob', got %d word%s", name,
                     lineno, n, n == 1 ? "" : "s");
            return -1;
        }
        if (n > 3) {
            snprintf(err, errlen, "%s:%d: unexpected '%s' after the glob (globs have no spaces)",
                     name, lineno, attr_printable(w[3]));
            return -1;
        }
        int cat = prof_category_parse(w[0]);
        if (cat < 0) {
            snprintf(err, errlen,
                     "%s:%d: unknown category '%s' (expected weights, gradients, "
                     "optimizer_state, activations, data, temporaries or other)",
                     name, lineno, attr_printable(w[0]));
            return -1;
        }
        prof_rule_field_t field;
        if (strcmp(w[1], "function") == 0)
            field = PROF_RULE_FUNCTION;
        else if (strcmp(w[1], "file") == 0)
            field = PROF_RULE_FILE;
        else if (strcmp(w[1], "module") == 0)
            field = PROF_RULE_MODULE;
        else {
            snprintf(err, errlen, "%s:%d: unknown field '%s' (expected function, file or module)",
                     name, lineno, attr_printable(w[1]));
            return -1;
        }
        if (attr_add_rule(rules, cat, field, w[2], name, lineno) != 0) {
            snprintf(err, errlen, "%s:%d: out of memory", name, lineno);
            return -1;
        }
    }
    return 0;
}

int prof_rules_load(const char *path, prof_rules_t *rules, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + got + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            while (ncap < len + got + 1)
                ncap *= 2;
            char *t = realloc(text, ncap);
            if (!t) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return -1;
            }
            text = t;
            cap = ncap;
        }
        memcpy(text + len, buf, got);
        len += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    if (!text) {
        return 0;
    }
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        snprintf(err, errlen, "%s: not a text file (NUL byte)", path);
        return -1;
    }
    int rc = prof_rules_parse(text, path, rules, err, errlen);
    free(text);
    return rc;
}

static const char *attr_frame_field(const prof_frame_t *f, prof_rule_field_t field)
{
    switch (field) {
    case PROF_RULE_FUNCTION:
        return f->function;
    case PROF_RULE_FILE:
        return f->file;
    case PROF_RULE_MODULE:
        return f->module;
    }
    return NULL;
}

static const prof_rule_t *attr_match_frame(const prof_rules_t *rules, const prof_frame_t *f)
{
    for (size_t i = 0; rules && i < rules->n; i++) {
        const char *s = attr_frame_field(f, rules->v[i].field);
        if (s && fnmatch(rules->v[i].glob, s, FNM_CASEFOLD) == 0)
            return &rules->v[i];
    }
    return NULL;
}

static const prof_rule_t *attr_framework_rule(const prof_frame_t *f)
{
    if (!f->module)
        return NULL;
    for (size_t i = 0; i < ATTR_FRAMEWORK_N; i++)
        if (fnmatch(attr_framework_v[i].glob, f->module, 0) == 0)
            return &attr_framework_v[i];
    return NULL;
}

int prof_frame_is_framework(const prof_frame_t *f)
{
    return attr_framework_rule(f) != NULL;
}

/* NumPy's arrays: its core module allocates both the arrays' data and
 * its own small bookkeeping; without symbols, the size tells them apart. */
#define ATTR_ARRAY_MIN_BYTES 4096
static int attr_numpy_array(const prof_site_t *s)
{
    if (s->largest_allocation < ATTR_ARRAY_MIN_BYTES)
        return 0;
    for (uint32_t i = 0; s->frames && i < s->frame_count; i++)
        if (s->frames[i].module &&
            fnmatch("*/numpy/*core/_multiarray_umath*", s->frames[i].module, 0) == 0)
            return 1;
    return 0;
}

int prof_site_is_tensor(const prof_site_t *s)
{
    if (attr_numpy_array(s))
        return 1;
    for (uint32_t i = 0; s->frames && i < s->frame_count; i++) {
        const char *fn = s->frames[i].function;
        for (size_t k = 0; fn && k < sizeof attr_tensor_allocators / sizeof *attr_tensor_allocators;
             k++)
            if (fnmatch(attr_tensor_allocators[k], fn, 0) == 0)
                return 1;
    }
    return 0;
}

const prof_rule_t *prof_rules_match(const prof_rules_t *user, const prof_site_t *site)
{
    int builtin = 1; /* until a framework frame of a tensor's stack */
    for (uint32_t i = 0; site->frames && i < site->frame_count; i++) {
        const prof_rule_t *r = attr_match_frame(user, &site->frames[i]);
        if (r)
            return r;
        if (!builtin)
            continue;
        const prof_rule_t *fw = attr_framework_rule(&site->frames[i]);
        if (fw) {
            if (!prof_site_is_tensor(site))
                return fw;
            builtin = 0;
            continue;
        }
        r = attr_match_frame(&attr_builtin, &site->frames[i]);
        if (r)
            return r;
    }
    return NULL;
}

/* ---- steps --------------------------------------------------------------- */

typedef struct {
    uint32_t key;
    uint32_t idx;
} attr_occ_t;

static int attr_cmp_occ(const void *x, const void *y)
{
    const attr_occ_t *p = x, *q = y;
    if (p->key != q->key)
        return p->key < q->key ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int attr_cmp_u64(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return p < q ? -1 : p > q;
}

/* Share of positions i where keys[i] recurs p allocations later; with
 * 'loose', give or take one (an allocation added or missing in one step
 * shifts the rest of it by one, which should not count as a mismatch);
 * periods under 6 are always exact (one off is a large part of them).
 * p >= 2. */
static double attr_rate(const uint32_t *keys, size_t n, size_t p, int loose)
{
    size_t m = 0;
    for (size_t i = 0; i + p < n; i++)
        m += keys[i] == keys[i + p] ||
             (loose && p >= 6 && (keys[i] == keys[i + p - 1] ||
                        (i + p + 1 < n && keys[i] == keys[i + p + 1])));
    return (double)m / (double)(n - p);
}

#define ATTR_MAX_CANDIDATES 1024
#define ATTR_RUN_STARTS_BELOW 0.75

/* Candidate periods into 'cand' (ATTR_MAX_CANDIDATES), using 'gaps' (n)
 * as scratch; returns how many. For each key seen at least 3 times, the
 * median distance to its next occurrence, and to the 2nd, 3rd and 4th next
 * (a key allocated twice per step repeats every other time). With 'runs',
 * also for keys allocated in a run each step (once per layer, from one
 * loop), which repeat with a short gap inside the run: the median distance
 * from one run's start to the next's, a run starting after a gap longer
 * than the key's median gap. */
static size_t attr_candidates(const attr_occ_t *occ, size_t n, uint64_t *gaps, uint64_t *cand,
                              int runs)
{
    size_t nc = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && occ[j].key == occ[i].key)
            j++;
        for (size_t order = 1; order <= 4 && j - i >= order + 2; order++) {
            if (nc >= ATTR_MAX_CANDIDATES)
                break;
            size_t ng = 0;
            for (size_t k = i + order; k < j; k++)
                gaps[ng++] = occ[k].idx - occ[k - order].idx;
            qsort(gaps, ng, sizeof *gaps, attr_cmp_u64);
            uint64_t med = gaps[ng / 2];
            if (med >= 2 && med * 2 <= n)
                cand[nc++] = med;
        }
        if (runs && j - i >= 6 && nc < ATTR_MAX_CANDIDATES) {
            size_t ng = 0;
            for (size_t k = i + 1; k < j; k++)
                gaps[ng++] = occ[k].idx - occ[k - 1].idx;
            qsort(gaps, ng, sizeof *gaps, attr_cmp_u64);
            uint64_t med = gaps[ng / 2];
            size_t nr = 0, prev = SIZE_MAX;
            for (size_t k = i + 1; k < j; k++) {
                if (occ[k].idx - occ[k - 1].idx <= med)
                    continue;
                if (prev != SIZE_MAX)
                    gaps[nr++] = occ[k].idx - prev;
                prev = occ[k].idx;
            }
            if (nr >= 2) {
                qsort(gaps, nr, sizeof *gaps, attr_cmp_u64);
                uint64_t step = gaps[nr / 2];
                if (step > med && step * 2 <= n)
                    cand[nc++] = step;
            }
        }
        i = j;
    }
    return nc;
}

/* The steps of a detected period: the anchor's occurrences, at most one
 * per half period. Returns how many; stores the first and last one's
 * positions in *first and *last (SIZE_MAX and 0 when none), and the first
 * 'cap' positions in 'pos' (may be NULL). */
static size_t attr_anchor_steps(const uint32_t *keys, size_t n, uint32_t anchor, uint64_t period,
                                size_t *first, size_t *last, size_t *pos, size_t cap)
{
    size_t count = 0;
    *first = SIZE_MAX;
    *last = 0;
    for (size_t i = 0; i < n; i++) {
        if (keys[i] != anchor || (count && i - *last < (period + 1) / 2))
            continue;
        if (*first == SIZE_MAX)
            *first = i;
        *last = i;
        if (pos && count < cap)
            pos[count] = i;
        count++;
    }
    return count;
}

int prof_steps_detect(const uint32_t *keys, const uint64_t *times, size_t n,
                      prof_step_detect_t *out)
{
    memset(out, 0, sizeof *out);
    if (n < 6 || n > UINT32_MAX)
        return 0;
    attr_occ_t *occ = malloc(n * sizeof *occ);
    uint64_t *cand = malloc(ATTR_MAX_CANDIDATES * sizeof *cand);
    uint64_t *gaps = malloc(n * sizeof *gaps);
    if (!occ || !cand || !gaps) {
        free(occ);
        free(cand);
        free(gaps);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        occ[i] = (attr_occ_t){keys[i], (uint32_t)i};
    qsort(occ, n, sizeof *occ, attr_cmp_occ);

    /* Candidates from each key's repeats; the run starts of keys allocated
     * in runs only when the best of those repeats exactly less than 75% of
     * the time (run starts also find multiples of the step, evaluation
     * passes every few steps say, that the steps' own keys explain well). */
    double *rates = (double *)gaps; /* reuse: candidates <= n */
    double best = 0, best_exact = 0;
    size_t nu = 0;
    for (int runs = 0; runs < 2 && (runs == 0 || best_exact < ATTR_RUN_STARTS_BELOW); runs++) {
        size_t nc = attr_candidates(occ, n, gaps, cand, runs);
        qsort(cand, nc, sizeof *cand, attr_cmp_u64);
        best = 0;
        nu = 0;
        size_t bi = 0;
        for (size_t i = 0; i < nc; i++) {
            if (nu && cand[nu - 1] == cand[i])
                continue;
            cand[nu] = cand[i];
            rates[nu] = attr_rate(keys, n, cand[i], 1);
            if (rates[nu] > best) {
                best = rates[nu];
                bi = nu;
            }
            nu++;
        }
        /* The loose rate flatters a wrong period next to the right one. */
        best_exact = nu ? attr_rate(keys, n, cand[bi], 0) : 0;
    }
    /* The best period, or a smaller one that divides it (within 10%: a
     * jittered step) and repeats nearly as well: multiples of the step, and
     * jitter that recurs every few steps, repeat as well as the step. It
     * must repeat at least 3 times over and cover a fifth of the history
     * (the rest may be setup, evaluation, teardown, reports): a wrong step
     * misleads behaviour more than no step. */
    size_t period = 0, bi = 0;
    for (size_t i = 1; i < nu; i++)
        if (rates[i] > rates[bi])
            bi = i;
    if (nu && best >= 0.2) {
        size_t pi = bi;
        for (size_t i = 0; i < bi; i++) {
            double k = (double)cand[bi] / (double)cand[i];
            double off = k - (double)(uint64_t)(k + 0.5);
            if (rates[i] >= 0.8 * best && k >= 1.5 && off <= 0.1 && off >= -0.1) {
                pi = i;
                break;
            }
        }
        if (rates[pi] * (double)(n - cand[pi]) >= 3.0 * (double)cand[pi])
            period = cand[pi];
    }
    /* The loose rate cannot tell P from P +- 1: the exact one can. */
    if (period) {
        size_t best_p = period;
        double best_exact = attr_rate(keys, n, period, 0);
        for (size_t p = period - 1; p <= period + 1; p += 2) {
            if (p < 2 || p * 2 > n)
                continue;
            double e = attr_rate(keys, n, p, 0);
            if (e > best_exact) {
                best_exact = e;
                best_p = p;
            }
        }
        period = best_p;
    }
    if (!period) {
        free(occ);
        free(cand);
        free(gaps);
        return 0;
    }

    /* The first full period that repeats (or the longest repeating run). */
    size_t run = 0, best_run = 0, best_start = 0, i0 = SIZE_MAX;
    for (size_t i = 0; i + period < n; i++) {
        run = keys[i] == keys[i + period] ? run + 1 : 0;
        if (run > best_run) {
            best_run = run;
            best_start = i + 1 - run;
        }
        if (run >= period) {
            i0 = i + 1 - run;
            break;
        }
    }
    if (i0 == SIZE_MAX)
        i0 = best_start;

    /* Anchor: the key of that period that occurs least often, but in at
     * least a quarter of the periods the history holds (a key seen in just
     * two steps is jitter, not the step). */
    uint32_t anchor = keys[i0];
    size_t anchor_count = SIZE_MAX, offset = 0;
    size_t min_count = n / period / 4 > 2 ? n / period / 4 : 2;
    for (size_t j = i0; j < i0 + period && j < n; j++) {
        attr_occ_t probe = {keys[j], 0};
        size_t lo = 0, hi = n;
        while (lo < hi) { /* first occurrence of the key in 'occ' */
            size_t mid = lo + (hi - lo) / 2;
            if (attr_cmp_occ(&occ[mid], &probe) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t c = 0;
        while (lo + c < n && occ[lo + c].key == keys[j])
            c++;
        if (c >= min_count && c < anchor_count) {
            anchor_count = c;
            anchor = keys[j];
            offset = j - i0;
        }
    }

    size_t first, last;
    size_t count = attr_anchor_steps(keys, n, anchor, period, &first, &last, NULL, 0);
    /* A burst that repeats for a moment (a report writer's loop: steps of
     * a microsecond, or a handful of repeats, over a sliver of the run) is
     * not training. Setup may take most of a short run, so a short span
     * alone does not disqualify. */
    int brief = times && count >= 2 && times[n - 1] > times[0] &&
                (times[last] - times[first]) * 10 < times[n - 1] - times[0] &&
                ((times[last] - times[first]) / (count - 1) < 100000 || count < 8);
    if (count >= 3 && !brief) {
        out->count = count;
        out->period = period;
        out->anchor = anchor;
        out->anchor_offset = (uint32_t)offset;
        out->confidence = best;
        if (times) {
            size_t s0 = first >= offset ? first - offset : 0;
            size_t s1 = last >= offset ? last - offset : 0;
            out->first_ns = times[s0];
            out->last_ns = times[s1];
            out->period_ns = (times[last] - times[first]) / (count - 1);
        }
    }
    free(occ);
    free(cand);
    free(gaps);
    return 0;
}

/* ---- behaviour ----------------------------------------------------------- */

typedef struct {
    int cat;                  /* category of the site's unannotated bytes */
    prof_evidence_t source;
    double confidence;
    const char *why;          /* a literal; NULL: none                    */
    const prof_rule_t *rule;  /* the rule that decided, if one did: its
                                 evidence is written out at the end (a
                                 buffer per site was 120 MB for 600,000)  */
} attr_class_t;

/* Context of one attribution run. */
typedef struct {
    prof_result_t *r;
    const prof_attr_input_t *in;
    attr_class_t *cls;        /* per site                                 */
    int *rule_matched;        /* per site: 1 if a rule decided            */
    int *role;                /* per site: -1, or 0/1/2 for weights,
                                 gradients, optimizer state from sizes    */
    int *sibling;             /* per site: allocated by the code that
                                 allocates the parameters                 */
    int steps_known;
    uint64_t t0;              /* start of the first step                  */
    uint64_t t1;              /* end of the first step                    */
    uint64_t tlast;           /* start of the last step                   */
    uint64_t period_ns;
    uint64_t weight_bytes;    /* size-matched weights                     */
    uint64_t multiplicity;    /* copies per parameter (w, g, state...)    */
    uint64_t weight_largest;  /* the largest block of the weights         */
    size_t copies_gradients_site; /* attr_multiples: the copy that is the
                                 gradients unless they are reallocated
                                 every step; SIZE_MAX: none               */
    int *step_grad;           /* per site: gradients born in each backward
                                 pass                                     */
    int step_grads;           /* some site is step_grad                   */
    uint64_t *step_starts;    /* detected in the log: each step's start,
                                 for the first step_start_count steps     */
    size_t *step_pos;         /* where each starts in log_times           */
    size_t step_start_count;
    uint64_t *log_times;      /* the log's times, allocations with a stack
                                 only (what steps were detected in)       */
    size_t log_n;
    uint64_t *step_peak_ns;   /* steps with bounds from the log: when live
                                 bytes first reached the step's highest
                                 (attr_detected_step_shape)               */
    uint8_t *born_backward;   /* per site: born in backward passes by the
                                 log's times (attr_birth_phases)          */
    int flat_steps;           /* attr_align_steps: most steps' peak is one
                                 block over their lowest (no phases)      */
} attr_ctx_t;

/* A site that lives through training: born by the end of the first step,
 * and still holding its blocks after the last step began (alive at the
 * end, or freed only in the teardown). Without steps: born before the last
 * quarter of the run, and its first free (if any) comes after three
 * quarters of the time from its birth to the end (setup may take most of a
 * short run, so "early" is not asked for). */
static int attr_persistent(const attr_ctx_t *x, const prof_site_t *s)
{
    if (!x->steps_known) {
        uint64_t dur = x->r->summary.duration_ns;
        if (s->first_alloc_ns > dur - dur / 4)
            return 0;
        uint64_t rest = dur - s->first_alloc_ns;
        return s->frees == 0 || s->first_free_ns - s->first_alloc_ns >= rest - rest / 4;
    }
    return s->first_alloc_ns < x->t1 && (s->frees == 0 || s->first_free_ns >= x->tlast);
}

static int attr_cmp_site_ptr(const void *p, const void *q)
{
    const prof_site_t *a = *(const prof_site_t *const *)p, *b = *(const prof_site_t *const *)q;
    if (a->bytes_allocated != b->bytes_allocated)
        return a->bytes_allocated < b->bytes_allocated ? -1 : 1;
    if (a->first_alloc_ns != b->first_alloc_ns)
        return a->first_alloc_ns < b->first_alloc_ns ? -1 : 1;
    return a->stack_id < b->stack_id ? -1 : a->stack_id > b->stack_id;
}

static int attr_cmp_site_born(const void *p, const void *q)
{
    const prof_site_t *a = *(const prof_site_t *const *)p, *b = *(const prof_site_t *const *)q;
    if (a->first_alloc_ns != b->first_alloc_ns)
        return a->first_alloc_ns < b->first_alloc_ns ? -1 : 1;
    return a->stack_id < b->stack_id ? -1 : a->stack_id > b->stack_id;
}

/* Bytes within 0.1% (+64: padding of a carved block). */
static int attr_same_bytes(const prof_site_t *a, const prof_site_t *b)
{
    uint64_t lo = a->bytes_allocated < b->bytes_allocated ? a->bytes_allocated
                                                          : b->bytes_allocated;
    uint64_t hi = a->bytes_allocated ^ b->bytes_allocated ^ lo;
    return hi - lo <= lo / 1000 + 64;
}

static int attr_cmp_u64p(const void *x, const void *y)
{
    uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;
    return p < q ? -1 : p > q;
}

/* Keeps, of the sites v[0..n) (same bytes), those whose allocation count is
 * within max(1, 10%) of the median (a sampled small block may add one):
 * moves them to the front and returns how many. */
static size_t attr_same_counts(const prof_site_t **v, size_t n)
{
    uint64_t counts[64];
    size_t m = n < 64 ? n : 64;
    for (size_t i = 0; i < m; i++)
        counts[i] = v[i]->allocations;
    qsort(counts, m, sizeof counts[0], attr_cmp_u64p);
    uint64_t med = counts[m / 2], tol = med / 10 > 1 ? med / 10 : 1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t c = v[i]->allocations;
        if (c + tol >= med && c <= med + tol) {
            const prof_site_t *t = v[k];
            v[k++] = v[i];
            v[i] = t;
        }
    }
    return k;
}

/* Whether 'b' holds k copies of the blocks of 'a' (k >= 1): k times the
 * allocations and k times the bytes (within 0.1%). Returns k, or 0. */
static uint64_t attr_copies_of(const prof_site_t *a, const prof_site_t *b)
{
    if (!a->allocations || b->allocations % a->allocations)
        return 0;
    uint64_t k = b->allocations / a->allocations;
    uint64_t want = k * a->bytes_allocated, got = b->bytes_allocated;
    uint64_t d = want > got ? want - got : got - want;
    return d <= want / 1000 + 64 * k ? k : 0;
}

#define ATTR_UNION_MAX 16          /* parameter sites tried together: 2^16 subsets */
#define ATTR_UNION_COPIES_TRIED 32 /* sites tried as the copies             */

/* Parameters from several sites (PyTorch's Linear and Conv2d constructors
 * allocate through different native stacks) and their optimizer state from
 * one (Adam's zeros_like for every tensor): a persistent tensor site C holds
 * k copies of the union of some persistent tensor sites born before it, k
 * times their allocations and bytes together. Tries the subsets of the
 * (at most ATTR_UNION_MAX largest) candidates for each of the largest
 * ATTR_UNION_COPIES_TRIED sites as C and keeps the match covering the most
 * bytes; the union is weights, C their copies. */
static void attr_multiples_of_union(attr_ctx_t *x, const prof_site_t **v, size_t n)
{
    prof_result_t *r = x->r;
    uint64_t best_bytes = 0, best_k = 0;
    size_t best_c = SIZE_MAX, best_nt = 0;
    const prof_site_t *t[ATTR_UNION_MAX], *best_w[ATTR_UNION_MAX];
    int tried = 0;
    /* 'v' is sorted by bytes: the largest candidates for C first. */
    for (size_t c = n; c-- > 0 && tried < ATTR_UNION_COPIES_TRIED;) {
        const prof_site_t *cs = v[c];
        if (cs->allocations < 2 || !prof_site_is_tensor(cs))
            continue;
        tried++;
        size_t nt = 0;
        for (size_t j = 0; j < n; j++) {
            const prof_site_t *q = v[j];
            if (j == c || q->first_alloc_ns >= cs->first_alloc_ns || !prof_site_is_tensor(q))
                continue;
            if (nt < ATTR_UNION_MAX) {
                t[nt++] = q;
                continue;
            }
            size_t smallest = 0; /* keep the largest candidates */
            for (size_t k = 1; k < nt; k++)
                if (t[k]->bytes_allocated < t[smallest]->bytes_allocated)
                    smallest = k;
            if (q->bytes_allocated > t[smallest]->bytes_allocated)
                t[smallest] = q;
        }
        for (uint32_t set = 1; nt >= 2 && set < (1u << nt); set++) {
            if (!(set & (set - 1)))
                continue; /* one site alone: attr_multiples tried it */
            prof_site_t u = {0};
            for (size_t k = 0; k < nt; k++)
                if (set & (1u << k)) {
                    u.allocations += t[k]->allocations;
                    u.bytes_allocated += t[k]->bytes_allocated;
                }
            uint64_t k = attr_copies_of(&u, cs);
            if (k && u.bytes_allocated + cs->bytes_allocated > best_bytes) {
                best_bytes = u.bytes_allocated + cs->bytes_allocated;
                best_c = c;
                best_k = k;
                best_nt = 0;
                for (size_t q = 0; q < nt; q++)
                    if (set & (1u << q))
                        best_w[best_nt++] = t[q];
            }
        }
    }
    if (best_c == SIZE_MAX)
        return;
    x->weight_bytes = 0;
    for (size_t q = 0; q < best_nt; q++) {
        x->role[(size_t)(best_w[q] - r->sites)] = 0;
        x->weight_bytes += best_w[q]->bytes_allocated;
    }
    x->role[(size_t)(v[best_c] - r->sites)] = 2;
    x->multiplicity = 1 + best_k;
    x->copies_gradients_site = best_k == 1 ? (size_t)(v[best_c] - r->sites) : SIZE_MAX;
}

/* When no two persistent sites are copies of each other (a framework that
 * allocates one tensor after another through one stack: PyTorch's
 * parameters come from one call of torch.empty per tensor, Adam's two
 * moments from one zeros_like per tensor), a site may still hold k copies
 * of the parameters in one: k times the allocations and k times the bytes.
 * The persistent site (two allocations or more) that the most bytes of later
 * persistent sites copy is the parameters' site: weights; its copies are
 * gradients (the first one born, when gradients are not reallocated every
 * step) and optimizer state. */
static void attr_multiples(attr_ctx_t *x, const prof_site_t **v, size_t n)
{
    prof_result_t *r = x->r;
    size_t best = SIZE_MAX;
    uint64_t best_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->allocations < 2)
            continue;
        uint64_t bytes = 0;
        for (size_t j = 0; j < n; j++)
            if (j != i && v[j]->first_alloc_ns >= v[i]->first_alloc_ns &&
                attr_copies_of(v[i], v[j]))
                bytes += v[j]->bytes_allocated;
        if (bytes > best_bytes) {
            best_bytes = bytes;
            best = i;
        }
    }
    if (best == SIZE_MAX) {
        attr_multiples_of_union(x, v, n);
        return;
    }
    const prof_site_t *w = v[best];
    x->role[(size_t)(w - r->sites)] = 0;
    x->weight_bytes = w->bytes_allocated;
    x->multiplicity = 1;
    const prof_site_t *first = NULL;
    for (size_t j = 0; j < n; j++) {
        uint64_t k = j != best && v[j]->first_alloc_ns >= w->first_alloc_ns
                         ? attr_copies_of(w, v[j])
                         : 0;
        if (!k)
            continue;
        x->multiplicity += k;
        x->role[(size_t)(v[j] - r->sites)] = 2;
        if (k == 1 && (!first || v[j]->first_alloc_ns < first->first_alloc_ns))
            first = v[j];
    }
    x->copies_gradients_site = first ? (size_t)(first - r->sites) : SIZE_MAX;
}

/* Size groups over the persistent sites no rule or annotation decided
 * (sampled-out small allocations excluded): sites with the same bytes and
 * about as many allocations are copies of one set of tensors. With m sites
 * in the group with the most bytes (m copies per parameter), the first n/m
 * born of each group of n (a multiple of m; other groups are unrelated
 * blocks of equal size) are weights, the next n/m gradients, the rest
 * optimizer state. */
static int attr_size_groups(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    const prof_site_t **v = malloc((r->site_count + 1) * sizeof *v);
    if (!v)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        x->role[i] = -1;
        if (x->rule_matched[i] || s->stack_id == MLMEM_STACK_NONE || s->annotated_category >= 0 ||
            !attr_persistent(x, s))
            continue;
        v[n++] = s;
    }
    qsort(v, n, sizeof *v, attr_cmp_site_ptr);
    uint64_t best_bytes = 0, m = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && attr_same_bytes(v[j - 1], v[j]))
                j++;
            size_t g = attr_same_counts(v + i, j - i);
            uint64_t bytes = 0;
            for (size_t k = i; k < i + g; k++)
                bytes += v[k]->bytes_allocated;
            if (pass == 0 && g >= 2 && bytes > best_bytes) {
                best_bytes = bytes;
                m = g;
            }
            /* Another group is a set of copies only if it has m of each. */
            if (pass == 1 && g >= 2 && g % m == 0) {
                qsort(v + i, g, sizeof *v, attr_cmp_site_born);
                size_t k = g / m;
                for (size_t q = 0; q < g; q++) {
                    size_t si = (size_t)(v[i + q] - r->sites);
                    x->role[si] = q < k ? 0 : q < 2 * k ? 1 : 2;
                    if (x->role[si] == 0)
                        x->weight_bytes += v[i + q]->bytes_allocated;
                }
            }
            i = j;
        }
        x->multiplicity = m;
        if (m < 2)
            break;
    }
    if (m < 2)
        attr_multiples(x, v, n);
    free(v);
    return 0;
}

#define ATTR_CALLER_DEPTH 4   /* frames above the allocating one compared */
#define ATTR_MAX_OWNERS 64

/* Whether 'name' is one of frames 1..ATTR_CALLER_DEPTH of 's'. */
static int attr_has_caller(const prof_site_t *s, const char *name)
{
    for (uint32_t i = 1; s->frames && i < s->frame_count && i <= ATTR_CALLER_DEPTH; i++)
        if (s->frames[i].function && strcmp(s->frames[i].function, name) == 0)
            return 1;
    return 0;
}

static int attr_generic_caller(const char *name)
{
    return strcmp(name, "main") == 0 || strstr(name, "libc_start") || strcmp(name, "_start") == 0;
}

/* Siblings of the parameters: persistent sites, not copies of them, whose
 * callers (frames 1..4) include a function that also allocated the
 * weights, e.g. a model's init allocating its activation buffers (llm.c's
 * malloc_and_point_activations, the reference trainer's block layout).
 * Functions that half of all sites go through (a framework's allocator,
 * main) say nothing and are skipped. */
static void attr_siblings(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    const char *owners[ATTR_MAX_OWNERS];
    size_t no = 0, with_frames = 0;
    for (size_t i = 0; i < r->site_count; i++)
        with_frames += r->sites[i].frame_count > 1;
    for (size_t i = 0; i < r->site_count && no < ATTR_MAX_OWNERS; i++) {
        const prof_site_t *s = &r->sites[i];
        if (x->role[i] != 0)
            continue;
        for (uint32_t f = 1; s->frames && f < s->frame_count && f <= ATTR_CALLER_DEPTH; f++) {
            const char *name = s->frames[f].function;
            if (!name || attr_generic_caller(name) || prof_frame_is_framework(&s->frames[f]))
                continue;
            size_t users = 0;
            for (size_t j = 0; j < r->site_count; j++)
                users += attr_has_caller(&r->sites[j], name);
            if (users * 2 <= with_frames && no < ATTR_MAX_OWNERS)
                owners[no++] = name;
        }
    }
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (x->role[i] >= 0 || x->rule_matched[i] || s->annotated_category >= 0 ||
            !attr_persistent(x, s))
            continue;
        for (size_t k = 0; k < no && !x->sibling[i]; k++)
            x->sibling[i] = attr_has_caller(s, owners[k]);
    }
}

/* Frames that run a backward pass: PyTorch's autograd engine and its
 * generated backward functions, or a function named for it. */
static int attr_in_backward(const prof_site_t *s)
{
    for (uint32_t i = 0; s->frames && i < s->frame_count; i++) {
        const char *f = s->frames[i].function;
        if (f && (fnmatch("*backward*", f, FNM_CASEFOLD) == 0 ||
                  fnmatch("torch::autograd::Engine::*", f, 0) == 0))
            return 1;
    }
    return 0;
}

/* Frames that run a backward pass, or births that the allocation log puts
 * after the inferred forward phase of their steps. */
static int attr_backward(const attr_ctx_t *x, size_t si)
{
    return attr_in_backward(&x->r->sites[si]) || (x->born_backward && x->born_backward[si]);
}

static int attr_cmp_site_stack(const void *p, const void *q, void *ctx)
{
    const prof_site_t *sites = ctx;
    uint32_t a = sites[*(const size_t *)p].stack_id, b = sites[*(const size_t *)q].stack_id;
    return (a > b) - (a < b);
}

/* Which sites are born in backward passes, for programs whose backward code
 * has no telling name (inlined into main, say): with steps found in the
 * allocation log and a forward phase inferred, a site at least half of
 * whose logged births inside steps (at least 3) come at or after their
 * step's peak (the event that first reached the step's highest live bytes:
 * the block that makes the peak is usually the backward pass's first, on
 * top of every activation) is born in backward passes; forward births all
 * come before the peak. */
#define ATTR_BACKWARD_SHARE 0.5
static int attr_birth_phases(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    const prof_attr_input_t *in = x->in;
    if (r->steps.forward_end <= 0 || x->step_start_count < 3 || !in->log || !x->step_peak_ns)
        return 0;
    size_t ns = r->site_count;
    size_t *idx = malloc((ns + 1) * sizeof *idx);
    uint32_t *after = calloc(ns + 1, sizeof *after), *within = calloc(ns + 1, sizeof *within);
    x->born_backward = calloc(ns + 1, 1);
    if (!idx || !after || !within || !x->born_backward) {
        free(idx);
        free(after);
        free(within);
        return -1;
    }
    for (size_t i = 0; i < ns; i++)
        idx[i] = i;
    qsort_r(idx, ns, sizeof *idx, attr_cmp_site_stack, r->sites);
    size_t k = 0; /* the step holding the entry: times only grow in the log */
    for (size_t i = 0; i < in->log_count; i++) {
        uint64_t t = in->log[i].time_ns;
        while (k + 1 < x->step_start_count && t >= x->step_starts[k + 1])
            k++;
        if (k + 1 >= x->step_start_count || t < x->step_starts[k])
            continue;
        size_t lo = 0, hi = ns;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (r->sites[idx[mid]].stack_id < in->log[i].stack_id)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == ns || r->sites[idx[lo]].stack_id != in->log[i].stack_id)
            continue;
        /* The last tenth of a step is left out: a step's start is placed
         * within a span or so of the rise of live bytes, and on a busy
         * machine the next step's first (forward) births can fall just
         * before it, after this step's peak. */
        uint64_t len = x->step_starts[k + 1] - x->step_starts[k];
        if (t >= x->step_starts[k + 1] - len / 10)
            continue;
        within[idx[lo]]++;
        after[idx[lo]] += t >= x->step_peak_ns[k];
    }
    for (size_t i = 0; i < ns; i++)
        x->born_backward[i] = within[i] >= 3 && after[i] >= ATTR_BACKWARD_SHARE * within[i];
    free(idx);
    free(after);
    free(within);
    return 0;
}

/* Gradients reallocated every step (PyTorch's zero_grad(set_to_none=True)
 * frees them, and the next backward pass allocates them again): a site that
 * is not persistent, allocates in a backward pass, frees its blocks, and
 * whose largest block has the size of the largest block of a parameter
 * site, with a mean lifetime at least 3/4 of the longest among such sites
 * of that size. Activation gradients have the sizes of activations (batch x
 * features), not of the parameters, or die sooner. */
#define ATTR_PARAM_SIZES 64
static void attr_step_grads(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    uint64_t sizes[ATTR_PARAM_SIZES], longest[ATTR_PARAM_SIZES] = {0};
    size_t nsz = 0;
    x->weight_largest = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        if (x->role[i] != 0)
            continue;
        uint64_t l = r->sites[i].largest_allocation;
        if (l > x->weight_largest)
            x->weight_largest = l;
        size_t k = 0;
        while (k < nsz && sizes[k] != l)
            k++;
        if (k == nsz && nsz < ATTR_PARAM_SIZES)
            sizes[nsz++] = l;
    }
    if (!nsz)
        return;
    /* Candidates; when activations have the size of a parameter too
     * (batch x features == features x features), the gradients are those
     * that live longest: kept until the optimizer has used them and the
     * next step releases them, while activation gradients die within the
     * backward pass. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < r->site_count; i++) {
            const prof_site_t *s = &r->sites[i];
            if (x->role[i] >= 0 || x->rule_matched[i] || s->annotated_category >= 0 ||
                s->stack_id == MLMEM_STACK_NONE || s->frees < 2 || attr_persistent(x, s) ||
                !attr_backward(x, i))
                continue;
            size_t k = 0;
            while (k < nsz && sizes[k] != s->largest_allocation)
                k++;
            if (k == nsz)
                continue;
            uint64_t mean = s->lifetime_sum_ns / s->frees;
            if (pass == 0 && mean > longest[k])
                longest[k] = mean;
            if (pass == 1 && mean * 4 >= longest[k] * 3) {
                x->step_grad[i] = 1;
                x->step_grads = 1;
            }
        }
    /* The first copy of the parameters is their gradients only if no
     * backward pass allocates them every step; if one does, persistent
     * copies are optimizer state (SGD's momentum buffers). */
    if (!x->step_grads && x->copies_gradients_site != SIZE_MAX)
        x->role[x->copies_gradients_site] = 1;
    if (x->step_grads)
        for (size_t i = 0; i < r->site_count; i++)
            if (x->role[i] == 1)
                x->role[i] = 2;
}

/* A tensor made by Python indexing of another tensor (x[idx]: PyTorch's
 * THPVariable_getitem): at the start of a step, a batch gathered from a
 * resident dataset. */
static int attr_python_gather(const prof_site_t *s)
{
    if (!prof_site_is_tensor(s))
        return 0;
    for (uint32_t i = 0; s->frames && i < s->frame_count; i++) {
        const char *f = s->frames[i].function;
        if (f && fnmatch("*THPVariable_getitem*", f, 0) == 0)
            return 1;
    }
    return 0;
}

/* Whether some frame of the site is in a known module other than libc and
 * the dynamic loader: a block whose stack is unresolved addresses under a
 * thread's start (a library's thread buffer allocated while the library was
 * still being loaded) shows no code of the program, so nothing says it is
 * a dataset. */
static int attr_known_code(const prof_site_t *s)
{
    if (!s->frames || !s->frame_count)
        return 1; /* not symbolized: nothing is known either way */
    for (uint32_t i = 0; s->frames && i < s->frame_count; i++) {
        const char *m = s->frames[i].module;
        if (m && fnmatch("*/libc.so*", m, 0) != 0 && fnmatch("*/ld-linux*", m, 0) != 0 &&
            fnmatch("*/libmlmem_preload*", m, 0) != 0)
            return 1;
    }
    return 0;
}

/* 'why' is a literal (it is kept, not copied). */
static void attr_set(attr_class_t *c, int cat, prof_evidence_t src, double conf, const char *why)
{
    c->cat = cat;
    c->source = src;
    c->confidence = conf;
    c->why = why;
}

/* The evidence of a site decided by 'rule', malloc'd (NULL: no memory). */
static char *attr_rule_evidence(const prof_rule_t *rule)
{
    static const char *const fields[3] = {"function", "file", "module"};
    char why[200];
    snprintf(why, sizeof why, "rule %s: %s %s", rule->origin, fields[rule->field], rule->glob);
    return strdup(why);
}

/* At least half of what the site allocated was filled by reads from
 * regular files (the shim's FILE_READ events): a dataset, its batches, or
 * the buffers of a file reader. */
static int attr_filled_from_files(const prof_site_t *s)
{
    return s->file_read_bytes > 0 && s->file_read_bytes * 2 >= s->bytes_allocated;
}

/* Behaviour for one site no rule decided. Parameter roles come first: a
 * checkpoint read from a file into the weights does not make them data. */
static void attr_behaviour(const attr_ctx_t *x, size_t si, attr_class_t *c)
{
    const prof_site_t *s = &x->r->sites[si];
    if (s->stack_id == MLMEM_STACK_NONE) {
        /* Every small allocation that was not sampled, whatever its kind:
         * one lifetime pattern would describe none of them. */
        attr_set(c, MLMEM_CAT_OTHER, PROF_EVIDENCE_BEHAVIOUR, 0.3,
                 "small allocations whose stacks were not sampled: of every kind (the "
                 "sampled ones are classified as their own sites)");
        return;
    }
    if (x->role[si] < 0 && !x->step_grad[si] && attr_filled_from_files(s)) {
        attr_set(c, MLMEM_CAT_DATA, PROF_EVIDENCE_BEHAVIOUR, 0.8,
                 "filled by reads from files (data)");
        return;
    }
    if (attr_persistent(x, s)) {
        if (x->role[si] >= 0) {
            static const int cats[3] = {MLMEM_CAT_WEIGHTS, MLMEM_CAT_GRADIENTS,
                                        MLMEM_CAT_OPTIMIZER_STATE};
            static const char *const why[3] = {
                "lives through training; the first of sites of the same sizes "
                "(parameters)",
                "lives through training; the sizes of the parameters, born after them "
                "(gradients)",
                "lives through training; the sizes of the parameters, born after the "
                "gradients (optimizer state)"};
            int role = x->role[si];
            attr_set(c, cats[role], PROF_EVIDENCE_BEHAVIOUR, 0.8, why[role]);
            return;
        }
        if (x->sibling[si]) {
            attr_set(c, MLMEM_CAT_ACTIVATIONS, PROF_EVIDENCE_BEHAVIOUR, 0.5,
                     "lives through training, allocated by the code that allocates the "
                     "parameters but no copy of them (activation buffers)");
            return;
        }
        if (x->multiplicity < 2) {
            attr_set(c, MLMEM_CAT_WEIGHTS, PROF_EVIDENCE_BEHAVIOUR, 0.5,
                     "lives through training and no gradient was found (inference): "
                     "weights");
            return;
        }
        if (s->largest_allocation >= ((uint64_t)1 << 20) &&
            s->largest_allocation * 4 >= x->weight_bytes && attr_known_code(s)) {
            attr_set(c, MLMEM_CAT_DATA, PROF_EVIDENCE_BEHAVIOUR, 0.5,
                     "lives through training, a large block no parameter matches (a "
                     "resident dataset)");
            return;
        }
        attr_set(c, MLMEM_CAT_OTHER, PROF_EVIDENCE_BEHAVIOUR, 0.4,
                 "lives through training, matches no parameter");
        return;
    }
    if (x->step_grad[si]) {
        attr_set(c, MLMEM_CAT_GRADIENTS, PROF_EVIDENCE_BEHAVIOUR, 0.7,
                 "allocated in each backward pass with the size of a parameter (gradients "
                 "reallocated every step)");
        return;
    }
    if (s->live_allocations > 0 && s->live_allocations * 2 >= s->allocations) {
        attr_set(c, MLMEM_CAT_OTHER, PROF_EVIDENCE_BEHAVIOUR, 0.3,
                 "born during training and kept (a log, a cache or a leak)");
        return;
    }
    if (s->temporary_allocations * 2 >= s->allocations) {
        attr_set(c, MLMEM_CAT_TEMPORARIES, PROF_EVIDENCE_BEHAVIOUR, 0.7,
                 "freed before its thread allocated anything else");
        return;
    }
    uint64_t mean = s->frees ? s->lifetime_sum_ns / s->frees : 0;
    if (s->last_alloc_ns >= x->t0 && attr_backward(x, si)) {
        attr_set(c, MLMEM_CAT_TEMPORARIES, PROF_EVIDENCE_BEHAVIOUR, 0.6,
                 "born and freed again in backward passes, not kept for the optimizer "
                 "(gradients of activations)");
        return;
    }
    if (x->steps_known) {
        if (s->stack_id != MLMEM_STACK_NONE && x->period_ns &&
            s->first_alloc_ns <= x->t0 + x->period_ns / 10 &&
            mean * 10 >= x->period_ns * 8 && s->last_alloc_ns + x->period_ns / 2 >= x->tlast &&
            attr_python_gather(s)) {
            attr_set(c, MLMEM_CAT_DATA, PROF_EVIDENCE_BEHAVIOUR, 0.5,
                     "a tensor indexed out of another in Python as each step starts, kept "
                     "through the step (the step's input batch, X[idx])");
            return;
        }
        if (s->last_alloc_ns < x->t0) {
            attr_set(c, MLMEM_CAT_TEMPORARIES, PROF_EVIDENCE_BEHAVIOUR, 0.5,
                     "born and freed before the first step");
            return;
        }
        if (mean * 10 >= x->period_ns) {
            attr_set(c, MLMEM_CAT_ACTIVATIONS, PROF_EVIDENCE_BEHAVIOUR, 0.6,
                     "born and freed within steps, living across phases");
            return;
        }
        attr_set(c, MLMEM_CAT_TEMPORARIES, PROF_EVIDENCE_BEHAVIOUR, 0.6,
                 "born and freed within a phase of a step");
        return;
    }
    uint64_t dur = x->r->summary.duration_ns;
    if (mean * 100 >= dur && s->largest_allocation >= 65536) {
        attr_set(c, MLMEM_CAT_ACTIVATIONS, PROF_EVIDENCE_BEHAVIOUR, 0.4,
                 "large, freed, living long (no steps found)");
        return;
    }
    attr_set(c, MLMEM_CAT_TEMPORARIES, PROF_EVIDENCE_BEHAVIOUR, 0.4,
             "freed soon after birth (no steps found)");
}

#define ATTR_SITE_STEPS_MAX_K 16
#define ATTR_EVAL_COUNTS_TRIED 8

/* One allocation count that some sites have: how many, and the bytes they
 * allocated. */
typedef struct {
    uint64_t count;
    uint64_t bytes;
    size_t sites;
} attr_count_t;

/* The bytes of the sites allocating exactly 'count' times: 'cs' (n) is
 * sorted by count. */
static uint64_t attr_count_bytes(const attr_count_t *cs, size_t n, uint64_t count)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cs[mid].count < count)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && cs[lo].count == count ? cs[lo].bytes : 0;
}

/* Bytes allocated by the sites that allocate a multiple of 'count' times
 * (at most ATTR_SITE_STEPS_MAX_K times over), leaving out those that are
 * also multiples of 'not' (0: none). Looked up multiple by multiple: a
 * Python program under --stacks=all has 600,000 sites, and a scan of them
 * for every candidate count took half a second. */
static uint64_t attr_multiples_bytes(const attr_count_t *cs, size_t n, uint64_t count,
                                     uint64_t not)
{
    uint64_t bytes = 0;
    for (uint64_t m = 1; m <= ATTR_SITE_STEPS_MAX_K; m++) {
        uint64_t key = count * m;
        if (!(not && key % not == 0 && key / not <= ATTR_SITE_STEPS_MAX_K))
            bytes += attr_count_bytes(cs, n, key);
    }
    return bytes;
}

/* Steps from the sites' allocation counts, when the allocation log (the
 * first 65,536 allocations) ended before training began: an interpreter
 * that imports a framework allocates that much before the first step.
 * Sites that allocate and free again and again each allocate a multiple of
 * the step count N times (once per step, once per layer per step...): N is
 * a count that the sites holding at least half of those sites' bytes
 * allocated are multiples of (at most 16 times); every divisor of N scores
 * as well, so it is the largest count within 90% of the best score. At
 * least 3 sites must allocate exactly N times, and the first step must
 * begin after the log's last allocation (steps inside the log would have
 * been found there). The period is the time from the first step's start to
 * the last one's, over N - 1. Evaluation passes (forward only, E batches
 * in all) make the forward pass's sites allocate a multiple of N + E times
 * instead: their bytes count for N too, for the E that adds the most, N + E
 * being a count at least two sites have, at most a quarter above N. */
static int attr_steps_from_sites(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    size_t n = 0;
    attr_occ_t *v = malloc((r->site_count + 1) * sizeof *v); /* count, site */
    if (!v)
        return -1;
    uint64_t total = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (s->stack_id != MLMEM_STACK_NONE && s->allocations >= 3 &&
            s->allocations <= UINT32_MAX && s->frees * 10 >= s->allocations * 9 && !s->sampled) {
            v[n++] = (attr_occ_t){(uint32_t)s->allocations, (uint32_t)i};
            total += s->bytes_allocated;
        }
    }
    qsort(v, n, sizeof *v, attr_cmp_occ);
    /* The distinct counts, with their sites and bytes. */
    attr_count_t *cs = malloc((n + 1) * sizeof *cs);
    uint64_t *scores = calloc(n + 1, sizeof *scores);
    uint64_t *with_eval = calloc(n + 1, sizeof *with_eval);
    if (!cs || !scores || !with_eval) {
        free(with_eval);
        free(scores);
        free(cs);
        free(v);
        return -1;
    }
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (!i || v[i].key != v[i - 1].key)
            cs[u++] = (attr_count_t){v[i].key, 0, 0};
        cs[u - 1].bytes += r->sites[v[i].idx].bytes_allocated;
        cs[u - 1].sites++;
    }
    free(v);
    /* Every divisor of the step count scores at least as well as the step
     * count itself: the largest count within 90% of the best score wins. */
    uint64_t best = 0, best_score = 0;
    for (size_t i = 0; i < u; i++) {
        uint64_t score = attr_multiples_bytes(cs, u, cs[i].count, 0);
        /* Evaluation passes (forward only) add E calls to every forward
         * site: those allocate a multiple of N + E times. E is the count
         * just above N (by at most a quarter) that adds the most bytes. */
        uint64_t eval_score = 0, eval_count = 0;
        int tried = 0;
        for (size_t j = i + 1; j < u && cs[i].sites >= 3 && tried < ATTR_EVAL_COUNTS_TRIED; j++) {
            if (cs[j].sites < 2) /* counts that at least two sites have */
                continue;
            if (cs[j].count > cs[i].count + cs[i].count / 4)
                break;
            tried++;
            uint64_t e = attr_multiples_bytes(cs, u, cs[j].count, cs[i].count);
            if (e > eval_score) {
                eval_score = e;
                eval_count = cs[j].count;
            }
        }
        if (cs[i].sites >= 3 && (score + eval_score) * 2 >= total) {
            scores[i] = score + eval_score;
            with_eval[i] = eval_count;
        }
        if (scores[i] > best_score)
            best_score = scores[i];
    }
    uint64_t best_eval = 0;
    for (size_t i = 0; i < u; i++)
        if (scores[i] && scores[i] * 10 >= best_score * 9 && cs[i].count > best) {
            best = cs[i].count;
            best_eval = with_eval[i];
        }
    free(with_eval);
    free(scores);
    free(cs);
    if (!best)
        return 0;
    /* The sites of the steps: those allocating a multiple of N times. The
     * first step starts at the earliest birth among them, and ends when the
     * last of them freed its first block (the first step is slower than the
     * mean: first touches, lazily created state). The last step starts at
     * the earliest last birth of the sites allocating exactly N times. */
    uint64_t first = UINT64_MAX, last = UINT64_MAX, first_free = 0;
    for (size_t i = 0; i < r->site_count; i++) {
        const prof_site_t *s = &r->sites[i];
        if (s->stack_id == MLMEM_STACK_NONE || s->sampled || s->allocations < best ||
            s->allocations % best || s->allocations / best > ATTR_SITE_STEPS_MAX_K ||
            s->frees * 10 < s->allocations * 9)
            continue;
        if (s->first_alloc_ns < first)
            first = s->first_alloc_ns;
        if (s->allocations == best && s->last_alloc_ns < last)
            last = s->last_alloc_ns;
        if (s->first_free_ns > first_free)
            first_free = s->first_free_ns;
    }
    /* Only if training began after the log ended: steps inside the log
     * would have been found there. */
    uint64_t log_end = x->in->log_count ? x->in->log[x->in->log_count - 1].time_ns : 0;
    if (first == UINT64_MAX || last <= first || first <= log_end)
        return 0;
    r->steps.source = "detected";
    r->steps.count = best;
    r->steps.eval_batches = best_eval ? best_eval - best : 0;
    if (best_eval)
        r->steps.phases_seen |= 1u << MLMEM_PHASE_EVAL;
    r->steps.period_allocations = 0; /* not known: the log ended before */
    r->steps.first_step_ns = first;
    r->steps.last_step_ns = last;
    r->steps.period_ns = (last - first) / (best - 1);
    r->steps.confidence = 0.5 * (double)best_score / (double)total;
    x->steps_known = 1;
    x->t0 = first;
    x->period_ns = r->steps.period_ns;
    x->t1 = x->t0 + x->period_ns;
    if (first_free > x->t1)
        x->t1 = first_free < x->t0 + 10 * x->period_ns ? first_free : x->t0 + 10 * x->period_ns;
    x->tlast = last;
    return 0;
}

static int attr_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* A step must span this many live-range spans for its peak and shape to
 * be read (a span's maximum may belong to either step it straddles); a
 * rise of fewer bytes is noise, not a phase. */
#define ATTR_SPANS_PER_STEP 4
#define ATTR_STEP_MIN_RISE 4096

static int attr_cmp_i64(const void *p, const void *q)
{
    int64_t a = *(const int64_t *)p, b = *(const int64_t *)q;
    return (a > b) - (a < b);
}

/* One step's window of the live ranges: the spans [j0, j1) covering the
 * times [t0, t1), their lowest and highest live bytes, and the first span
 * holding the highest. */
typedef struct {
    size_t j0, j1, pk;
    uint64_t lo, hi;
} attr_window_t;

static attr_window_t attr_window(const prof_attr_input_t *in, uint64_t t0, uint64_t t1)
{
    uint64_t w = in->range_width_ns;
    attr_window_t v = {(size_t)((t0 + w - 1) / w), (size_t)((t1 + w - 1) / w), 0, UINT64_MAX, 0};
    if (v.j1 > in->range_count)
        v.j1 = in->range_count;
    v.pk = v.j0;
    for (size_t j = v.j0; j < v.j1; j++) {
        if (in->ranges[j].max > v.hi) {
            v.hi = in->ranges[j].max;
            v.pk = j;
        }
        if (in->ranges[j].min < v.lo)
            v.lo = in->ranges[j].min;
    }
    return v;
}

/* The lowest live bytes of span j; a span without events (the program ran
 * without allocating) holds what the last span with events before it ended
 * at, approximated by that span's lowest, looking back no further than
 * 'floor'. */
static uint64_t attr_span_low(const prof_attr_input_t *in, size_t j, size_t floor)
{
    for (size_t k = j + 1; k-- > floor;)
        if (in->ranges[k].min != UINT64_MAX)
            return in->ranges[k].min;
    return UINT64_MAX;
}

/* When span j first reached its highest live bytes; its start where the
 * ranges do not say (accounting's say, within the span). */
static uint64_t attr_span_peak_ns(const prof_attr_input_t *in, size_t j)
{
    uint64_t at = in->ranges[j].max_ns, w = in->range_width_ns;
    return at / w == j ? at : (uint64_t)j * w;
}

/* The first of the n times (in order) at or after t; n if none. */
static size_t attr_first_at(const uint64_t *times, size_t n, uint64_t t)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (times[mid] < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The detector's steps begin where the first full period that repeats
 * began: an arbitrary point of the step (the reference trainer's began in
 * the middle of its forward pass, or at its backward pass's first block).
 * A step is taken to begin where live bytes start to rise towards its
 * peak: in each window the log bounds, from the span holding the window's
 * peak back (going round to the window's end, the same point of the step
 * before), the first span whose lowest live bytes are within max(4 KiB, 1%
 * of the rise) of the window's lowest (a span without events holds what
 * the span before ended at). The step's first allocation is the log's
 * first from that span on, counted from the window's start (from the next
 * window's when the span is after the peak: the step began in the window
 * before). Counted in allocations, that offset is the same in every step
 * of a program that repeats itself however unevenly a busy machine
 * stretches its steps; counted in time it is not (a step start placed by
 * the median shift in time fell in the middle of a slow step's forward
 * pass, whose births then read as the step before's backward). Every step
 * moves by the median offset along the log; steps past the log move by
 * the median of the shifts in time that made. */
static int attr_align_steps(attr_ctx_t *x, prof_result_t *r, const prof_attr_input_t *in)
{
    prof_steps_t *st = &r->steps;
    uint64_t w = in->range_width_ns;
    if (x->step_start_count < 3 || !x->step_pos || !in->ranges || !w || !st->period_ns ||
        st->period_ns / w < ATTR_SPANS_PER_STEP)
        return 0;
    size_t n = x->step_start_count - 1; /* windows with both bounds */
    int64_t *offset = malloc(x->step_start_count * sizeof *offset);
    if (!offset)
        return -1;
    size_t found = 0, accumulating = 0;
    for (size_t i = 0; i < n; i++) {
        attr_window_t v = attr_window(in, x->step_starts[i], x->step_starts[i + 1]);
        size_t j0 = v.j0, j1 = v.j1, pk = v.pk;
        uint64_t lo = v.lo, hi = v.hi;
        if (j1 <= j0 + 1 || lo == UINT64_MAX || hi <= lo)
            continue;
        uint64_t tol = (hi - lo) / 100 > 4096 ? (hi - lo) / 100 : 4096;
        size_t len = j1 - j0, q = SIZE_MAX;
        for (size_t back = 0; back < len; back++) {
            size_t j = j0 + (pk - j0 + len - back) % len;
            if (attr_span_low(in, j, j0) <= lo + tol) {
                q = j;
                break;
            }
        }
        if (q == SIZE_MAX)
            continue;
        size_t first = attr_first_at(x->log_times, x->log_n, (uint64_t)q * w);
        int64_t off = (int64_t)first - (int64_t)x->step_pos[q > pk ? i + 1 : i];
        offset[found++] = off;
        /* The allocations from the rise's first to the peak's: one alone
         * is a lone block over the step's lowest (a BLAS call's scratch
         * buffer, with the activations in one block made at setup), not a
         * forward pass keeping what it makes. */
        size_t upto = attr_first_at(x->log_times, x->log_n, attr_span_peak_ns(in, pk) + 1);
        accumulating += (int64_t)upto - ((int64_t)x->step_pos[i] + off) >= 2;
    }
    /* Steps whose live bytes do not build up have no start to find from
     * them, nor phases: they keep the detector's starts. */
    x->flat_steps = found && accumulating * 2 < found;
    if (!found || x->flat_steps) {
        free(offset);
        return 0;
    }
    qsort(offset, found, sizeof *offset, attr_cmp_i64);
    int64_t med = offset[found / 2];
    /* Move every start, and keep each shift in time in 'offset'. */
    for (size_t i = 0; i <= n; i++) {
        int64_t p = (int64_t)x->step_pos[i] + med;
        p = p < 0 ? 0 : p >= (int64_t)x->log_n ? (int64_t)x->log_n - 1 : p;
        x->step_pos[i] = (size_t)p;
        offset[i] = (int64_t)x->log_times[p] - (int64_t)x->step_starts[i];
        x->step_starts[i] = x->log_times[p];
    }
    for (size_t i = 1; i <= n; i++)
        if (x->step_starts[i] <= x->step_starts[i - 1])
            x->step_starts[i] = x->step_starts[i - 1] + 1;
    qsort(offset, n + 1, sizeof *offset, attr_cmp_i64);
    st->first_step_ns = x->step_starts[0];
    st->last_step_ns = (uint64_t)((int64_t)st->last_step_ns + offset[(n + 1) / 2]);
    free(offset);
    return 0;
}

/* Each detected step's peak, and the phases the shape of its live bytes
 * shows, from the live ranges (the lowest and highest live bytes of each
 * short span of the run). Step i runs from its start in the log (aligned
 * by attr_align_steps) to the next one's; past the log, [first + i *
 * period, first + (i + 1) * period). Done only when a step spans at least
 * ATTR_SPANS_PER_STEP spans, else left empty rather than wrong. Notes
 * when each log-bounded step reached its peak (x->step_peak_ns).
 *
 * Phases, inferred for the steps whose live bytes rise by at least
 * ATTR_STEP_MIN_RISE: forward from the step's start to its peak
 * (activations are kept for the backward pass), backward from the peak
 * until live bytes have fallen back half-way to the step's lowest
 * (activations released as their gradients are computed). Each is found
 * when at least half the steps show it, as a fraction of the step: the
 * forward pass ends at the median of its ends, the backward pass lasts
 * the median of its lengths after that (the median of its ends, over
 * other steps than the forward's, came before the forward's end in the
 * PyTorch script's 100 steps). */
static int attr_detected_step_shape(attr_ctx_t *x, prof_result_t *r,
                                    const prof_attr_input_t *in)
{
    prof_steps_t *st = &r->steps;
    uint64_t w = in->range_width_ns;
    if (st->count < 2 || !st->period_ns || st->peak_bytes || !in->ranges || !w ||
        st->period_ns / w < ATTR_SPANS_PER_STEP || st->count > (1u << 20))
        return 0;
    st->peak_bytes = calloc(st->count, sizeof *st->peak_bytes);
    double *fwd = malloc(st->count * sizeof *fwd), *bwd = malloc(st->count * sizeof *bwd);
    x->step_peak_ns = calloc(x->step_start_count + 1, sizeof *x->step_peak_ns);
    if (!st->peak_bytes || !fwd || !bwd || !x->step_peak_ns) {
        free(st->peak_bytes);
        st->peak_bytes = NULL;
        free(fwd);
        free(bwd);
        return -1;
    }
    st->peak_count = st->count;
    size_t nf = 0, nb = 0, shaped = 0;
    for (uint64_t i = 0; i < st->count; i++) {
        uint64_t t0 = st->first_step_ns + i * st->period_ns, t1 = t0 + st->period_ns;
        if (i + 1 < x->step_start_count) { /* the log has its real bounds */
            t0 = x->step_starts[i];
            t1 = x->step_starts[i + 1];
        }
        attr_window_t v = attr_window(in, t0, t1);
        size_t j0 = v.j0, j1 = v.j1, pk = v.pk;
        uint64_t lo = v.lo, hi = v.hi;
        st->peak_bytes[i] = hi;
        if (i + 1 < x->step_start_count)
            x->step_peak_ns[i] = attr_span_peak_ns(in, pk);
        if (j1 <= j0 || hi == 0 || lo == UINT64_MAX || hi - lo < ATTR_STEP_MIN_RISE)
            continue;
        shaped++;
        double len = (double)(j1 - j0);
        fwd[nf++] = ((double)(pk - j0) + 1.0) / len;
        uint64_t half = lo + (hi - lo) / 2;
        for (size_t j = pk + 1; j < j1; j++)
            if (in->ranges[j].min <= half) {
                bwd[nb++] = (double)(j - pk) / len; /* the backward pass's length */
                break;
            }
    }
    if (!x->flat_steps && shaped * 2 >= st->count && nf) {
        qsort(fwd, nf, sizeof *fwd, attr_cmp_double);
        st->forward_end = fwd[nf / 2];
        st->phases_seen |= 1u << MLMEM_PHASE_FORWARD;
        st->phase_source = "inferred";
        if (nb * 2 >= shaped) {
            qsort(bwd, nb, sizeof *bwd, attr_cmp_double);
            st->backward_end = st->forward_end + bwd[nb / 2] < 1.0
                                   ? st->forward_end + bwd[nb / 2] : 1.0;
            st->phases_seen |= 1u << MLMEM_PHASE_BACKWARD;
        }
    }
    free(fwd);
    free(bwd);
    return 0;
}

/* Each step's start within the log, as prof_steps_detect counts steps
 * (attr_anchor_steps), less the anchor's offset into the step. */
static int attr_step_starts(attr_ctx_t *x, const uint32_t *keys, const uint64_t *times, size_t n,
                            const prof_step_detect_t *d)
{
    size_t *pos = malloc(d->count * sizeof *pos);
    x->step_starts = malloc(d->count * sizeof *x->step_starts);
    if (!pos || !x->step_starts) {
        free(pos);
        return -1;
    }
    size_t first, last;
    size_t k = attr_anchor_steps(keys, n, d->anchor, d->period, &first, &last, pos, d->count);
    if (k > d->count)
        k = d->count;
    for (size_t i = 0; i < k; i++) {
        pos[i] = pos[i] >= d->anchor_offset ? pos[i] - d->anchor_offset : 0;
        x->step_starts[i] = times[pos[i]];
    }
    x->step_start_count = k;
    x->step_pos = pos;
    return 0;
}

/* Where the run's peak falls relative to the steps: before them, in one
 * (annotated: the first step whose peak is the run's; detected: the step
 * window holding its time, and how far into it), or after the last one
 * (in evaluation when evaluation batches were found). */
static void attr_peak_where(const attr_ctx_t *x, prof_result_t *r)
{
    prof_steps_t *st = &r->steps;
    uint64_t t = r->summary.peak_time_ns;
    st->peak_step_fraction = -1;
    if (st->count < 2 || !st->period_ns || !r->summary.peak_bytes)
        return;
    int detected = st->source && strcmp(st->source, "detected") == 0;
    if (!detected) {
        for (size_t i = 0; st->peak_bytes && i < st->peak_count; i++)
            if (st->peak_bytes[i] == r->summary.peak_bytes) {
                st->peak_where = "step";
                st->peak_step = i;
                return;
            }
    }
    if (t < st->first_step_ns) {
        st->peak_where = "before_steps";
        return;
    }
    if (t >= st->last_step_ns + st->period_ns) {
        st->peak_where = st->eval_batches ? "evaluation" : "after_steps";
        return;
    }
    if (!detected)
        return; /* annotated, yet no step holds the peak: left unsaid */
    uint64_t i = (t - st->first_step_ns) / st->period_ns, t0, t1;
    for (size_t k = 0; k + 1 < x->step_start_count; k++)
        if (t >= x->step_starts[k] && t < x->step_starts[k + 1]) {
            i = k;
            break;
        }
    if (i >= st->count)
        i = st->count - 1;
    if (i + 1 < x->step_start_count && t < x->step_starts[i + 1]) {
        t0 = x->step_starts[i];
        t1 = x->step_starts[i + 1];
    } else {
        t0 = st->first_step_ns + i * st->period_ns;
        t1 = t0 + st->period_ns;
    }
    st->peak_where = "step";
    st->peak_step = i;
    if (t >= t0 && t < t1)
        st->peak_step_fraction = (double)(t - t0) / (double)(t1 - t0);
}

/* Fills r->steps from detection when no STEP annotation was seen. */
static int attr_steps(attr_ctx_t *x)
{
    prof_result_t *r = x->r;
    if (!r->steps.source)
        r->steps.source = "none";
    if (r->steps.count >= 2) {
        x->steps_known = 1;
        x->t0 = r->steps.first_step_ns;
        x->period_ns = r->steps.period_ns;
        x->t1 = x->t0 + x->period_ns;
        x->tlast = r->steps.last_step_ns;
        return 0;
    }
    if (r->steps.count > 0 || !x->in->log || x->in->log_count == 0)
        return 0;
    size_t n = x->in->log_count;
    uint32_t *keys = malloc(n * sizeof *keys);
    uint64_t *times = malloc(n * sizeof *times);
    if (!keys || !times) {
        free(keys);
        free(times);
        return -1;
    }
    /* Allocations without a stack (not sampled) all share one key: they
     * would repeat with any period. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (x->in->log[i].stack_id == MLMEM_STACK_NONE)
            continue;
        keys[k] = x->in->log[i].stack_id;
        times[k++] = x->in->log[i].time_ns;
    }
    n = k;
    prof_step_detect_t d;
    int rc = prof_steps_detect(keys, times, n, &d);
    if (rc == 0 && d.count >= 2)
        rc = attr_step_starts(x, keys, times, n, &d);
    free(keys);
    if (x->step_pos) { /* attr_align_steps moves the starts along the log */
        x->log_times = times;
        x->log_n = n;
    } else {
        free(times);
    }
    if (rc != 0)
        return -1;
    if (d.count < 2)
        /* The log is full (accounting keeps the first 65,536 allocations):
         * training may have begun after it. */
        return x->in->log_truncated && x->in->log_count >= PROF_ACCT_LOG_CAP
                   ? attr_steps_from_sites(x)
                   : 0;
    uint64_t count = d.count;
    uint64_t last_ns = d.last_ns;
    if (x->in->log_truncated) {
        /* Past the log, each allocation of the anchor is a step. */
        for (size_t i = 0; i < r->site_count; i++)
            if (r->sites[i].stack_id == d.anchor && r->sites[i].allocations > count) {
                count = r->sites[i].allocations;
                last_ns = r->sites[i].last_alloc_ns;
            }
    }
    r->steps.source = "detected";
    r->steps.count = count;
    r->steps.period_allocations = d.period;
    r->steps.first_step_ns = d.first_ns;
    r->steps.last_step_ns = last_ns;
    r->steps.period_ns = count > 1 && last_ns > d.first_ns ? (last_ns - d.first_ns) / (count - 1)
                                                           : d.period_ns;
    r->steps.confidence = d.confidence;
    x->steps_known = 1;
    x->t0 = d.first_ns;
    x->period_ns = d.period_ns;
    x->t1 = x->t0 + d.period_ns;
    x->tlast = last_ns;
    return 0;
}

/* The timeline's unannotated bytes, spread over categories in the shares
 * they have at the peak (exact at the peak's own point). */
static void attr_timeline(prof_result_t *r, const uint64_t *unann_peak, uint64_t unann_total,
                          const uint64_t *unann_end, uint64_t unann_end_total)
{
    const uint64_t *share = unann_total ? unann_peak : unann_end;
    uint64_t total = unann_total ? unann_total : unann_end_total;
    for (size_t i = 0; i < r->timeline_count; i++) {
        prof_timeline_point_t *p = &r->timeline[i];
        uint64_t u = p->unannotated_bytes, given = 0;
        if (!u)
            continue;
        if (!total) {
            p->category_bytes[MLMEM_CAT_OTHER] += u;
            continue;
        }
        if (p->live_bytes == r->summary.peak_bytes && p->time_ns == r->summary.peak_time_ns &&
            u == total && share == unann_peak) {
            for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++)
                p->category_bytes[c] += share[c];
            continue;
        }
        int biggest = 0;
        for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
            uint64_t part = (uint64_t)((unsigned __int128)u * share[c] / total);
            p->category_bytes[c] += part;
            given += part;
            if (share[c] > share[biggest])
                biggest = c;
        }
        p->category_bytes[biggest] += u - given;
    }
}

static const char *const attr_source_names[4] = {"none", "annotation", "rule", "behaviour"};

int prof_attribute(prof_result_t *r, const prof_attr_input_t *in)
{
    size_t ns = r->site_count;
    attr_ctx_t x = {.r = r, .in = in};
    x.cls = calloc(ns + 1, sizeof *x.cls);
    x.rule_matched = calloc(ns + 1, sizeof *x.rule_matched);
    x.role = calloc(ns + 1, sizeof *x.role);
    x.sibling = calloc(ns + 1, sizeof *x.sibling);
    x.step_grad = calloc(ns + 1, sizeof *x.step_grad);
    x.copies_gradients_site = SIZE_MAX;
    int rc = -1;
    if (!x.cls || !x.rule_matched || !x.role || !x.sibling || !x.step_grad)
        goto done;
    if (attr_steps(&x) != 0 ||
        (r->steps.source && strcmp(r->steps.source, "detected") == 0 &&
         (attr_align_steps(&x, r, in) != 0 || attr_detected_step_shape(&x, r, in) != 0)))
        goto done;
    attr_peak_where(&x, r);
    if (attr_birth_phases(&x) != 0)
        goto done;

    /* Rules first; behaviour for the rest. */
    for (size_t i = 0; i < ns; i++) {
        const prof_rule_t *rule = prof_rules_match(in->rules, &r->sites[i]);
        if (rule) {
            attr_set(&x.cls[i], rule->category, PROF_EVIDENCE_RULE, 0.85, NULL);
            x.cls[i].rule = rule;
            x.rule_matched[i] = 1;
        }
    }
    if (attr_size_groups(&x) != 0)
        goto done;
    attr_step_grads(&x);
    attr_siblings(&x);
    for (size_t i = 0; i < ns; i++)
        if (!x.rule_matched[i])
            attr_behaviour(&x, i, &x.cls[i]);

    /* Sum up: annotated bytes from accounting, the rest per site. */
    uint64_t unann_peak[MLMEM_CATEGORY_COUNT] = {0}, unann_end[MLMEM_CATEGORY_COUNT] = {0};
    uint64_t site_peak_live[MLMEM_CATEGORY_COUNT] = {0};
    uint64_t by[MLMEM_CATEGORY_COUNT][4] = {{0}};
    double conf_bytes[MLMEM_CATEGORY_COUNT] = {0};
    uint64_t unann_total = 0, unann_end_total = 0;
    for (size_t i = 0; i < ns; i++) {
        prof_site_t *s = &r->sites[i];
        const attr_class_t *c = &x.cls[i];
        unann_peak[c->cat] += s->unannotated_bytes_at_peak;
        unann_end[c->cat] += s->unannotated_bytes;
        unann_total += s->unannotated_bytes_at_peak;
        unann_end_total += s->unannotated_bytes;
        if (s->unannotated_bytes_at_peak || s->unannotated_bytes ||
            s->annotated_category < 0)
            site_peak_live[c->cat] += s->peak_live_bytes;
        by[c->cat][c->source] += s->unannotated_bytes_at_peak;
        conf_bytes[c->cat] += c->confidence * (double)s->unannotated_bytes_at_peak;

        free(s->category_evidence);
        s->category_evidence = NULL;
        if (s->annotated_category >= 0 &&
            s->live_bytes_at_peak - s->unannotated_bytes_at_peak >= s->unannotated_bytes_at_peak) {
            s->category = prof_category_name(s->annotated_category);
            s->category_confidence = 1.0;
            s->category_source = PROF_EVIDENCE_ANNOTATION;
            s->category_evidence =
                strdup(s->annotated_mixed ? "annotation (its blocks have several categories; "
                                            "the latest shown)"
                                          : "annotation");
        } else {
            s->category = prof_category_name(c->cat);
            s->category_confidence = c->confidence;
            s->category_source = c->source;
            s->category_evidence = c->rule ? attr_rule_evidence(c->rule)
                                           : strdup(c->why ? c->why : "");
        }
        if (!s->category_evidence)
            goto done;
    }
    if (r->category_count == 0) /* spread once: category_bytes then hold it */
        attr_timeline(r, unann_peak, unann_total, unann_end, unann_end_total);

    for (int c = 0; c < MLMEM_CATEGORY_COUNT; c++) {
        prof_category_t *k = &r->categories[c];
        free(k->evidence);
        memset(k, 0, sizeof *k);
        k->name = attr_names[c];
        k->bytes_at_peak = r->annotated_at_peak[c] + unann_peak[c];
        k->bytes_at_end = r->annotated_at_end[c] + unann_end[c];
        k->annotated_max_bytes = r->annotated_max[c];
        k->bytes_at_peak_by[PROF_EVIDENCE_ANNOTATION] = r->annotated_at_peak[c];
        for (int e = 1; e < 4; e++)
            if (e != PROF_EVIDENCE_ANNOTATION)
                k->bytes_at_peak_by[e] = by[c][e];
        if (site_peak_live[c] == 0 && unann_peak[c] == 0 && unann_end[c] == 0) {
            k->max_bytes = r->annotated_max[c];
            k->max_exact = 1;
        } else {
            uint64_t mx = k->bytes_at_peak > r->annotated_max[c] ? k->bytes_at_peak
                                                                : r->annotated_max[c];
            for (size_t i = 0; i < r->timeline_count; i++)
                if (r->timeline[i].category_bytes[c] > mx)
                    mx = r->timeline[i].category_bytes[c];
            if (k->bytes_at_end > mx)
                mx = k->bytes_at_end;
            k->max_bytes = mx;
        }
        if (k->bytes_at_peak)
            k->confidence = ((double)r->annotated_at_peak[c] + conf_bytes[c]) /
                            (double)k->bytes_at_peak;
        char ev[256];
        size_t len = 0;
        ev[0] = '\0';
        for (int e = 1; e < 4 && k->bytes_at_peak; e++) {
            if (!k->bytes_at_peak_by[e])
                continue;
            len += (size_t)snprintf(ev + len, sizeof ev - len, "%s%s %.1f%%", len ? ", " : "",
                                    attr_source_names[e],
                                    100.0 * (double)k->bytes_at_peak_by[e] /
                                        (double)k->bytes_at_peak);
            if (len >= sizeof ev)
                len = sizeof ev - 1;
        }
        k->evidence = strdup(k->bytes_at_peak ? ev : "nothing at the peak");
        if (!k->evidence)
            goto done;
    }
    r->category_count = MLMEM_CATEGORY_COUNT;
    rc = 0;
done:
    free(x.cls);
    free(x.rule_matched);
    free(x.role);
    free(x.sibling);
    free(x.step_grad);
    free(x.step_starts);
    free(x.step_pos);
    free(x.log_times);
    free(x.born_backward);
    free(x.step_peak_ns);
    return rc;
}
