/*
 * trainer/precision.c - dtype conversions and dynamic loss scaling.
 */
#include "precision.h"

#include <math.h>

size_t train_dtype_size(train_dtype_t dt)
{
    return dt == TRAIN_F32 ? 4 : 2;
}

const char *train_dtype_name(train_dtype_t dt)
{
    switch (dt) {
    case TRAIN_F32: return "fp32";
    case TRAIN_BF16: return "bf16";
    case TRAIN_F16: return "fp16";
    }
    return "?";
}

int train_dtype_parse(const char *s)
{
    if (!strcmp(s, "fp32") || !strcmp(s, "f32")) return TRAIN_F32;
    if (!strcmp(s, "bf16")) return TRAIN_BF16;
    if (!strcmp(s, "fp16") || !strcmp(s, "f16")) return TRAIN_F16;
    return -1;
}

void train_store_f32(train_dtype_t dt, void *dst, const float *src, size_t n)
{
    if (dt == TRAIN_F32) {
        if (dst != (const void *)src)
            memcpy(dst, src, n * sizeof(float));
    } else if (dt == TRAIN_BF16) {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = train_f32_to_bf16(src[i]);
    } else {
        uint16_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = train_f32_to_f16(src[i]);
    }
}

void train_load_f32(train_dtype_t dt, float *dst, const void *src, size_t n)
{
    if (dt == TRAIN_F32) {
        if ((const void *)dst != src)
            memcpy(dst, src, n * sizeof(float));
    } else if (dt == TRAIN_BF16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = train_bf16_to_f32(s[i]);
    } else {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++)
            dst[i] = train_f16_to_f32(s[i]);
    }
}

void train_round_to(train_dtype_t dt, float *x, size_t n)
{
    if (dt == TRAIN_BF16) {
        for (size_t i = 0; i < n; i++)
            x[i] = train_bf16_to_f32(train_f32_to_bf16(x[i]));
    } else if (dt == TRAIN_F16) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(_Float16)x[i];
    }
}

int train_all_finite(const float *x, size_t n)
{
    /* x*0 is 0 for finite x and NaN for inf/NaN; summing keeps the loop
     * branch-free and vectorizable. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++)
        acc += x[i] * 0.0f;
    return acc == 0.0f;
}

void train_scaler_init(train_scaler_t *s, float init_scale, int dynamic)
{
    s->scale = init_scale;
    s->growth_interval = 2000;
    s->good_steps = 0;
    s->skipped = 0;
    s->dynamic = dynamic;
}

int train_scaler_update(train_scaler_t *s, int found_inf)
{
    if (found_inf) {
        s->skipped++;
        s->good_steps = 0;
        if (s->dynamic && s->scale > 1.0f)
            s->scale *= 0.5f;
        return 0;
    }
    if (s->dynamic && ++s->good_steps >= s->growth_interval) {
        s->good_steps = 0;
        if (s->scale < 16777216.0f)
            s->scale *= 2.0f;
    }
    return 1;
}
