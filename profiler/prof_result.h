/*
 * prof_result.h - what the analyzer knows about one profiled process, as
 * plain data. The analyzer fills it (prof_analysis_result()); reports/ turns
 * it into JSON and text; the TUI reads it. Nothing here points into the
 * analyzer's live state: a result is a snapshot that owns all its memory and
 * is released with prof_result_free().
 *
 * Units: bytes, and nanoseconds since the process's stream started unless a
 * name says otherwise (*_realtime_ns are nanoseconds since the Unix epoch).
 * "Live bytes" are the requested sizes of the heap blocks (malloc family)
 * plus the lengths of anonymous mappings the program made itself; file-backed
 * mappings are counted apart (file_mapped_*) and never in live bytes.
 */
#ifndef PROF_RESULT_H
#define PROF_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include <mlmem/annotate.h>

/* One symbolized frame. Strings may be NULL when unknown; a frame that
 * cannot be resolved still has module and module_offset. */
typedef struct {
    uint64_t address;       /* the raw return address (minus 1 for callers) */
    char *function;         /* demangled; NULL if unknown                  */
    char *file;             /* source file; NULL if no debug info          */
    uint32_t line;          /* 0 if unknown                                */
    uint32_t inlined;       /* 1 if this frame was inlined into the next   */
    char *module;           /* path of the ELF object; NULL if unmapped    */
    uint64_t module_offset; /* address relative to the module's load base  */
} prof_frame_t;

/* One allocation site: a unique stack. Site 0 (stack_id MLMEM_STACK_NONE)
 * collects the small allocations whose stack was not sampled. */
typedef struct {
    uint32_t stack_id;
    uint32_t frame_count;
    prof_frame_t *frames;            /* innermost first; may be NULL       */
    char *frame_strings;             /* when not NULL, holds every string of
                                        'frames' (the analyzer packs a site's
                                        strings in one block); when NULL,
                                        each frame owns its strings         */

    uint64_t allocations;            /* ALLOC/REALLOC/MMAP events          */
    uint64_t frees;
    uint64_t bytes_allocated;        /* sum of requested sizes             */
    uint64_t live_bytes_at_peak;     /* contribution to the global peak    */
    uint64_t live_allocations_at_peak;
    uint64_t peak_live_bytes;        /* the site's own maximum             */
    uint64_t live_bytes;             /* at the end = leaked                */
    uint64_t live_allocations;
    uint64_t temporary_allocations;  /* freed with no event in between     */
    uint64_t largest_allocation;
    uint64_t lifetime_min_ns;        /* over freed blocks; 0 if none freed */
    uint64_t lifetime_max_ns;
    uint64_t lifetime_sum_ns;        /* mean = sum / frees                 */
    uint32_t sampled;                /* 1: small allocations chosen by the
                                        sampler; figures cover only those  */
    uint32_t is_mmap;                /* 1: the site made anonymous mappings */

    /* Filled by attribution (issue 4); NULL / 0 until then. */
    const char *category;
    double category_confidence;
    char *category_evidence;

    /* Raw material for attribution, from accounting. */
    uint64_t unannotated_bytes_at_peak; /* part of live_bytes_at_peak no
                                           annotation named              */
    uint64_t unannotated_bytes;      /* the same at the end                */
    uint64_t first_alloc_ns;         /* birth of its first allocation      */
    uint64_t last_alloc_ns;          /* birth of its latest allocation     */
    uint64_t first_free_ns;          /* when it first freed one; 0: never  */
    uint64_t file_read_bytes;        /* bytes read from files into its
                                        blocks (FILE_READ events)          */
    int32_t annotated_category;      /* mlmem_category_t annotations gave its
                                        blocks (the latest if several), -1 */
    uint32_t annotated_mixed;        /* 1: annotations gave several        */
    uint32_t category_source;        /* PROF_EVIDENCE_* of 'category'      */
} prof_site_t;

