//go:build !windows

// snapvlm's attention kernel for ONNX Runtime's CPU provider.
//
// ONNX Runtime's GroupQueryAttention on CPU runs two GEMM calls and a
// softmax per query head, through buffers the size of the whole cache; at
// a long context it was most of a decoder step (48 of 79 ms at 876 tokens
// on the 500M size) and most of a prefill. This kernel reads each key and
// value row once per query row, in one pass (a running maximum rescales
// what was summed so far), with no buffer that grows with the context,
// and spreads the query rows over ONNX Runtime's intra-op threads.
//
// It is registered through the C API's custom-op interface. The API is a
// table of function pointers that only ever grows at its end, so the few
// entries used are addressed by index (attention_test.go checks them
// against the header of the Go binding).

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dlfcn.h>

#include "attention.h"
#include "matmulq4.h"
#include "ortop.h"

// ---- the arithmetic ----

typedef float v8f __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
typedef int32_t v8i __attribute__((vector_size(32)));

static inline v8f load8(const float* p) { return *(const v8u*)p; }
static inline void store8(float* p, v8f v) { *(v8u*)p = v; }

// A float16 cache (GroupQueryAttention16) is widened to float32 a chunk of
// rows at a time (widen_rows) into a buffer the query heads of the chunk's
// key/value head then read as they read a float32 cache.
#ifdef SNAPVLM_HALF
typedef _Float16 half;
#else
typedef uint16_t half; // never read: the float16 op is not registered
#endif

// kvload8 reads eight cache values at element i of p; float16 ones when
// hf, widened in registers with F16C (written out in assembly so that the
// functions compiled without it still build; only part_rows_h, compiled
// with it, passes hf).
static inline __attribute__((always_inline)) v8f kvload8(const void* p, int64_t i, const int hf) {
#if defined(SNAPVLM_HALF) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
	if (hf) {
		typedef _Float16 v8h __attribute__((vector_size(16), aligned(2), may_alias));
		v8f r;
		__asm__("vcvtph2ps %1, %0" : "=v"(r) : "m"(*(const v8h*)((const half*)p + i)));
		return r;
	}
#endif
	(void)hf;
	return load8((const float*)p + i);
}

// kvat reads one cache value.
static inline float kvat(const void* p, int64_t i, const int half_) {
#ifdef SNAPVLM_HALF
	if (half_) return (float)((const half*)p)[i];
#endif
	(void)half_;
	return ((const float*)p)[i];
}

// Scores below the row's maximum by more than this are taken as zero: they
// weigh under e^-60 ≈ 1e-26 of the largest, and left in they would be
// subnormal numbers, which this CPU multiplies some 25 times slower.
#define SNAPVLM_CUT (-60.0f)

// exp8 is e^x for x <= 0 (lanes below SNAPVLM_CUT give 0): Cody-Waite
// range reduction and a degree-6 polynomial, about one ulp.
static inline v8f exp8(v8f x) {
	const v8f cut = {SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT, SNAPVLM_CUT};
	v8i keep = x >= cut;
	x = (v8f)((v8i)x & keep); // dropped lanes compute e^0, then are zeroed
	v8f t = x * 1.44269504088896341f - 0.5f;
	v8i n = __builtin_convertvector(t, v8i); // rounds x·log2(e) to nearest for x <= 0
	v8f nf = __builtin_convertvector(n, v8f);
	v8f r = x - nf * 0.693359375f + nf * 2.12194440e-4f;
	v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
	p = p * r + 8.3334519073e-3f;
	p = p * r + 4.1665795894e-2f;
	p = p * r + 1.6666665459e-1f;
	p = p * r + 5.0000001201e-1f;
	p = p * r * r + r + 1.0f;
	v8i pow2 = (n + 127) << 23;
	return (v8f)((v8i)(p * (v8f)pow2) & keep);
}

// SHUF picks lanes i0..i7 of the 16 lanes of a then b (GCC and clang name
// the builtin differently).
#if defined(__clang__)
#define SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
#define SHUF(a, b, i0, i1, i2, i3, i4, i5, i6, i7) __builtin_shuffle(a, b, (v8i){i0, i1, i2, i3, i4, i5, i6, i7})
#endif

