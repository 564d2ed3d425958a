// membw: the machine's memory read bandwidth, for bench-report's "limit"
// column: every thread sums its share of a buffer far larger than the
// caches, several times; the best pass is reported in GB/s.
// usage: membw [threads] [MiB]
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
	const double* p;
	size_t n;
	double sum;
} part;

static void* reader(void* arg) {
	part* w = arg;
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	for (size_t i = 0; i + 4 <= w->n; i += 4) {
		s0 += w->p[i];
		s1 += w->p[i + 1];
		s2 += w->p[i + 2];
		s3 += w->p[i + 3];
	}
	w->sum = s0 + s1 + s2 + s3;
	return NULL;
}

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
	size_t n = mib * 1024 * 1024 / sizeof(double);
	double* buf = malloc(n * sizeof(double));
	if (!buf || threads < 1 || threads > 64) return 1;
	for (size_t i = 0; i < n; i++) buf[i] = (double)(i & 7);
	double best = 0, total = 0;
	for (int pass = 0; pass < 5; pass++) {
		pthread_t tid[64];
		part parts[64];
		double t0 = now();
		for (int k = 0; k < threads; k++) {
			parts[k] = (part){buf + n / threads * k, n / threads, 0};
			pthread_create(&tid[k], NULL, reader, &parts[k]);
		}
		for (int k = 0; k < threads; k++) {
			pthread_join(tid[k], NULL);
			total += parts[k].sum;
		}
		double gbs = n * sizeof(double) / (now() - t0) / 1e9;
		if (gbs > best) best = gbs;
	}
	printf("%.1f\n", best);
	return total < 0; // keep the sums
}
