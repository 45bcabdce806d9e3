/*
 * advice.h - what to change to need less memory, from the composition at
 * the peak (prof_result_t.categories), the steps and the sites that
 * attribution filled (docs/advisor.md).
 *
 * Each recommendation says the peak predicted after the change, the bytes
 * saved, the cost, a confidence, the reasoning and how to apply it; when the
 * profiled command is the reference trainer (mlmem-train), also its exact
 * flags. Predictions act on the category bytes at the peak: each change
 * scales some categories (or bounds them), and the predicted peak is the
 * measured peak minus what the changed categories lose. Several changes
 * combine by applying each to the category bytes in turn, then summing.
 *
 * Ownership: prof_advise() fills r->recommendations, which the result owns
 * (prof_result_free() releases it). A plan owns its strings and is released
 * with prof_advice_plan_free(). Nothing here prints, exits or keeps state;
 * everything is safe to call from several threads on different results.
 */
#ifndef PROF_ADVICE_H
#define PROF_ADVICE_H

#include <stddef.h>
#include <stdint.h>

#include "prof_result.h"

/* Changes of the same group are alternatives (a plan takes at most one). */
typedef enum {
    PROF_GROUP_CHECKPOINTING = 0,
    PROF_GROUP_ACT_PRECISION,
    PROF_GROUP_BATCHING,
    PROF_GROUP_DATA,
    PROF_GROUP_OPTIMIZER,
    PROF_GROUP_OPT_PRECISION,
    PROF_GROUP_COMPRESSION,
    PROF_GROUP_CHURN,
    PROF_GROUP_LEAK,
    PROF_GROUP_GRAD_PRECISION,
    PROF_GROUP_EVAL,
} prof_advice_group_t;

/* A plan: the cheapest set of recommendations whose combined predicted
 * peak fits the budget. */
typedef struct {
    uint64_t budget;
    int fits;                        /* 1: predicted_peak <= budget         */
    uint64_t predicted_peak;         /* with every chosen change            */
    uint64_t shortfall;              /* fits 0: predicted_peak - budget with
                                        every applicable change; else 0     */
    size_t *chosen;                  /* indices into r->recommendations    */
    size_t chosen_count;
    char *statement;                 /* one or two sentences               */
    /* The largest batch that fits the budget with nothing else changed,
     * for mlmem-train runs (0 when unknown): activations and the input
     * batch buffer scale with the rows of a forward/backward. Below the
     * current batch it is a micro-batch (gradients accumulated to the same
     * batch: a divisor of it); above, a larger batch. */
    long largest_batch;
    int largest_is_micro;            /* 1: --micro-batch, 0: --batch       */
    uint64_t largest_batch_peak;     /* its predicted peak                 */
    char *batch_statement;           /* says so, with the flag; or NULL    */
} prof_advice_plan_t;

/* Computes the recommendations of 'r' (which attribution filled:
 * category_count == MLMEM_CATEGORY_COUNT) into r->recommendations, sorted
 * by bytes saved, descending; replaces any that were there. Only changes
 * that apply are given (no optimizer advice without optimizer state, no
 * checkpointing with too few layers, ...). A result without categories gets
 * none. Returns 0, or -1 if out of memory (r->recommendations then empty). */
int prof_advise(prof_result_t *r);

/* The cheapest combination of r's recommendations whose predicted peak is
 * at most 'budget' (bytes). Cost order: free changes first (fixing a leak,
 * streaming data, bf16 optimizer state, a lighter optimizer), then those
 * with an accuracy risk or extra compute (bf16 activations, micro-batching,
 * checkpointing). Deployment-only changes (compression) and churn (no
 * saving at the peak) are never part of a plan. If nothing fits, 'out' says
 * by how much the best combination falls short. Returns 0, or -1 if out of
 * memory. */
int prof_advice_plan(const prof_result_t *r, uint64_t budget, prof_advice_plan_t *out);

/* Predicted peak of 'r' with the recommendations at 'idx' applied together
 * (same arithmetic as the plan). */
uint64_t prof_advice_combined_peak(const prof_result_t *r, const size_t *idx, size_t n);

void prof_advice_plan_free(prof_advice_plan_t *p);

#endif /* PROF_ADVICE_H */