// sum8 returns the lane sums of a[0..7] as one vector: three rounds of
// pairwise adds of interleaved lanes instead of eight horizontal sums.
static inline v8f sum8(const v8f a[8]) {
	v8f t0 = SHUF(a[0], a[1], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[0], a[1], 1, 9, 3, 11, 5, 13, 7, 15);
	v8f t1 = SHUF(a[2], a[3], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[2], a[3], 1, 9, 3, 11, 5, 13, 7, 15);
	v8f t2 = SHUF(a[4], a[5], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[4], a[5], 1, 9, 3, 11, 5, 13, 7, 15);
	v8f t3 = SHUF(a[6], a[7], 0, 8, 2, 10, 4, 12, 6, 14) + SHUF(a[6], a[7], 1, 9, 3, 11, 5, 13, 7, 15);
	v8f u0 = SHUF(t0, t1, 0, 1, 8, 9, 4, 5, 12, 13) + SHUF(t0, t1, 2, 3, 10, 11, 6, 7, 14, 15);
	v8f u1 = SHUF(t2, t3, 0, 1, 8, 9, 4, 5, 12, 13) + SHUF(t2, t3, 2, 3, 10, 11, 6, 7, 14, 15);
	return SHUF(u0, u1, 0, 1, 2, 3, 8, 9, 10, 11) + SHUF(u0, u1, 4, 5, 6, 7, 12, 13, 14, 15);
}

#define SNAPVLM_MAXD 256 // head sizes the vector path takes

// SNAPVLM_CHUNK is the floats of key (and of value) rows a task holds at
// once: 16 KiB each, so both stay in a 48 KiB first-level cache.
#define SNAPVLM_CHUNK 4096

// hmax is the largest lane of v.
static inline float hmax(v8f v) {
	v8f w = SHUF(v, v, 4, 5, 6, 7, 0, 1, 2, 3);
	v8i gt = w > v;
	v = (v8f)(((v8i)w & gt) | ((v8i)v & ~gt));
	w = SHUF(v, v, 2, 3, 0, 1, 6, 7, 4, 5);
	gt = w > v;
	v = (v8f)(((v8i)w & gt) | ((v8i)v & ~gt));
	return v[0] > v[1] ? v[0] : v[1];
}

// attend_span carries one query row's attention (one head; q unscaled)
// over n more key/value rows (row stride D = 8×C; float16 values when hf,
// else float; n at most SNAPVLM_CHUNK / 8) in the running state
// st = {max, sum, acc[D]}, in three passes over the span: its scores
// (eight rows at a time), their
// weights against the span's maximum (folded into the state first,
// rescaling what was summed so far), and the weighed values. Per row that
// is two multiply-adds per eight values of the head and little else: the
// maximum, the exponentials and their sum are taken per span, not per
// row. It is inlined with C constant for the common sizes, so that q and
// the sums stay in registers. A row's result depends on where its spans
// start, so every caller splits the rows at the same places (chunks of
// one size from row 0).
static inline __attribute__((always_inline)) void attend_span(const float* q, const void* K, const void* V, int64_t n,
                                                              float scale, float* st, const int64_t C, const int hf) {
	const int64_t D = 8 * C;
	const v8f ninf = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
	v8f qv[SNAPVLM_MAXD / 8];
	for (int64_t c = 0; c < C; c++) qv[c] = load8(q + 8 * c) * scale;
	float sc[SNAPVLM_CHUNK / 8] __attribute__((aligned(32))); // scores, then weights
	v8f top = ninf;
	for (int64_t t0 = 0; t0 < n; t0 += 8) {
		const int64_t cnt = n - t0 < 8 ? n - t0 : 8;
		const int64_t k = t0 * D;
		v8f dot[8];
		for (int j = 0; j < 8; j++) dot[j] = (v8f){0};
		if (cnt == 8) {
			for (int64_t c = 0; c < C; c++)
				for (int j = 0; j < 8; j++) dot[j] += qv[c] * kvload8(K, k + j * D + 8 * c, hf);
		} else {
			for (int j = 0; j < cnt; j++)
				for (int64_t c = 0; c < C; c++) dot[j] += qv[c] * kvload8(K, k + j * D + 8 * c, hf);
		}
		v8f s = sum8(dot);
		if (cnt < 8) {
			const v8i lane = {0, 1, 2, 3, 4, 5, 6, 7};
			v8i in = lane < (int32_t)cnt;
			s = (v8f)(((v8i)s & in) | ((v8i)ninf & ~in));
		}
		store8(sc + t0, s);
		v8i gt = s > top;
		top = (v8f)(((v8i)s & gt) | ((v8i)top & ~gt));
	}
	v8f acc[SNAPVLM_MAXD / 8];
	for (int64_t c = 0; c < C; c++) acc[c] = load8(st + 2 + 8 * c);
	float m = st[0], l = st[1];
	const float bm = hmax(top);
	if (bm > m) {
		if (m != -INFINITY) {
			float f = expf(m - bm);
			l *= f;
			for (int64_t c = 0; c < C; c++) acc[c] *= f;
		}
		m = bm;
	}
	v8f sum = {0};
	for (int64_t t0 = 0; t0 < n; t0 += 8) {
		v8f p = exp8(load8(sc + t0) - m); // lanes past n were -inf: 0
		store8(sc + t0, p);
		sum += p;
	}
	sum += SHUF(sum, sum, 4, 5, 6, 7, 0, 1, 2, 3);
	sum += SHUF(sum, sum, 2, 3, 0, 1, 6, 7, 4, 5);
	l += sum[0] + sum[1];
	for (int64_t t = 0; t < n; t++) {
		const float pt = sc[t];
		for (int64_t c = 0; c < C; c++) acc[c] += pt * kvload8(V, t * D + 8 * c, hf);
	}
	st[0] = m, st[1] = l;
	for (int64_t c = 0; c < C; c++) store8(st + 2 + 8 * c, acc[c]);
}

