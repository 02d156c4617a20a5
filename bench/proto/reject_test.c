/*
 * reject_test.c - bench/proto's check that pm_free refuses every invalid free
 * and takes every valid one (build: -DPM_COUNT_REJECTS, see README.md).
 */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
void pm_init(void); void *pm_alloc(size_t); void pm_free(void *, size_t);
extern unsigned long pm_rejected;
void *IOMalloc(size_t n) { (void)n; abort(); } /* requests here stay <= 1024 */

int main(void) {
    pm_init();
    enum { N = 5000 };
    static void *p[N]; static size_t len[N];
    srand(7);
    for (int i = 0; i < N; i++) { len[i] = (size_t)(rand() % 1025); p[i] = pm_alloc(len[i]); }
    unsigned long expect = 0, bad = 0;
    for (int i = 0; i < N; i += 2) pm_free(p[i], len[i]);
    if (pm_rejected != 0) { printf("valid frees rejected: %lu\n", pm_rejected); return 1; }
    for (int i = 0; i < N; i++) {
        uintptr_t a = (uintptr_t)p[i];
        if (i % 2 == 0) { pm_free(p[i], len[i]); expect++; }          /* double free */
        int other = 0; for (int j = 0; j < N; j++) other |= (uintptr_t)p[j] == a + 16 && (j % 2 == 1) && len[j] == len[i];
        if (!other) { pm_free((void *)(a + 16), len[i]); expect++; }          /* interior */
        pm_free(p[i], len[i] + 1); expect++;                            /* wrong length */
        pm_free((void *)(a & ~(uintptr_t)0xFFFF), len[i]); expect++;    /* page start: metadata */
        pm_free((void *)(a + 8), len[i]); expect++;                     /* misaligned */
        pm_free(p[i], 0xFFFF); expect++;                                /* the free mark as a length */
        if (pm_rejected != expect) { printf("slot %d (len %zu): not rejected\n", i, len[i]); bad++; expect = pm_rejected; }
    }
    for (int i = 1; i < N; i += 2) pm_free(p[i], len[i]);
    printf("rejected %lu invalid frees, %lu missed; valid frees after: rejected %lu extra\n", pm_rejected, bad, pm_rejected - expect);
    return bad != 0 || pm_rejected != expect;
}
