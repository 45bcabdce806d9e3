/*
 * test_report_fixture.c - builds the result described in
 * test_report_fixture.h. Kept apart from the analyzer so the report tests
 * do not depend on its library (they compile prof_result.c alone).
 */
#include "test_report_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "mlmem/trace_format.h"

char *rtest_strdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        abort();
    return d;
}

static void *rtest_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        abort();
    return p;
}

static prof_frame_t rtest_frame(uint64_t address, const char *function, const char *file,
                                uint32_t line, const char *module, uint64_t bias)
{
    prof_frame_t f = {
        .address = address,
        .function = function ? rtest_strdup(function) : NULL,
        .file = file ? rtest_strdup(file) : NULL,
        .line = line,
        .module = module ? rtest_strdup(module) : NULL,
        .module_offset = module ? address - bias : 0,
    };
    return f;
}

prof_result_t *rtest_result_new(void)
{
    prof_result_t *r = rtest_calloc(1, sizeof(*r));

    prof_process_t *p = &r->process;
    p->pid = 4242;
    p->ppid = 1;
    p->exe = rtest_strdup("/usr/bin/python3");
    p->command = rtest_strdup("python3 train.py --epochs 2");
    p->start_realtime_ns = UINT64_C(1700000000123456789);
    p->end_realtime_ns = UINT64_C(1700000005123456789);
    p->end = PROF_END_EXITED;
    p->exit_code = 0;
    p->stack_mode = MLMEM_STACKS_SAMPLED;
    p->sample_threshold = 4096;
    p->sample_rate = 524288;

    prof_summary_t *s = &r->summary;
    s->events = 2000;
    s->total_allocations = 1000;
    s->total_frees = 990;
    s->total_bytes = 10485760;
    s->peak_bytes = 1572864;
    s->peak_time_ns = 2500000000u;
    s->peak_seq = 777;
    s->peak_heap_bytes = 1048576;
    s->peak_mmap_bytes = 524288;
    s->live_bytes = 3072;
    s->leaked_bytes = 3072;
    s->leaked_allocations = 10;
    s->temporary_allocations = 250;
    s->file_mapped_bytes = 8192;
    s->peak_file_mapped_bytes = 16384;
    s->peak_rss_bytes = 20971520;
    s->peak_rss_time_ns = 3000000000u;
    s->rss_samples = 5;
    s->duration_ns = 5000000000u;
    s->steps_annotated = 2;
    s->file_read_bytes = 65536;

    r->site_count = 3;
    r->sites = rtest_calloc(3, sizeof(prof_site_t));

    prof_site_t *a = &r->sites[0];
    a->stack_id = 1;
    a->frame_count = 2;
    a->frames = rtest_calloc(2, sizeof(prof_frame_t));
    a->frames[0] = rtest_frame(0x555555401234, "train_forward", "/src/model.c", 120,
                               "/opt/train", 0x555555400000);
    a->frames[1] = rtest_frame(0x555555400a10, "main", "/src/main.c", 40,
                               "/opt/train", 0x555555400000);
    a->allocations = 100;
    a->frees = 100;
    a->bytes_allocated = 8388608;
    a->live_bytes_at_peak = 1048576;
    a->live_allocations_at_peak = 4;
    a->peak_live_bytes = 1048576;
    a->temporary_allocations = 10;
    a->largest_allocation = 262144;
    a->lifetime_min_ns = 1000;
    a->lifetime_max_ns = 900000;
    a->lifetime_sum_ns = 5000000;

    prof_site_t *b = &r->sites[1];
    b->stack_id = 2;
    b->frame_count = 2;
    b->frames = rtest_calloc(2, sizeof(prof_frame_t));
    b->frames[0] = rtest_frame(0x7ffff7a01000, "mlmem_test::Loader::next()",
                               "/src/loader.cpp", 77, "/usr/lib/libloader.so", 0x7ffff7a00000);
    b->frames[0].inlined = 1;
    b->frames[1] = rtest_frame(0x7ffff7a02000, NULL, NULL, 0, "/usr/lib/libloader.so",
                               0x7ffff7a00000);
    b->allocations = 20;
    b->frees = 10;
    b->bytes_allocated = 2093056;
    b->live_bytes_at_peak = 524288;
    b->live_allocations_at_peak = 1;
    b->peak_live_bytes = 524288;
    b->live_bytes = 3072;
    b->live_allocations = 10;
    b->largest_allocation = 524288;
    b->is_mmap = 1;

    prof_site_t *c = &r->sites[2];
    c->stack_id = MLMEM_STACK_NONE;
    c->allocations = 880;
    c->frees = 880;
    c->bytes_allocated = 4096;
    c->temporary_allocations = 240;
    c->largest_allocation = 64;
    c->lifetime_min_ns = 10;
    c->lifetime_max_ns = 20;
    c->lifetime_sum_ns = 8800;

    r->thread_count = 2;
    r->threads = rtest_calloc(2, sizeof(prof_thread_t));
    r->threads[0] = (prof_thread_t){.tid = 4242, .name = "python3", .allocations = 900,
                                    .frees = 895, .bytes_allocated = 9000000,
                                    .live_bytes = 1024, .peak_live_bytes = 1048576,
                                    .live_bytes_at_peak = 1048576};
    r->threads[1] = (prof_thread_t){.tid = 4250, .allocations = 100, .frees = 95,
                                    .bytes_allocated = 1485760, .live_bytes = 2048,
                                    .peak_live_bytes = 524288, .live_bytes_at_peak = 524288};
    memcpy(r->threads[1].name, "loader-thread-01", 16);   /* 16 bytes, no NUL */

    r->timeline_count = 3;
    r->timeline = rtest_calloc(3, sizeof(prof_timeline_point_t));
    r->timeline[0] = (prof_timeline_point_t){.time_ns = 0};
    r->timeline[1] = (prof_timeline_point_t){.time_ns = 2500000000u, .live_bytes = 1572864,
                                             .heap_bytes = 1048576, .mmap_bytes = 524288,
                                             .rss_bytes = 10485760};
    r->timeline[2] = (prof_timeline_point_t){.time_ns = 5000000000u, .live_bytes = 3072,
                                             .heap_bytes = 3072, .rss_bytes = 20971520};

    r->child_count = 1;
    r->children = rtest_calloc(1, sizeof(prof_child_t));
    r->children[0] = (prof_child_t){.pid = 4300, .ppid = 4242,
                                    .command = rtest_strdup("sh -c true"),
                                    .peak_bytes = 2048, .total_allocations = 12,
                                    .leaked_bytes = 0, .end = PROF_END_EXITED};
    return r;
}

void rtest_result_free(prof_result_t *r)
{
    if (r == NULL)
        return;
    prof_result_free(r);
    free(r);
}
