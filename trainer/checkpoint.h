/*
 * trainer/checkpoint.h - model checkpoints: versioned, checksummed, validated.
 *
 * File format, version 1 (little-endian):
 *   offset  0  char[8]  magic "MLMTCKPT"
 *           8  u32      version (1)
 *          12  u32      header bytes (64)
 *          16  u32      n_in, n_out, depth, width, act (5 x u32)
 *          36  u32      reserved (0)
 *          40  u64      n_params
 *          48  u64      steps trained
 *          56  u64      reserved (0)
 *          64  f32[n_params]  W_0, b_0, W_1, b_1, ... (row-major, fp32 masters)
 *        end  u32      CRC-32 (zlib) of every byte before it
 *
 * Loading checks, in order: the file opens; its size is at least a header;
 * magic; version; header size; architecture fields plausible and n_params
 * consistent with them; total size; checksum; and, for train_checkpoint_load,
 * that the architecture matches the model. Each failure is -1 with a
 * message naming the file and the problem in 'err' (TRAIN_ERR_LEN bytes).
 * The file is read and written with read(2)/write(2): no allocation.
 */
#ifndef TRAIN_CHECKPOINT_H
#define TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "model.h"

#define TRAIN_CKPT_MAGIC "MLMTCKPT"
#define TRAIN_CKPT_VERSION 1
#define TRAIN_CKPT_HEADER_BYTES 64

typedef struct {
    uint32_t version;
    int n_in, n_out, depth, width;
    train_act_t act;
    uint64_t n_params, steps;
} train_ckpt_info_t;

int train_checkpoint_save(const train_model_t *m, uint64_t steps, const char *path, char *err);
/* Validates the whole file and returns its architecture. */
int train_checkpoint_peek(const char *path, train_ckpt_info_t *info, char *err);
/* Validates and loads the weights into 'm' (architecture must match). On
 * failure the model's weights are unspecified but the model stays valid. */
int train_checkpoint_load(train_model_t *m, const char *path, train_ckpt_info_t *info,
                          char *err);

#endif /* TRAIN_CHECKPOINT_H */
