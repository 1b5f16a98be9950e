/* Run the spikeedge step loop (cython_kernels/lif_kernel.h, the code the Cython kernel calls)
 * on case files written by export_cases.py and compare spikes and the final state with the
 * golden NumPy reference, bit for bit. Built natively or cross-compiled (aarch64) and run
 * under QEMU by tools/aarch64_check.sh. Usage: harness CASE... ; exit status 0 when all
 * cases match. Also prints the step loop's time per case (meaningless under emulation).
 * Timing mode (native builds): with REPS=N in the environment the loop first runs N more
 * times from the case's initial state, timed with the thread's CPU clock, and the fastest is
 * printed ("best ... ns/step"); ISA=L (0 plain C, 1 AVX2, 2 AVX-512) caps the hand-written
 * loops' level, as LifKernel.limit_isa does. Build it twice, from two versions of the
 * headers, and alternate the two to compare them on a noisy machine (docs/performance.md). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lif_kernel.h"

typedef struct {
    char name[64];
    char code;
    uint32_t count;
    void *data;
} arr_t;

/* called through a volatile pointer, so se_steps stays one function (for the disassembly and
 * the instruction counts of tools/aarch64_check.sh) */
typedef void (*steps_fn_t)(se_kernel *, const uint8_t *, int, int32_t *, int32_t *, int32_t *,
                           int32_t *, int32_t *, int16_t *, int32_t *, uint8_t *, int32_t *,
                           int32_t *, int, int, int);
static steps_fn_t volatile steps_fn = se_steps;

static arr_t arrs[64];
static int n_arrs;

static int load(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    n_arrs = 0;
    uint32_t len;
    while (fread(&len, 4, 1, f) == 1) {
        arr_t *a = &arrs[n_arrs++];
        if (len >= sizeof a->name || n_arrs > 64 || fread(a->name, 1, len, f) != len)
            return -1;
        a->name[len] = 0;
        if (fread(&a->code, 1, 1, f) != 1 || fread(&a->count, 4, 1, f) != 1)
            return -1;
        size_t sz = a->code == 'h' ? 2 : a->code == 'i' ? 4 : 1;
        a->data = malloc(sz * a->count + 16);
        if (fread(a->data, sz, a->count, f) != a->count)
            return -1;
    }
    fclose(f);
    return 0;
}

static void *get(const char *name, uint32_t *count) {
    for (int i = 0; i < n_arrs; i++)
        if (!strcmp(arrs[i].name, name)) {
            if (count)
                *count = arrs[i].count;
            return arrs[i].data;
        }
    fprintf(stderr, "missing array %s\n", name);
    exit(2);
}

static void *copy_of(const char *name, size_t elem) {
    uint32_t n;
    void *src = get(name, &n);
    void *dst = calloc(n + 1, elem);
    memcpy(dst, src, n * elem);
    return dst;
}

static int compare(const char *what, const void *a, const void *b, size_t bytes) {
    if (!memcmp(a, b, bytes))
        return 0;
    printf("  MISMATCH %s\n", what);
    return 1;
}