// attend_row is one query row against the first n rows of one head's key
// and value cache (row stride D, float16 when half_), for head sizes the
// vector path does not take: out = softmax(scale·q·Kᵀ)·V in two plain
// passes.
static void attend_row(const float* q, const void* K, const void* V, float* out, int64_t n, int64_t D, float scale, int half_) {
	float m = -INFINITY;
	for (int64_t t = 0; t < n; t++) {
		float s = 0;
		for (int64_t d = 0; d < D; d++) s += q[d] * kvat(K, t * D + d, half_);
		if (s * scale > m) m = s * scale;
	}
	float l = 0;
	for (int64_t d = 0; d < D; d++) out[d] = 0;
	for (int64_t t = 0; t < n; t++) {
		float s = 0;
		for (int64_t d = 0; d < D; d++) s += q[d] * kvat(K, t * D + d, half_);
		float x = s * scale - m;
		if (x < SNAPVLM_CUT) continue;
		float p = expf(x);
		l += p;
		for (int64_t d = 0; d < D; d++) out[d] += p * kvat(V, t * D + d, half_);
	}
	for (int64_t d = 0; d < D; d++) out[d] /= l;
}

// widen_rows converts n float16 values to float32.
static void widen_rows(float* dst, const half* src, int64_t n) {
	for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

// widen_rows_f16c is widen_rows with F16C, eight values per instruction,
// for the key and the value rows of a chunk together (GCC on x86-64; the
// caller checks the CPU).
#if defined(SNAPVLM_HALF) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SNAPVLM_F16C 1
#pragma GCC push_options
#pragma GCC target("avx,f16c")
#include <immintrin.h>
static void widen_rows_f16c(float* dk, const half* sk, float* dv, const half* sv, int64_t n) {
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		_mm256_storeu_ps(dk + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(sk + i))));
		_mm256_storeu_ps(dv + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(sv + i))));
	}
	for (; i < n; i++) dk[i] = (float)sk[i], dv[i] = (float)sv[i];
}
#pragma GCC pop_options
#endif

// A task is the query heads of one key/value head of one sequence over a
// block of query rows: the heads share each chunk of key/value rows while
// it is in the first-level cache (and, for a float16 cache, widened once).
//
// Past SNAPVLM_PART_CHUNKS chunks, the key/value rows are cut into parts
// (for head sizes the vector path takes), every SNAPVLM_PART_CHUNKS chunks
// from row 0, each attended from a fresh state, and the parts' states are
// merged in order. A decoding step of few sequences then runs its parts as
// tasks of their own: a step has a task per key/value head only (3 or 5
// for SmolVLM), which two threads split 2:1 or 3:2. Where the parts run (one task or several) does not
// change a row's bits; the parts' boundaries do, and they depend only on
// the head size.
#define SNAPVLM_PART_CHUNKS 4

typedef struct {
	const float* q;
	const void *kc, *vc; // float, or float16 when half
	float* out;
	const int64_t* past;
	int64_t S, H, KVH, L, D, block, blocks, es;
	int64_t rows, part, parts; // rows per chunk, rows per part, most parts of a sequence
	float* pst;                // the parts' states, when they run as tasks of their own
	float scale;
	int half, f16c; // a float16 cache; widen it with F16C
	int widen;      // the CPU can widen it as it is read (part_rows_h)
	int failed;     // a task could not allocate its state (set atomically)
} job;

// SNAPVLM_STATE is the floats of running state a task keeps on its stack;
// more (many rows or heads of a big head size) is allocated.
#define SNAPVLM_STATE 8192

