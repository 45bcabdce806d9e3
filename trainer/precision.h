/*
 * trainer/precision.h - storage dtypes (fp32, bf16, fp16) and conversions.
 *
 * Arithmetic is always fp32; bf16 and fp16 are storage formats. Conversions
 * to bf16 and fp16 round to nearest, ties to even; NaN stays NaN, values
 * beyond a format's range become +-inf (fp16 overflows at 65520). fp16 uses
 * the compiler's _Float16 (IEEE binary16, exact rounding on x86-64).
 *
 * The loss scaler implements fp16 dynamic loss scaling: the loss (and so
 * every gradient) is multiplied by 'scale'; a step whose gradients contain
 * inf or NaN is skipped and the scale halved; after 'growth_interval' good
 * steps in a row the scale doubles.
 */
#ifndef TRAIN_PRECISION_H
#define TRAIN_PRECISION_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    TRAIN_F32 = 0,
    TRAIN_BF16 = 1,
    TRAIN_F16 = 2,
} train_dtype_t;

typedef struct {
    float scale;
    int growth_interval;
    int good_steps;
    long skipped;        /* steps skipped so far */
    int dynamic;         /* 0: fixed scale, never changes */
} train_scaler_t;

/* Bytes per element of a dtype (4 or 2). */
size_t train_dtype_size(train_dtype_t dt);
/* "fp32", "bf16", "fp16"; parse returns -1 for an unknown name. */
const char *train_dtype_name(train_dtype_t dt);
int train_dtype_parse(const char *s);

static inline uint16_t train_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x0040u);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float train_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t train_f32_to_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static inline float train_f16_to_f32(uint16_t u)
{
    _Float16 h;
    memcpy(&h, &u, 2);
    return (float)h;
}

/* dst[i] = src[i] converted; dst holds n elements of 'dt'. For TRAIN_F32 a
 * plain copy (skipped when dst == src). */
void train_store_f32(train_dtype_t dt, void *dst, const float *src, size_t n);
/* dst[i] = fp32 value of src[i] of dtype 'dt'. */
void train_load_f32(train_dtype_t dt, float *dst, const void *src, size_t n);
/* Rounds x[i] in place to the nearest value representable in 'dt'. */
void train_round_to(train_dtype_t dt, float *x, size_t n);
/* 1 when every x[i] is finite. */
int train_all_finite(const float *x, size_t n);

void train_scaler_init(train_scaler_t *s, float init_scale, int dynamic);
/* Call once per optimizer step with found_inf = whether any gradient was
 * non-finite. Returns 1 if the step should be applied, 0 if skipped. */
int train_scaler_update(train_scaler_t *s, int found_inf);

#endif /* TRAIN_PRECISION_H */