/* How a category was decided, strongest first. */
typedef enum {
    PROF_EVIDENCE_NONE = 0,          /* nothing said: "other"              */
    PROF_EVIDENCE_ANNOTATION = 1,    /* a region or a tag                  */
    PROF_EVIDENCE_RULE = 2,          /* a stack frame matched a rule       */
    PROF_EVIDENCE_BEHAVIOUR = 3,     /* lifetime, birth time, sizes        */
} prof_evidence_t;

/* Memory of one category (index = mlmem_category_t). */
typedef struct {
    const char *name;                /* static: "weights", ...             */
    uint64_t bytes_at_peak;          /* exact (see docs/attribution.md)    */
    uint64_t max_bytes;              /* the category's own maximum         */
    uint64_t bytes_at_end;           /* exact                              */
    uint64_t bytes_at_peak_by[4];    /* split by prof_evidence_t           */
    uint64_t annotated_max_bytes;    /* maximum of its annotated bytes     */
    uint32_t max_exact;              /* 1: max_bytes is exact (annotations
                                        only), 0: from the timeline        */
    double confidence;               /* byte-weighted at the peak, 0..1    */
    char *evidence;                  /* one line: what decided it          */
} prof_category_t;

/* Annotation bookkeeping (counts of edge cases, none fatal). */
typedef struct {
    uint64_t region_allocations;     /* allocations that took a category
                                        from a region (or from the block
                                        they reallocated)                  */
    uint64_t tags;                   /* TAG events                         */
    uint64_t tags_unknown;           /* TAG of an address not live         */
    uint64_t region_unmatched_ends;  /* REGION_END with no region open     */
    uint64_t region_overflows;       /* REGION_BEGIN beyond 16 deep        */
} prof_attr_counts_t;

/* Training steps, from STEP annotations or detected from the periodic
 * allocation sequence. */
typedef struct {
    const char *source;              /* "annotations", "detected", "none"  */
    uint64_t count;
    uint64_t period_ns;              /* mean step duration; 0 if unknown   */
    uint64_t period_allocations;     /* detected: allocations per step     */
    uint64_t first_step_ns;          /* start of the first step            */
    uint64_t last_step_ns;           /* start of the last step             */
    uint64_t *peak_bytes;            /* annotated: each step's peak        */
    size_t peak_count;
    uint32_t phases_seen;            /* bit (1 << mlmem_phase_t)           */
    uint32_t current_phase;          /* annotated: the last PHASE mark since
                                        the last STEP (mlmem_phase_t; 0 none) */
    uint64_t current_step;           /* annotated: the last STEP's number   */
    double confidence;               /* detected: share of the allocation
                                        sequence that repeats              */
    /* Detected steps: phases inferred from the shape of live bytes within
     * a step (attribution.c, attr_detected_step_shape); set in phases_seen
     * too. Ends are median fractions of the period; 0: not found. */
    const char *phase_source;        /* "inferred", or NULL                */
    const char *peak_where;          /* where the run's peak falls: "before_steps",
                                        "step", "after_steps", "evaluation"
                                        (after them, with eval_batches), or
                                        NULL (no steps)                    */
    uint64_t peak_step;              /* "step": its index (0-based)         */
    double peak_step_fraction;       /* "step", detected: how far into the
                                        step (0..1); -1 when not known     */
    uint64_t eval_batches;           /* detected from sites: forward-only
                                        passes besides the steps (the sites
                                        of the forward pass allocate a
                                        multiple of count + eval_batches
                                        times); "eval" is in phases_seen  */
    double forward_end;              /* start -> the step's peak           */
    double backward_end;             /* the peak -> live bytes back half-way
                                        to the step's lowest               */
} prof_steps_t;

typedef struct {
    uint32_t tid;
    char name[16];                   /* "" if unknown                      */
    uint64_t allocations;
    uint64_t frees;
    uint64_t bytes_allocated;
    uint64_t live_bytes;             /* allocated by it, still live at end */
    uint64_t peak_live_bytes;        /* max of live_bytes over time        */
    uint64_t live_bytes_at_peak;     /* its share of the global peak       */
} prof_thread_t;