// part_rows_c attends query rows s0..s1 of sequence b's query heads of
// key/value head g, for head sizes of C×8, to part p of the key/value rows
// (those rows of it each query row sees), from a fresh state st.
static inline __attribute__((always_inline)) void part_rows_c(const job* j, int64_t b, int64_t g, int64_t s0, int64_t s1,
                                                               int64_t p, float* st, const int64_t C, const int hf) {
	const int64_t D = 8 * C, G = j->H / j->KVH, per = 2 + D;
	const char* K = (const char*)j->kc + (b * j->KVH + g) * j->L * D * j->es;
	const char* V = (const char*)j->vc + (b * j->KVH + g) * j->L * D * j->es;
	for (int64_t i = 0; i < (s1 - s0) * G; i++) {
		st[i * per] = -INFINITY, st[i * per + 1] = 0;
		for (int64_t d = 0; d < D; d++) st[i * per + 2 + d] = 0;
	}
	// Chunks of a multiple of 8 rows from row 0: every query row's spans
	// start at the same rows (see attend_span), whichever task runs it.
	const int64_t rows = j->rows;
	// The widened rows; the value rows 96 bytes off a 4 KiB multiple from
	// the key rows, which the CPU would otherwise mistake for a conflict.
	float wide[2 * SNAPVLM_CHUNK + 24] __attribute__((aligned(32)));
	float *kbuf = wide, *vbuf = wide + SNAPVLM_CHUNK + 24;
	const int64_t nmax = j->past[b] + s1, lo = p * j->part, hi = lo + j->part < nmax ? lo + j->part : nmax;
	for (int64_t c0 = lo; c0 < hi; c0 += rows) {
		const int64_t c1 = c0 + rows < hi ? c0 + rows : hi;
		const void *kr = K + c0 * D * j->es, *vr = V + c0 * D * j->es;
		if (j->half && !hf) {
			const half *kh = (const half*)K + c0 * D, *vh = (const half*)V + c0 * D;
#ifdef SNAPVLM_F16C
			if (j->f16c) {
				widen_rows_f16c(kbuf, kh, vbuf, vh, (c1 - c0) * D);
			} else
#endif
			{
				widen_rows(kbuf, kh, (c1 - c0) * D);
				widen_rows(vbuf, vh, (c1 - c0) * D);
			}
			kr = kbuf, vr = vbuf;
		}
		for (int64_t s = s0; s < s1; s++) {
			const int64_t n = j->past[b] + s + 1; // rows query row s attends to
			if (n <= c0) continue;
			const int64_t span = (n < c1 ? n : c1) - c0;
			for (int64_t hg = 0; hg < G; hg++) {
				const int64_t row = (b * j->S + s) * j->H + g * G + hg;
				attend_span(j->q + row * D, kr, vr, span, j->scale, st + ((s - s0) * G + hg) * per, C, hf);
			}
		}
	}
}

// part_rows_d is part_rows_c with C constant for the common head sizes.
static inline __attribute__((always_inline)) void part_rows_d(const job* j, int64_t b, int64_t g, int64_t s0, int64_t s1,
                                                               int64_t p, float* st, const int hf) {
	switch (j->D) {
	case 64: // every SmolVLM size
		part_rows_c(j, b, g, s0, s1, p, st, 8, hf);
		return;
	case 128:
		part_rows_c(j, b, g, s0, s1, p, st, 16, hf);
		return;
	}
	part_rows_c(j, b, g, s0, s1, p, st, j->D / 8, hf);
}

// SNAPVLM_WIDEN_READS is the most query rows (of a task's block, times
// the query heads per key/value head) for which a float16 chunk is widened
// as it is read rather than once into a buffer: a decoding step's 3 or 4
// save a pass over the chunk; a prefill block's 48 would widen it 48 times.
#define SNAPVLM_WIDEN_READS 8

#ifdef SNAPVLM_F16C
// part_rows_h is part_rows_c on a float16 cache widened as it is read
// (F16C by hand in kvload8), compiled for AVX2; the caller checks the CPU
// (job.widen).
__attribute__((target("avx2,fma,f16c"))) static void part_rows_h(const job* j, int64_t b, int64_t g, int64_t s0, int64_t s1,
                                                                  int64_t p, float* st) {
	part_rows_d(j, b, g, s0, s1, p, st, 1);
}
#endif

// part_rows is part_rows_c for the job's head size. On x86-64 with GCC
// and glibc (ifunc) it is compiled for AVX-512, AVX2 and the baseline,
// picked at load by the CPU.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
static void part_rows(const job* j, int64_t b, int64_t g, int64_t s0, int64_t s1, int64_t p, float* st) {
#ifdef SNAPVLM_F16C
	// A float16 chunk that few query rows read is widened as it is read;
	// one that many read, once into a buffer.
	if (j->half && j->widen && (s1 - s0) * (j->H / j->KVH) <= SNAPVLM_WIDEN_READS) {
		part_rows_h(j, b, g, s0, s1, p, st);
		return;
	}
#endif
	part_rows_d(j, b, g, s0, s1, p, st, 0);
}

