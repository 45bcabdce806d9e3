/*
 * test_train_fakeshim: stands in for libmlmem_preload.so in test_train_cli.
 * Defines the annotation entry points of include/mlmem/annotate.h, counts the
 * calls and prints the counts to stderr at exit (no stdio buffering: write).
 * Loaded with LD_PRELOAD, it resolves the trainer's weak references.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
static long steps, phases[8], regions, ends, tags;
void mlmem_annotate_step(uint64_t s) { (void)s; steps++; }
void mlmem_annotate_phase(int p) { if (p >= 0 && p < 8) phases[p]++; }
void mlmem_annotate_region_begin(int c) { (void)c; regions++; }
void mlmem_annotate_region_end(void) { ends++; }
void mlmem_annotate_tag(const void *p, int c) { (void)p; (void)c; tags++; }
__attribute__((destructor)) static void report(void)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "FAKESHIM steps=%ld data=%ld fwd=%ld bwd=%ld opt=%ld eval=%ld regions=%ld ends=%ld tags=%ld\n",
        steps, phases[1], phases[2], phases[3], phases[4], phases[5], regions, ends, tags);
    write(2, buf, n);
}