static int run_case(const char *path) {
    if (load(path)) {
        printf("%s: unreadable\n", path);
        return 1;
    }
    const int32_t *d = get("dims", NULL);
    int n_in = d[0], N = d[1], K = d[2], npop = d[3], P = d[4], L = d[5], T = d[6];
    int n_pre = d[7], n_post = d[8];
    se_kernel k;
    memset(&k, 0, sizeof k);
    k.alpha_m = get("alpha_m", NULL);
    k.alpha_s = get("alpha_s", NULL);
    k.beta = get("beta", NULL);
    k.bias = get("bias", NULL);
    k.theta = get("theta", NULL);
    k.v_reset = get("v_reset", NULL);
    k.ref_steps = get("ref_steps", NULL);
    k.theta_plus = get("theta_plus", NULL);
    k.alpha_theta = get("alpha_theta", NULL);
    k.pop_start = get("pop_start", NULL);
    k.pop_n = get("pop_n", NULL);
    k.proj = get("proj", NULL);
    k.plast = get("plast", NULL);
    k.csr_ptr = get("csr_ptr", NULL);
    k.csr_idx = get("csr_idx", NULL);
    k.reset_sub = get("reset_sub", NULL);
    k.n_in = n_in, k.N = N, k.K = K, k.G = npop + 1, k.P = P, k.L = L;
    k.decay_exact = se_q24_in_range(k.alpha_s, (int64_t)K * N);
    k.theta_exact = se_q24_in_range(k.alpha_theta, N);
    int max_post = 1;
    for (int p = 0; p < P; p++)
        if (k.proj[p * SE_PJ_NCOL + SE_PJ_N_POST] > max_post)
            max_post = k.proj[p * SE_PJ_NCOL + SE_PJ_N_POST];
    k.acc = calloc((size_t)K * N + 1, sizeof(int64_t));
    k.rowsum = calloc(max_post, sizeof(int32_t));
    k.spk = calloc(n_in + N + 1, sizeof(int32_t));
    k.grp_ptr = calloc(k.G + 1, sizeof(int32_t));
    k.tgt_group = calloc(P + 1, sizeof(int32_t));
    k.vnew = calloc(N + 1, sizeof(int32_t));
    k.thr = calloc(N + 1, sizeof(int32_t));
    k.touched = calloc((size_t)K * k.G + 1, 1);
    for (int p = 0; p < P; p++)
        for (int g = 0; g < npop; g++)
            if (k.pop_start[g] == k.proj[p * SE_PJ_NCOL + SE_PJ_TGT_START])
                k.tgt_group[p] = g + 1;
    int32_t *v = copy_of("v_init", 4), *i_syn = copy_of("i_init", 4);
    int32_t *ref = copy_of("ref_init", 4), *theta_a = calloc(N + 1, 4);
    int32_t *x_pre = calloc(n_pre + 1, 4), *x_post = calloc(n_post + 1, 4);
    int16_t *w = copy_of("weights", 2);
    uint8_t *spikes = calloc((size_t)T * N + 1, 1);
    const uint8_t *inp = get("inp", NULL);
    int adaptive = 0;
    for (int j = 0; j < N; j++)
        adaptive |= k.theta_plus[j] != 0;
    struct timespec t0, t1;
    const char *reps_env = getenv("REPS"), *isa_env = getenv("ISA");
    int reps = reps_env ? atoi(reps_env) : 0;
    double best = -1.0;
    for (int r = 0; r < reps; r++) {
        int32_t *v2 = copy_of("v_init", 4), *i2 = copy_of("i_init", 4);
        int32_t *r2 = copy_of("ref_init", 4), *th2 = calloc(N + 1, 4);
        int32_t *xp2 = calloc(n_pre + 1, 4), *xq2 = calloc(n_post + 1, 4);
        int16_t *w2 = copy_of("weights", 2);
        k.prepared = 0;
        se_prepare(&k);
        if (isa_env && atoi(isa_env) >= 0 && atoi(isa_env) < k.isa)
            k.isa = atoi(isa_env);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        steps_fn(&k, inp, T, v2, i2, r2, xp2, xq2, w2, th2, spikes, NULL, NULL, 0, adaptive, 1);
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        double e = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
        best = best < 0 || e < best ? e : best;
        free(v2), free(i2), free(r2), free(th2), free(xp2), free(xq2), free(w2);
    }
    if (reps > 0)
        printf("%-40s best %.1f ns/step of %d runs (isa %d)\n", path, best / T * 1e9, reps,
               k.isa);
    k.prepared = 0;     /* the checked run below: prepared afresh, every loop level */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    steps_fn(&k, inp, T, v, i_syn, ref, x_pre, x_post, w, theta_a, spikes, NULL, NULL, 0,
             adaptive, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int bad = 0;
    uint32_t nw = 0;
    if (L > 0)
        get("final_w", &nw);
    bad += compare("spikes", spikes, get("spikes", NULL), (size_t)T * N);
    bad += compare("v", v, get("final_v", NULL), (size_t)N * 4);
    bad += compare("i_syn", i_syn, get("final_i_syn", NULL), (size_t)K * N * 4);
    bad += compare("ref", ref, get("final_ref", NULL), (size_t)N * 4);
    bad += compare("theta_a", theta_a, get("final_theta_a", NULL), (size_t)N * 4);
    bad += compare("x_pre", x_pre, get("final_x_pre", NULL), (size_t)n_pre * 4);
    bad += compare("x_post", x_post, get("final_x_post", NULL), (size_t)n_post * 4);
    if (L > 0)
        bad += compare("w", w, get("final_w", NULL), (size_t)nw * 2);
    long spk = 0;
    for (size_t i = 0; i < (size_t)T * N; i++)
        spk += spikes[i];
    double dt = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("%-40s %s  steps %6d  neurons %5d  spikes %7ld  loop %.4f s\n", path,
           bad ? "FAIL" : "ok  ", T, N, spk, dt);
    return bad != 0;
}

int main(int argc, char **argv) {
    int failed = 0;
    for (int i = 1; i < argc; i++)
        failed += run_case(argv[i]);
    printf("%d of %d cases bit-exact\n", argc - 1 - failed, argc - 1);
    return failed != 0;
}