// merge_states folds n states x (a later part's) into the states a, each
// per = 2 + D floats: {max, sum, acc[D]}. A state of no rows (max -inf)
// changes nothing; into an empty one it is copied.
static void merge_states(float* a, const float* x, int64_t n, int64_t D) {
	const int64_t per = 2 + D;
	for (int64_t i = 0; i < n; i++, a += per, x += per) {
		if (x[0] == -INFINITY) continue;
		if (a[0] == -INFINITY) {
			memcpy(a, x, (size_t)per * sizeof(float));
			continue;
		}
		const float m = a[0] > x[0] ? a[0] : x[0], fa = expf(a[0] - m), fx = expf(x[0] - m);
		a[0] = m;
		a[1] = a[1] * fa + x[1] * fx;
		for (int64_t d = 0; d < D; d++) a[2 + d] = a[2 + d] * fa + x[2 + d] * fx;
	}
}

// finish_rows writes the output rows of query rows s0..s1 of sequence b's
// heads of key/value head g from their states.
static void finish_rows(const job* j, int64_t b, int64_t g, int64_t s0, int64_t s1, const float* st) {
	const int64_t D = j->D, G = j->H / j->KVH, per = 2 + D;
	for (int64_t s = s0; s < s1; s++)
		for (int64_t hg = 0; hg < G; hg++) {
			const float* x = st + ((s - s0) * G + hg) * per;
			float* o = j->out + ((b * j->S + s) * j->H + g * G + hg) * D;
			const float inv = 1 / x[1];
			for (int64_t d = 0; d < D; d++) o[d] = x[2 + d] * inv;
		}
}

static void run_task(void* arg, size_t i) {
	job* j = arg;
	int64_t blk = (int64_t)i % j->blocks, g = (int64_t)i / j->blocks % j->KVH, b = (int64_t)i / j->blocks / j->KVH;
	const int64_t G = j->H / j->KVH, D = j->D;
	int64_t s0 = blk * j->block, s1 = (blk + 1) * j->block < j->S ? (blk + 1) * j->block : j->S;
	if (D % 8 != 0 || D > SNAPVLM_MAXD) {
		for (int64_t s = s0; s < s1; s++)
			for (int64_t h = g * G; h < (g + 1) * G; h++) {
				const int64_t row = (b * j->S + s) * j->H + h;
				const char* K = (const char*)j->kc + (b * j->KVH + g) * j->L * D * j->es;
				const char* V = (const char*)j->vc + (b * j->KVH + g) * j->L * D * j->es;
				attend_row(j->q + row * D, K, V, j->out + row * D, j->past[b] + s + 1, D, j->scale, j->half);
			}
		return;
	}
	// A state for the rows so far and one for the part being attended.
	float stack[SNAPVLM_STATE];
	const int64_t need = (s1 - s0) * G * (2 + D), parts = (j->past[b] + s1 + j->part - 1) / j->part;
	const int64_t want = parts > 1 ? 2 * need : need;
	float* st = want <= SNAPVLM_STATE ? stack : malloc((size_t)want * sizeof(float));
	if (!st) {
		__atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
		return;
	}
	part_rows(j, b, g, s0, s1, 0, st);
	for (int64_t p = 1; p < parts; p++) {
		part_rows(j, b, g, s0, s1, p, st + need);
		merge_states(st, st + need, (s1 - s0) * G, D);
	}
	finish_rows(j, b, g, s0, s1, st);
	if (st != stack) free(st);
}

// run_part is one part of one key/value head of one sequence of a step
// (S rows, one block) as a task of its own, its state in j->pst.
static void run_part(void* arg, size_t i) {
	job* j = arg;
	const int64_t p = (int64_t)i % j->parts, g = (int64_t)i / j->parts % j->KVH, b = (int64_t)i / j->parts / j->KVH;
	const int64_t per = (j->H / j->KVH) * j->S * (2 + j->D);
	float* st = j->pst + i * per;
	if (p * j->part >= j->past[b] + j->S) {
		for (int64_t k = 0; k < per; k += 2 + j->D) st[k] = -INFINITY; // no rows: merged as nothing
		return;
	}
	part_rows(j, b, g, 0, j->S, p, st);
}

// ---- the ONNX Runtime custom op ----

typedef struct {
	const void* api;
	int64_t heads, kv_heads;
	float scale;
	int half; // the cache (past and present) is float16
} kernel;

// Two operators share the kernel: GroupQueryAttention, all float32, and
// GroupQueryAttention16, whose past and present are float16 (the new rows
// are rounded to float16 as they are appended; the sums are float32). The
// second halves the bytes a long context reads per step, and lets a
// float16-cache export attend in place instead of casting its whole cache
// up and down every step.
static const custom_op attention_op, attention16_op;

