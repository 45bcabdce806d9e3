/*
 * test_ui_replay.c - the replay's frames (ui/ui_replay.h) of a trace
 * written here: the frame that P shows (ui_model_peak_frame) holds the
 * figures of the moment of the peak, though the slice of the stream that
 * reaches the peak also holds the frees after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "profiler/trace_file.h"
#include "tests/stream_builder.h"
#include "ui/ui_model.h"
#include "ui/ui_replay.h"

#define BLOCKS 100
#define BLOCK_BYTES 1000

/* One process: BLOCKS allocations (the peak is the last of them), then it
 * frees all but one; one stream, written as a single record. */
static void write_trace(const char *path)
{
    sb_t b;
    sb_init(&b);
    sb_header(&b);
    sb_hello_simple(&b, 4242, 1, "peaky");
    for (uint32_t i = 0; i < BLOCKS; i++)
        sb_alloc(&b, 4242, i + 1, 1000 * (i + 1), 0x100000 + 0x1000 * i, BLOCK_BYTES, 0);
    for (uint32_t i = 0; i + 1 < BLOCKS; i++)
        sb_free_ev(&b, 4242, BLOCKS + 1 + i, 200000 + i, 0x100000 + 0x1000 * i);
    sb_end(&b, MLMEM_END_EXIT, 1, 0, 2 * BLOCKS - 1, 0, 0);

    char err[512] = "";
    prof_trace_writer_t *w = prof_trace_writer_open(path, err, sizeof err);
    if (!w)
        fail_msg("writer_open: %s", err);
    assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_OPEN, 1, NULL, 0), 0);
    assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_DATA, 1, b.out.data, b.out.len),
                     0);
    assert_int_equal(prof_trace_write_stream(w, MLMEM_TREC_STREAM_CLOSE, 1, NULL, 0), 0);
    if (prof_trace_writer_close(w, err, sizeof err) != 0)
        fail_msg("writer_close: %s", err);
    sb_free(&b);
}

static void test_ui_replay_peak_frame_is_the_peak(void **state)
{
    (void)state;
    char path[] = "/tmp/mlmem-test-ui-replay-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_trace(path);

    ui_replay_frames_t f;
    char err[512] = "";
    if (ui_replay_load(path, 0, 0, &f, err, sizeof err) != 0)
        fail_msg("ui_replay_load: %s", err);
    unlink(path);
    assert_true(f.count >= 1);
    ui_model_t m;
    ui_model_init(&m);
    assert_int_equal(ui_model_set_frames(&m, f.frames, f.count, &f.symbols), 0);
    size_t p = ui_model_peak_frame(&m);
    const prof_summary_t *at = &f.frames[p].summary;
    assert_int_equal(at->peak_bytes, BLOCKS * BLOCK_BYTES);
    assert_int_equal(at->live_bytes, BLOCKS * BLOCK_BYTES); /* no free yet */
    assert_int_equal(at->peak_seq, BLOCKS);
    /* The whole run, last: one block left. */
    assert_int_equal(f.frames[f.count - 1].summary.live_bytes, BLOCK_BYTES);
    ui_model_free(&m);
    ui_replay_frames_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_replay_peak_frame_is_the_peak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