typedef struct {
    uint64_t time_ns;
    uint64_t live_bytes;             /* the maximum within this point's span */
    uint64_t heap_bytes;             /* at that maximum                    */
    uint64_t mmap_bytes;             /* at that maximum                    */
    uint64_t rss_bytes;              /* latest RSS sample; 0 before any    */
    uint64_t category_bytes[MLMEM_CATEGORY_COUNT]; /* at that maximum; see
                                        docs/attribution.md for exactness  */
    uint64_t unannotated_bytes;      /* part of live_bytes no annotation
                                        named (spread over category_bytes
                                        by attribution)                    */
} prof_timeline_point_t;

typedef struct {
    uint64_t events;                 /* all events applied                 */
    uint64_t total_allocations;      /* ALLOC + REALLOC + MMAP events      */
    uint64_t total_frees;            /* FREE + freeing side of REALLOC + MUNMAP */
    uint64_t total_bytes;            /* bytes requested, all allocations   */
    uint64_t peak_bytes;             /* max live bytes                     */
    uint64_t peak_time_ns;
    uint64_t peak_seq;               /* event seq at which it was reached  */
    uint64_t peak_heap_bytes;        /* heap part of the peak              */
    uint64_t peak_mmap_bytes;        /* anonymous-mmap part of the peak    */
    uint64_t live_bytes;             /* at the end                         */
    uint64_t leaked_bytes;           /* heap + anonymous mmap live at end  */
    uint64_t leaked_allocations;
    uint64_t temporary_allocations;
    uint64_t file_mapped_bytes;      /* at the end                         */
    uint64_t peak_file_mapped_bytes;
    uint64_t peak_rss_bytes;         /* max RSS sample                     */
    uint64_t peak_rss_time_ns;
    uint64_t rss_samples;
    uint64_t dropped_events;         /* the shim could not send them       */
    uint64_t lost_events;            /* gaps in seq: cut off mid-flight    */
    uint64_t stacks_lost;            /* allocations sent without their stack */
    uint64_t unmatched_frees;        /* free of an address not live        */
    uint64_t duration_ns;            /* time of the last event             */
    uint64_t steps_annotated;        /* STEP annotations seen              */
    uint64_t file_read_bytes;        /* bytes read from files (FILE_READ)  */
} prof_summary_t;

typedef enum {
    PROF_END_UNKNOWN = 0,  /* stream cut off: killed, or still running    */
    PROF_END_EXITED,       /* exit_code valid                             */
    PROF_END_SIGNALED,     /* signal valid                                */
    PROF_END_EXEC,         /* replaced its image with execve              */
    PROF_END_RUNNING,      /* live: still running                         */
} prof_end_t;

typedef struct {
    int32_t pid;
    int32_t ppid;
    char *exe;                       /* /proc/self/exe of the image        */
    char *command;                   /* argv joined by spaces              */
    uint64_t start_realtime_ns;
    uint64_t end_realtime_ns;        /* 0 if unknown                       */
    prof_end_t end;
    int32_t exit_code;
    int32_t signal;
    uint32_t stack_mode;             /* MLMEM_STACKS_*                     */
    uint64_t sample_threshold;       /* allocations >= this always get a stack */
    uint64_t sample_rate;            /* mean bytes between sampled small ones */
} prof_process_t;

/* A short summary of another process in the same run (a forked or exec'd
 * child), so a report can list them. */
typedef struct {
    int32_t pid;
    int32_t ppid;
    char *command;
    uint64_t peak_bytes;
    uint64_t total_allocations;
    uint64_t leaked_bytes;
    prof_end_t end;
    int32_t exit_code;
    int32_t signal;
} prof_child_t;