static int is_half(const custom_op* op) { return op == &attention16_op; }
static const char* op_name(const custom_op* op) { return is_half(op) ? SNAPVLM_ATTENTION16_OP : "GroupQueryAttention"; }
static const char* op_provider(const custom_op* op) { (void)op; return "CPUExecutionProvider"; }
static int op_input_type(const custom_op* op, size_t i) {
	if (i >= 5) return typeInt32;
	return i >= 3 && is_half(op) ? typeFloat16 : typeFloat;
}
static size_t op_inputs(const custom_op* op) { (void)op; return 7; }
static int op_output_type(const custom_op* op, size_t i) { return i >= 1 && is_half(op) ? typeFloat16 : typeFloat; }
static size_t op_outputs(const custom_op* op) { (void)op; return 3; }
static int op_required(const custom_op* op, size_t i) { (void)op; (void)i; return 1; } // INPUT_OUTPUT_REQUIRED
static int op_mem_default(const custom_op* op, size_t i) { (void)op; (void)i; return 0; }
static int op_one(const custom_op* op) { (void)op; return 1; }

static status op_create(const custom_op* op, const void* api, const void* info, void** out) {
	kernel* k = calloc(1, sizeof(kernel));
	if (!k) return FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm attention: out of memory");
	k->api = api;
	k->half = is_half(op);
	status st = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, "num_heads", &k->heads);
	if (!st) st = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, "kv_num_heads", &k->kv_heads);
	if (st) {
		free(k);
		return st;
	}
	if (k->heads <= 0 || k->kv_heads <= 0 || k->heads % k->kv_heads != 0) {
		free(k);
		return FN(api, iCreateStatus, create_status_fn)(ortInvalidArgument, "snapvlm attention: num_heads must be a positive multiple of kv_num_heads");
	}
	st = FN(api, iKernelInfoGetAttribute_float, attr_float_fn)(info, "scale", &k->scale);
	if (st) {
		FN(api, iReleaseStatus, release_fn)(st);
		k->scale = 0;
	}
	*out = k;
	return NULL;
}

static void op_destroy(void* k) { free(k); }

// shape reads a value's dimensions (at most 4).
static status shape(const void* api, const void* v, int64_t dims[4], size_t* n) {
	void* info;
	status st = FN(api, iGetTensorTypeAndShape, type_shape_fn)(v, &info);
	if (st) return st;
	st = FN(api, iGetDimensionsCount, dims_count_fn)(info, n);
	if (!st && *n > 4) st = FN(api, iCreateStatus, create_status_fn)(ortInvalidArgument, "snapvlm attention: input of more than 4 dimensions");
	if (!st) st = FN(api, iGetDimensions, dims_fn)(info, dims, *n);
	FN(api, iReleaseTensorTypeAndShapeInfo, release_fn)(info);
	return st;
}

// append_row stores one new key or value row of D floats at dst, rounded
// to float16 (to nearest, as ONNX's Cast) when half_.
static void append_row(void* dst, const float* src, int64_t D, int half_) {
#ifdef SNAPVLM_HALF
	if (half_) {
		half* d = dst;
		for (int64_t i = 0; i < D; i++) d[i] = (half)src[i];
		return;
	}
#endif
	(void)half_;
	memcpy(dst, src, (size_t)D * sizeof(float));
}

static status fail(const void* api, const char* msg) { return FN(api, iCreateStatus, create_status_fn)(ortInvalidArgument, msg); }

