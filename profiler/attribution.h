/*
 * attribution.h - what kind of memory each byte is: weights, gradients,
 * optimizer state, activations, data, temporaries or other.
 *
 * Evidence, strongest first (docs/attribution.md):
 * 1. annotations (include/mlmem/annotate.h): accounting.c keeps each block's
 *    annotated category, so annotated bytes are exact at every instant;
 * 2. rules: a site's symbolized frame (innermost first) whose function, file
 *    or module matches a glob; the user's rules file first, then the
 *    built-in table (prof_rules_builtin());
 * 3. behaviour: steps found in the allocation sequence, then lifetime, birth
 *    time and matching sizes (a parameter's gradient and optimizer state
 *    have the parameter's size: sites that live through training and
 *    allocate the same number of blocks of the same total size are copies
 *    of one set of parameters, in birth order; a site with k times the
 *    blocks and bytes holds k copies; a backward pass that allocates blocks
 *    of the largest parameter's size every step reallocates the gradients).
 *    Tensor frameworks (PyTorch's libc10/libtorch) end the rule search:
 *    their tensors are left to behaviour, their own bookkeeping is "other".
 * Rules and behaviour classify sites (unique stacks) at result time: a
 * site's bytes that no annotation named all take the site's category, so the
 * composition of the peak stays exact per site.
 *
 * Library code: nothing here prints or exits; errors come back as a status
 * and a message in the caller's buffer. Not thread-safe per object; the
 * built-in rules are immutable and may be shared.
 */
#ifndef PROF_ATTRIBUTION_H
#define PROF_ATTRIBUTION_H

#include <stddef.h>
#include <stdint.h>

#include <mlmem/annotate.h>

#include "accounting.h"
#include "prof_result.h"

/* ---- rules --------------------------------------------------------------- */

typedef enum {
    PROF_RULE_FUNCTION = 0,   /* the frame's demangled function name      */
    PROF_RULE_FILE = 1,       /* its source file path                     */
    PROF_RULE_MODULE = 2,     /* the path of its ELF object               */
} prof_rule_field_t;

typedef struct {
    mlmem_category_t category;
    prof_rule_field_t field;
    char *glob;               /* fnmatch(3) pattern, case-insensitive     */
    char *origin;             /* "FILE:LINE" or "built-in"                */
} prof_rule_t;

typedef struct prof_rules {
    prof_rule_t *v;
    size_t n;
} prof_rules_t;

/* Parses a rules file. Format, one rule a line:
 *     category  field  glob
 * category: weights, gradients, optimizer_state, activations, data,
 * temporaries or other; field: function, file or module; glob: an fnmatch
 * pattern without spaces, matched case-insensitively against the whole
 * string. Blank lines and lines starting with '#' are ignored. Rules are
 * appended to 'rules' (which may already hold some) in file order.
 * Returns 0, or -1 with "PATH:LINE: what is wrong" in 'err' (the file
 * could not be read: "PATH: strerror"); 'rules' then holds the rules of
 * the lines before the bad one. */
int prof_rules_load(const char *path, prof_rules_t *rules, char *err, size_t errlen);

/* The same from a string; 'name' stands for the path in messages. */
int prof_rules_parse(const char *text, const char *name, prof_rules_t *rules, char *err,
                     size_t errlen);

/* Releases the rules' memory and empties 'rules'. No operation on NULL. */
void prof_rules_free(prof_rules_t *rules);

/* The built-in table (static, never freed). */
const prof_rules_t *prof_rules_builtin(void);

/* Finds the first rule that matches the site's frames: frames innermost
 * first, and for each frame the rules of 'user' (may be NULL) then the
 * built-in ones, in order. A frame of a tensor framework's own library
 * (prof_frame_is_framework()) that no user rule matches ends the search
 * of the built-in table: for tensor storage (prof_site_is_tensor()) only
 * the user's rules are tried on the outer frames, then behaviour decides
 * (NULL); anything else the framework allocates is its own bookkeeping,
 * and a built-in rule naming the library ("other") is returned. Returns
 * the rule, or NULL. */
const prof_rule_t *prof_rules_match(const prof_rules_t *user, const prof_site_t *site);

/* 1 if the frame's module is a tensor framework's own library (libc10,
 * libtorch*, libcaffe2*, NumPy's array core), whose function names say
 * how a tensor is made, not what it is for. */
int prof_frame_is_framework(const prof_frame_t *f);

/* 1 if the site allocates through a framework's tensor allocator
 * (c10::alloc_cpu and its callers), or blocks of 4 KiB or more in NumPy's
 * array core: tensor or array storage. */
int prof_site_is_tensor(const prof_site_t *s);

/* Category names as in reports ("optimizer_state"); NULL if out of range. */
const char *prof_category_name(int category);

/* Returns the category named 'name', or -1. */
int prof_category_parse(const char *name);

/* ---- steps --------------------------------------------------------------- */

/* Training steps found in a sequence of allocation keys (stack ids) with
 * their times. The step is the period P for which key[i] == key[i + P]
 * (+-1) holds most often, or a smaller one that divides it and holds at
 * least 80% as often (multiples of the step, and jitter that recurs every
 * few steps, repeat as well as the step);
 * the anchor is the key of the first regular period that allocates least
 * often, and each step starts where the anchor does, at most once per half
 * period. Handles warm-up steps (an irregular start), jitter (an extra or
 * missing allocation now and then) and evaluation passes in between (their
 * keys differ). Fewer than 3 steps, or a burst (steps under 100 us each,
 * or fewer than 8 steps, spanning less than a tenth of the history's time:
 * a report writer's loop), are no steps. */
typedef struct {
    uint64_t count;           /* steps in the sequence; 0: none found     */
    uint64_t period;          /* allocations per step                     */
    uint32_t anchor;          /* the key marking each step                */
    uint32_t anchor_offset;   /* keys from a step's start to its anchor   */
    uint64_t first_ns;        /* start of the first step                  */
    uint64_t last_ns;         /* start of the last step                   */
    uint64_t period_ns;       /* mean time from one step to the next      */
    double confidence;        /* share of the sequence that repeats       */
} prof_step_detect_t;

/* Detects steps in 'n' keys and times (times may be NULL: then 0).
 * Returns 0 (out->count 0 when no period was found), or -1 if out of
 * memory. */
int prof_steps_detect(const uint32_t *keys, const uint64_t *times, size_t n,
                      prof_step_detect_t *out);

/* ---- putting it together ------------------------------------------------- */

/* What attribution needs beyond the result. */
typedef struct {
    const prof_rules_t *rules;          /* the user's; NULL: built-in only */
    const prof_acct_logged_t *log;      /* the first allocations, in order */
    size_t log_count;
    int log_truncated;                  /* the log stopped before the end  */
    const prof_live_range_t *ranges;    /* live bytes' range per span of the
                                           run (prof_acct_live_ranges); NULL:
                                           detected steps get no per-step
                                           peaks or phases                 */
    size_t range_count;
    uint64_t range_width_ns;
} prof_attr_input_t;

/* Classifies every site of 'r' (which holds all sites, with frames if they
 * were symbolized) and fills r->categories, r->steps (unless annotated
 * steps are there), each site's category and the timeline's category
 * bytes. Calling it again (other rules) redoes all but the timeline, whose
 * unannotated bytes were spread the first time. Returns 0, or -1 if out of
 * memory ('r' then stays valid, with categories possibly unset). */
int prof_attribute(prof_result_t *r, const prof_attr_input_t *in);

#endif /* PROF_ATTRIBUTION_H */
