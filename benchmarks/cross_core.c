/* Round-trip time of one cache line between two threads pinned to two CPUs: how fast the cores of this machine
 * exchange data at this moment (benchmarks/cross_core.py builds and runs it).
 *
 *   cross_core CPU_A CPU_B [ROUND_TRIPS]   prints the mean nanoseconds per round trip
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int turn __attribute__((aligned(64)));
static long round_trips = 20000;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answer(void *cpu) {
    if (pin(*(int *)cpu) != 0) exit(3);
    for (long i = 0; i < round_trips; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 1) {}
        atomic_store_explicit(&turn, 0, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CPU_A CPU_B [ROUND_TRIPS]\n", argv[0]);
        return 2;
    }
    int a = atoi(argv[1]), b = atoi(argv[2]);
    if (argc > 3) round_trips = atol(argv[3]);
    if (round_trips < 1 || pin(a) != 0) {
        fprintf(stderr, "cannot run on CPU %d (or bad ROUND_TRIPS)\n", a);
        return 2;
    }
    pthread_t other;
    if (pthread_create(&other, NULL, answer, &b) != 0) return 3;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < round_trips; i++) {
        atomic_store_explicit(&turn, 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 0) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(other, NULL);
    printf("%.1f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / round_trips);
    return 0;
}