static status op_compute(void* kp, void* ctx) {
	const kernel* k = kp;
	const void* api = k->api;
	const void* in[7];
	int64_t dims[7][4];
	size_t nd[7];
	for (size_t i = 0; i < 7; i++) {
		status st = FN(api, iKernelContext_GetInput, get_input_fn)(ctx, i, &in[i]);
		if (st) return st;
		if (!in[i]) return fail(api, "snapvlm attention: an input is missing");
		if ((st = shape(api, in[i], dims[i], &nd[i]))) return st;
	}
	if (nd[0] != 3 || nd[1] != 3 || nd[2] != 3 || nd[3] != 4 || nd[4] != 4)
		return fail(api, "snapvlm attention: want query/key/value [batch, seq, hidden] and past [batch, kv_heads, len, head]");
	const int64_t B = dims[0][0], S = dims[0][1], H = k->heads, KVH = k->kv_heads;
	const int64_t D = dims[3][3], Lp = dims[3][2];
	if (dims[0][2] != H * D || dims[1][2] != KVH * D || dims[2][2] != KVH * D || dims[1][0] != B || dims[1][1] != S ||
	    dims[2][0] != B || dims[2][1] != S || dims[3][0] != B || dims[3][1] != KVH || dims[4][0] != B ||
	    dims[4][1] != KVH || dims[4][2] != Lp || dims[4][3] != D)
		return fail(api, "snapvlm attention: query, key, value and past shapes disagree with the heads");
	int64_t nseq = 1;
	for (size_t i = 0; i < nd[5]; i++) nseq *= dims[5][i];
	if (nseq != B) return fail(api, "snapvlm attention: seqlens_k must hold one length per sequence");
	int64_t ntotal = 1;
	for (size_t i = 0; i < nd[6]; i++) ntotal *= dims[6][i];
	if (ntotal != 1) return fail(api, "snapvlm attention: total_sequence_length must hold one value");
	void* data[7];
	status st;
	for (size_t i = 0; i < 7; i++)
		if ((st = FN(api, iGetTensorMutableData, mutable_data_fn)((void*)in[i], &data[i]))) return st;
	const float *q = data[0], *kf = data[1], *vf = data[2];
	const char *pkf = data[3], *pvf = data[4];
	const size_t es = k->half ? sizeof(half) : sizeof(float); // bytes per cache value
	const int32_t* lens = data[5];
	const int32_t total = *(const int32_t*)data[6];
	// As GroupQueryAttention: the present holds max(total, past length)
	// rows; one buffer for past and present when the caller binds both to
	// it (then nothing is copied).
	const int64_t L = total > Lp ? total : Lp;
	int64_t pdims[4] = {B, KVH, L, D}, odims[3] = {B, S, H * D};
	void *out, *presk, *presv, *o, *ok, *ov;
	if ((st = FN(api, iKernelContext_GetOutput, get_output_fn)(ctx, 0, odims, 3, &out)) ||
	    (st = FN(api, iKernelContext_GetOutput, get_output_fn)(ctx, 1, pdims, 4, &presk)) ||
	    (st = FN(api, iKernelContext_GetOutput, get_output_fn)(ctx, 2, pdims, 4, &presv)))
		return st;
	if ((st = FN(api, iGetTensorMutableData, mutable_data_fn)(out, &o)) ||
	    (st = FN(api, iGetTensorMutableData, mutable_data_fn)(presk, &ok)) ||
	    (st = FN(api, iGetTensorMutableData, mutable_data_fn)(presv, &ov)))
		return st;
	// Past lengths per sequence; a first prompt (S == total) has none.
	int64_t pastbuf[64];
	int64_t* past = B <= 64 ? pastbuf : malloc((size_t)B * sizeof(int64_t));
	if (!past) return FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm attention: out of memory");
	for (int64_t b = 0; b < B; b++) {
		int64_t t = (int64_t)lens[b] + 1;
		past[b] = (S == total) ? 0 : t - S;
		if (t < 1 || past[b] < 0 || past[b] + S > L || t > total) {
			if (past != pastbuf) free(past);
			return fail(api, "snapvlm attention: seqlens_k out of range for the sequence and cache lengths");
		}
	}
	// Append the new rows (after copying the past when it is a separate buffer).
	char *kc = ok, *vc = ov;
	for (int64_t b = 0; b < B; b++) {
		for (int64_t h = 0; h < KVH; h++) {
			char* kd = kc + (b * KVH + h) * L * D * es;
			char* vd = vc + (b * KVH + h) * L * D * es;
			if (kc != pkf && past[b] > 0) memcpy(kd, pkf + (b * KVH + h) * Lp * D * es, (size_t)(past[b] * D) * es);
			if (vc != pvf && past[b] > 0) memcpy(vd, pvf + (b * KVH + h) * Lp * D * es, (size_t)(past[b] * D) * es);
			for (int64_t s = 0; s < S; s++) {
				const float* kn = kf + ((b * S + s) * KVH + h) * D;
				const float* vn = vf + ((b * S + s) * KVH + h) * D;
				append_row(kd + (past[b] + s) * D * es, kn, D, k->half);
				append_row(vd + (past[b] + s) * D * es, vn, D, k->half);
			}
		}
	}
	float scale = k->scale != 0 ? k->scale : 1.0f / sqrtf((float)D);
	// Decoding steps are one task per key/value head; prefills, blocks of
	// 16 rows, fewer when the heads are many and big, so that the running
	// state stays within SNAPVLM_STATE (on the stack).
	int64_t block = S < 16 ? S : 16;
	while (block > 1 && 2 * block * (H / KVH) * (2 + D) > SNAPVLM_STATE) block /= 2;
	job j = {.q = q, .kc = kc, .vc = vc, .out = o, .past = past, .S = S, .H = H, .KVH = KVH, .L = L, .D = D,
	         .block = block, .blocks = (S + block - 1) / block, .es = (int64_t)es, .scale = scale, .half = k->half};
	j.rows = SNAPVLM_CHUNK / D / 8 * 8;
	if (j.rows < 8) j.rows = 8;
	j.part = j.rows * SNAPVLM_PART_CHUNKS;
	int64_t most = 0;
	for (int64_t b = 0; b < B; b++) most = past[b] + S > most ? past[b] + S : most;
	j.parts = (most + j.part - 1) / j.part;
#ifdef SNAPVLM_F16C
	j.f16c = k->half && __builtin_cpu_supports("f16c");
	j.widen = j.f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
	// A step of fewer tasks than a few per thread runs its parts as tasks.
	const int64_t G = H / KVH, per = G * S * (2 + D);
	if (j.blocks == 1 && j.parts > 1 && B * KVH < 8 && D % 8 == 0 && D <= SNAPVLM_MAXD) {
		j.pst = malloc((size_t)(B * KVH * j.parts * per) * sizeof(float));
		if (!j.pst) {
			if (past != pastbuf) free(past);
			return FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm attention: out of memory");
		}
		st = FN(api, iKernelContext_ParallelFor, parallel_for_fn)(ctx, run_part, (size_t)(B * KVH * j.parts), 0, &j);
		for (int64_t i = 0; !st && i < B * KVH; i++) {
			float* a = j.pst + i * j.parts * per;
			for (int64_t p = 1; p < j.parts; p++) merge_states(a, a + p * per, G * S, D);
			finish_rows(&j, i / KVH, i % KVH, 0, S, a);
		}
		free(j.pst);
	} else {
		st = FN(api, iKernelContext_ParallelFor, parallel_for_fn)(ctx, run_task, (size_t)(B * KVH * j.blocks), 0, &j);
	}
	if (!st && __atomic_load_n(&j.failed, __ATOMIC_RELAXED))
		st = FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm attention: out of memory");
	if (past != pastbuf) free(past);
	return st;
}

