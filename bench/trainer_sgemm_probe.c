/*
 * trainer_sgemm_probe: measured single-precision GEMM throughput of this
 * machine through OpenBLAS (the ceiling the trainer's matrix products can
 * reach). Prints the best GFLOP/s over a few square sizes and the GFLOP/s of
 * the trainer's own step shapes.
 *
 * usage: trainer_sgemm_probe [batch width depth]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median-free, best-of: the probe reports what the machine can do. */
static double gflops(int M, int N, int K, int ta, int tb, float *a, float *b, float *c)
{
    double best = 0.0;
    for (int rep = 0; rep < 7; rep++) {
        int iters = 1 + (int)(2e8 / ((double)M * N * K));
        double t0 = now_s();
        for (int i = 0; i < iters; i++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a, ta ? M : K, b,
                        tb ? K : N, 0.0f, c, N);
        double g = 2.0 * M * N * K * iters / (now_s() - t0) / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    int B = argc > 1 ? atoi(argv[1]) : 128, W = argc > 2 ? atoi(argv[2]) : 512;
    int D = argc > 3 ? atoi(argv[3]) : 2;
    size_t big = 2048;
    float *a = malloc(big * big * 4), *b = malloc(big * big * 4), *c = malloc(big * big * 4);
    if (!a || !b || !c)
        return 1;
    for (size_t i = 0; i < big * big; i++)
        a[i] = b[i] = (float)(i % 7) * 0.1f;
    double peak = 0.0;
    const int sizes[] = {512, 1024, 2048};
    for (int i = 0; i < 3; i++) {
        double g = gflops(sizes[i], sizes[i], sizes[i], 0, 0, a, b, c);
        peak = g > peak ? g : peak;
    }
    /* the step's products: forward x W^T, backward dy^T x and dy W */
    double flops = 0.0, secs = 0.0;
    int dims[66];
    dims[0] = 784;
    for (int l = 1; l <= D; l++)
        dims[l] = W;
    dims[D + 1] = 10;
    for (int l = 0; l <= D; l++) {
        int in = dims[l], out = dims[l + 1];
        double f = 2.0 * B * in * out;
        secs += f / gflops(B, out, in, 0, 1, a, b, c);
        secs += f / gflops(out, in, B, 1, 0, a, b, c);
        flops += 2 * f;
        if (l > 0) {
            secs += f / gflops(B, in, out, 0, 0, a, b, c);
            flops += f;
        }
    }
    printf("sgemm_peak_gflops %.2f\n", peak);
    printf("step_shapes_gflops %.2f\n", flops / secs);
    printf("step_flops %.0f\n", flops);
    free(a);
    free(b);
    free(c);
    return 0;
}