/* Kinds of advice (advice.h). */
typedef enum {
    PROF_ADVICE_CHECKPOINTING = 0,
    PROF_ADVICE_PRECISION,
    PROF_ADVICE_BATCHING,
    PROF_ADVICE_DATA_STREAMING,
    PROF_ADVICE_OPTIMIZER,
    PROF_ADVICE_COMPRESSION,
    PROF_ADVICE_CHURN,
    PROF_ADVICE_LEAK,
    PROF_ADVICE_EVAL_BATCH,
    PROF_ADVICE_KIND_COUNT
} prof_advice_kind_t;

/* The kind's name as reports write it; "unknown" out of range. */
static inline const char *prof_advice_kind_name(prof_advice_kind_t kind)
{
    static const char *const names[PROF_ADVICE_KIND_COUNT] = {
        "checkpointing", "precision", "batching", "data_streaming",
        "optimizer", "compression", "churn", "leak", "evaluation",
    };
    return (unsigned)kind < PROF_ADVICE_KIND_COUNT ? names[kind] : "unknown";
}

/* One recommendation (advice.h computes them). Strings are owned; 'flags'
 * is NULL unless the profiled command is mlmem-train. */
typedef struct {
    prof_advice_kind_t kind;
    uint32_t group;                  /* prof_advice_group_t: alternatives  */
    char *title;
    uint64_t predicted_peak_bytes;   /* the process's peak after the change */
    uint64_t bytes_saved;            /* peak_bytes - predicted_peak_bytes  */
    double extra_compute;            /* fraction: 0.25 = +25% step time    */
    char *cost;                      /* extra compute, accuracy risk       */
    double confidence;               /* 0..1                               */
    char *reasoning;                 /* one or two sentences with figures  */
    char *apply;                     /* how to apply it, generic           */
    char *flags;                     /* mlmem-train flags, or NULL         */
    uint32_t deployment_only;        /* 1: saves at deployment, not in this
                                        run's peak (compression)           */
    uint32_t plan_cost;              /* order of cheapness for plans       */
    /* The change as arithmetic on the category bytes at the peak: each
     * category becomes min(bytes * scale, bound). */
    double scale[MLMEM_CATEGORY_COUNT];
    uint64_t bound[MLMEM_CATEGORY_COUNT];
    int64_t peak_delta;              /* bytes the change removes besides the
                                        category arithmetic (a leak's growth);
                                        negative: bytes it adds (a scratch
                                        buffer)                            */
} prof_recommendation_t;

typedef struct {
    prof_process_t process;
    prof_summary_t summary;

    prof_site_t *sites;              /* sorted by live_bytes_at_peak, then
                                        bytes_allocated, descending        */
    size_t site_count;
    prof_thread_t *threads;          /* sorted by bytes_allocated desc     */
    size_t thread_count;
    prof_timeline_point_t *timeline; /* increasing time                    */
    size_t timeline_count;
    prof_child_t *children;          /* other processes of the run         */
    size_t child_count;

    /* Attribution (issue 4). category_count is 0 until attribution ran,
     * then MLMEM_CATEGORY_COUNT. */
    prof_category_t categories[MLMEM_CATEGORY_COUNT];
    size_t category_count;
    prof_attr_counts_t attribution;
    prof_steps_t steps;
    /* From accounting: annotated bytes per category (exact). */
    uint64_t annotated_at_peak[MLMEM_CATEGORY_COUNT];
    uint64_t annotated_at_end[MLMEM_CATEGORY_COUNT];
    uint64_t annotated_max[MLMEM_CATEGORY_COUNT];

    /* Advice (advice.h): sorted by bytes_saved, descending. */
    prof_recommendation_t *recommendations;
    size_t recommendation_count;
} prof_result_t;

/* Releases everything 'r' owns and zeroes it. No operation if r is NULL. */
void prof_result_free(prof_result_t *r);

/* Frees what one site owns (its frames' strings and array, its evidence)
 * and clears those fields; the site itself stays (used to cut a list). */
void prof_site_release(prof_site_t *s);

/* Frees a site's frames (their strings and the array) only. */
void prof_site_drop_frames(prof_site_t *s);

#endif /* PROF_RESULT_H */