SNAPVLM_OP_V1(op)

// Both operators have the same table: op_name, op_input_type and
// op_output_type tell them apart by address, op_create sets the kernel's
// half from it.
#define SNAPVLM_ATTENTION_OP                              \
	{                                                     \
		.version = 16,                                    \
		.CreateKernel = op_create_v1,                     \
		.GetName = op_name,                               \
		.GetExecutionProviderType = op_provider,          \
		.GetInputType = op_input_type,                    \
		.GetInputTypeCount = op_inputs,                   \
		.GetOutputType = op_output_type,                  \
		.GetOutputTypeCount = op_outputs,                 \
		.KernelCompute = op_compute_v1,                   \
		.KernelDestroy = op_destroy,                      \
		.GetInputCharacteristic = op_required,            \
		.GetOutputCharacteristic = op_required,           \
		.GetInputMemoryType = op_mem_default,             \
		.GetVariadicInputMinArity = op_one,               \
		.GetVariadicInputHomogeneity = op_one,            \
		.GetVariadicOutputMinArity = op_one,              \
		.GetVariadicOutputHomogeneity = op_one,           \
		.CreateKernelV2 = op_create,                      \
		.KernelComputeV2 = op_compute,                    \
	}
static const custom_op attention_op = SNAPVLM_ATTENTION_OP;
static const custom_op attention16_op = SNAPVLM_ATTENTION_OP;

int snapvlm_attention_half(void) {
#ifdef SNAPVLM_HALF
	return 1;
#else
	return 0;
#endif
}

static const void* the_api;

static void copy_status(const void* api, status st, char* err, size_t errlen) {
	snprintf(err, errlen, "%s", FN(api, iGetErrorMessage, error_message_fn)(st));
	FN(api, iReleaseStatus, release_fn)(st);
}

void* snapvlm_attention_domain(const char* path, char* err, size_t errlen) {
	void* h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
	if (!h) {
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	void* fn = dlsym(h, "OrtGetApiBase");
	if (!fn) {
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	const api_base* base = ((const api_base* (*)(void))fn)();
	const void* api = base ? base->GetApi(SNAPVLM_ORT_API) : NULL;
	if (!api) {
		snprintf(err, errlen, "the library has no C API version %d", SNAPVLM_ORT_API);
		return NULL;
	}
	the_api = api;
	void* d = NULL;
	status st = FN(api, iCreateCustomOpDomain, create_domain_fn)(SNAPVLM_ATTENTION_DOMAIN, &d);
	if (!st) st = FN(api, iCustomOpDomain_Add, domain_add_fn)(d, &attention_op);
	if (!st) st = FN(api, iCustomOpDomain_Add, domain_add_fn)(d, &snapvlm_matmul_q4_op);
#ifdef SNAPVLM_HALF
	if (!st) st = FN(api, iCustomOpDomain_Add, domain_add_fn)(d, &attention16_op);
#endif
	if (st) {
		copy_status(api, st, err, errlen);
		return NULL;
	}
	return d;
}

int snapvlm_attention_add(void* options, void* domain, char* err, size_t errlen) {
	status st = FN(the_api, iAddCustomOpDomain, add_domain_fn)(options, domain);
	if (st) {
		copy_status(the_api, st, err, errlen);
		return -1;
	}
	return 0;
}
