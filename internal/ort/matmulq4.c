//go:build !windows

// snapvlm's 4-bit matmul for ONNX Runtime's CPU provider.
//
// The q4 exports' matmuls are com.microsoft MatMulNBits (4-bit weights in
// blocks of 32 along K, a float scale per block, zero point 8). With
// accuracy_level 4 ONNX Runtime quantizes the activations to int8 and
// decodes fast, but for more than one row (a prefill, a batch of answers)
// its kernel ran at about a tenth of its own 8-bit matmul's rate on this
// machine (115-140 against 1,040-1,160 GOP/s). This kernel quantizes the
// activations the same way, to int8 with a scale per row and block of 32
// (as llama.cpp's Q8_0 does too), and reads the weights repacked at load
// (onnx.PackQ4): per group of 16 columns, block and 8 values of k, 64
// bytes whose low nibbles are one vector of 16 columns by 4 values of k and
// high nibbles the next 4, so that a mask and a shift unpack them. Up to
// 16 rows (decoding steps, batches, short prompts) multiply those vectors
// with AVX-512 VNNI (Cascade Lake and later), each column's sum in its own
// lane; more rows run on AMX tiles, the
// same vectors making the tile's second operand, unpacked once per task
// and reused by every tile of 16 rows. Where the tiles are not available (a
// CPU without AMX, or a process the OS refused them), all rows take the
// vector path.
//
// What it computes, for row r, column c and block b (k in 32b..32b+31), in
// exactly this order:
//   sa[r,b] = max_k |A[r,k]| / 127,  q[r,k] = round-to-even(A[r,k] · (127 / max_k |A[r,k]|))
//   D[b]    = Σ_k (nibble[c,k] - 8) · q[r,k]                      (exact, int32)
//   Y[r,c]  = 0; for b = 0, 1, ...: Y[r,c] = fma((float)D[b], scale[c,b] · sa[r,b], Y[r,c])
// The tile, vector and portable paths give the same bits, and an output
// depends on its row alone, so batched rows answer as they would alone.

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "matmulq4.h"
#include "ortop.h"

// Rows per tile, and rows per task (tiles sharing one unpacking of the
// task's 16 columns); at most ROWS_VNNI rows take the vector path. The
// tiles go out to float32 at every block of 32 values of k (its scales),
// which costs them most of their speed at few rows: in a 256M decoder a
// prefill of 9 tokens took 7.7 ms on the tiles against 6.0 on the vectors,
// 16 tokens 9.3 against 8.5, while 32 took 13.5 against 14.0 and 64 21.8
// against 23.1.
#define TILE_ROWS 16
#define TASK_ROWS 256
#define ROWS_VNNI 16

// SPLITS is the most outputs a node writes: the columns of a fused
// query/key/value (or gate/up) matmul go straight to the outputs a Split
// would have cut them into, every one but the last a multiple of 16 wide.
#define SPLITS 3

// PREFETCH is how many blocks ahead the vector path asks for the weights
// it reads next. A task's weights are one short stream (256 bytes a
// block: 4.5 KiB for K = 576), which the CPU's own prefetcher takes up too
// late; a step then waited on memory even at 4 rows, whose multiply-adds
// should hide it. Asking 8 blocks (2 KiB) ahead took a 4-row step of the
// 256M size from 6.1-7.9 to 4.9-5.5 ms, and a 1-row step of the 500M size
// from 13.1-14.6 to 9.8-10.4 ms (go test -bench BatchStep, alternated,
// slow phase); 4 and 16 blocks gained less, 12 no more.
#define PREFETCH 8

typedef struct {
	const uint8_t* b; // [groups][nblk][4][16 columns][4] packed weights
	const float* s;   // [groups][nblk][16 columns] block scales
	const float* a;   // [M, K]
	float* y[SPLITS]; // the outputs: [M, ny[o]] each, columns g0[o]*16 on
	int64_t ny[SPLITS], g0[SPLITS];
	int nout;
	int8_t* q;        // [tiles × 16 rows][nblk × 32] quantized activations, zero past M and K
	int32_t* qoff;    // [M][nblk] -8 times each block's sum of q
	float* sa;        // [M][nblk] activation scales
	int64_t M, K, N, nblk, kp, tiles, groups;
	int amx, vnni; // the path: tiles, vectors, else portable
} q4job;

// out_at returns where row r's columns of group g go (its output's row,
// at the group's first column), in *cols how many of the 16 are live and
// in *ld the output's row stride.
static inline float* out_at(const q4job* j, int64_t r, int64_t g, int* cols, int64_t* ld) {
	int o = j->nout - 1;
	while (o > 0 && g < j->g0[o]) o--;
	const int64_t c = (g - j->g0[o]) * 16;
	*cols = j->ny[o] - c < 16 ? (int)(j->ny[o] - c) : 16;
	*ld = j->ny[o];
	return j->y[o] + r * j->ny[o] + c;
}

// quantize_row writes row r's quantized activations (zero past K), block
// sums and scales without vector instructions. A NaN quantizes to 0 (as
// the vector path does, and as x86's conversion of NaN left it before).
static void quantize_row(const q4job* j, int64_t r) {
	const float* a = j->a + r * j->K;
	int8_t* q = j->q + r * j->kp;
	memset(q + j->K, 0, (size_t)(j->kp - j->K));
	for (int64_t b = 0; b < j->nblk; b++) {
		const int64_t k0 = b * 32, k1 = k0 + 32 < j->K ? k0 + 32 : j->K;
		float amax = 0;
		for (int64_t k = k0; k < k1; k++) {
			float v = fabsf(a[k]);
			amax = v > amax ? v : amax;
		}
		const float inv = amax > 0 ? 127.0f / amax : 0;
		j->sa[r * j->nblk + b] = amax / 127.0f;
		int32_t sum = 0;
		for (int64_t k = k0; k < k1; k++) {
			float v = rintf(a[k] * inv);
			v = v != v ? 0 : v > 127 ? 127 : v < -127 ? -127 : v;
			q[k] = (int8_t)v;
			sum += q[k];
		}
		j->qoff[r * j->nblk + b] = -8 * sum;
	}
}

static void quantize_row_vnni(const q4job* j, int64_t r);

// quantize_tile quantizes the rows of one tile of 16 rows.
static void quantize_tile(void* arg, size_t t) {
	const q4job* j = arg;
	for (int64_t r = (int64_t)t * TILE_ROWS; r < ((int64_t)t + 1) * TILE_ROWS && r < j->M; r++) {
		if (j->vnni)
			quantize_row_vnni(j, r);
		else
			quantize_row(j, r);
	}
}

// out_portable is one output without vector instructions.
static float out_portable(const q4job* j, int64_t r, int64_t c) {
	const int64_t g = c / 16, n = c % 16;
	const int8_t* q = j->q + r * j->kp;
	float acc = 0;
	for (int64_t b = 0; b < j->nblk; b++) {
		int32_t d = 0;
		for (int64_t k = 0; k < 32; k++) {
			const uint8_t by = j->b[((g * j->nblk + b) * 4 + k / 8) * 64 + n * 4 + k % 4];
			d += ((k % 8 < 4 ? by & 15 : by >> 4) - 8) * q[b * 32 + k];
		}
		acc = fmaf((float)d, j->s[(g * j->nblk + b) * 16 + n] * j->sa[r * j->nblk + b], acc);
	}
	return acc;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define AMX __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni")))

// unpack returns the 64 bytes at p as two vectors of 16 columns by 4
// values of k, one byte each (0..15): the low nibbles and the high.
static inline __attribute__((always_inline)) VNNI void unpack(const uint8_t* p, __m512i* lo, __m512i* hi) {
	const __m512i x = _mm512_loadu_si512(p), m = _mm512_set1_epi8(0x0F);
	*lo = _mm512_and_si512(x, m);
	*hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m);
}

// quantize_row_vnni is quantize_row on 16 values at a time: the same
// maximum, products and rounding (to nearest even), so the same bits.
static VNNI void quantize_row_vnni(const q4job* j, int64_t r) {
	const float* a = j->a + r * j->K;
	int8_t* q = j->q + r * j->kp;
	const __m512 hi = _mm512_set1_ps(127), lo = _mm512_set1_ps(-127);
	for (int64_t b = 0; b < j->nblk; b++) {
		const int64_t k0 = b * 32, n = j->K - k0 < 32 ? j->K - k0 : 32;
		const __mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
		const __mmask16 m1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
		const __m512 x0 = _mm512_maskz_loadu_ps(m0, a + k0), x1 = _mm512_maskz_loadu_ps(m1, a + k0 + 16);
		// max(|x|, m) keeps m where |x| is NaN, as the scalar v > amax does.
		const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x1), _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps())));
		const float inv = amax > 0 ? 127.0f / amax : 0;
		j->sa[r * j->nblk + b] = amax / 127.0f;
		const __m512 s = _mm512_set1_ps(inv);
		__m512i sum = _mm512_setzero_si512();
		for (int h = 0; h < 2; h++) {
			__m512 v = _mm512_roundscale_ps(_mm512_mul_ps(h ? x1 : x0, s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
			const __mmask16 ok = _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q);
			v = _mm512_maskz_mov_ps(ok, _mm512_min_ps(_mm512_max_ps(v, lo), hi));
			const __m512i vi = _mm512_cvtps_epi32(v);
			sum = _mm512_add_epi32(sum, vi);
			_mm_storeu_si128((__m128i*)(q + k0 + h * 16), _mm512_cvtepi32_epi8(vi));
		}
		j->qoff[r * j->nblk + b] = -8 * _mm512_reduce_add_epi32(sum);
	}
}

// rows_vnni computes the group of 16 columns g for R rows from r0 (R
// constant where it is inlined), each column's block sum in its own lane.
static inline __attribute__((always_inline)) VNNI void rows_vnni(const q4job* j, int64_t r0, int64_t g, const int R) {
	const int64_t nblk = j->nblk;
	__m512 acc[4];
	for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
	const uint8_t* wb = j->b + g * nblk * 256;
	// Few rows make short dependency chains of sums: split each row's over
	// CH accumulators (integer sums: the same D).
	const int CH = R == 1 ? 4 : R == 2 ? 2 : 1;
	for (int64_t b = 0; b < nblk; b++) {
		__m512i d[4][4];
		// The nibbles count from 0 and the weights are nibble - 8: the sums
		// start from -8 times the block's sum of q.
		for (int i = 0; i < R; i++) {
			d[i][0] = _mm512_set1_epi32(j->qoff[(r0 + i) * nblk + b]);
			for (int c = 1; c < CH; c++) d[i][c] = _mm512_setzero_si512();
		}
		// The weights and scales PREFETCH blocks ahead (past the group's
		// end, the next group's: a prefetch does not fault).
		for (int l = 0; l < 4; l++) _mm_prefetch((const char*)(wb + (b + PREFETCH) * 256 + 64 * l), _MM_HINT_T0);
		_mm_prefetch((const char*)(j->s + (g * nblk + b + PREFETCH) * 16), _MM_HINT_T0);
		for (int kk = 0; kk < 8; kk += 2) {
			__m512i w[2];
			unpack(wb + (b * 4 + kk / 2) * 64, &w[0], &w[1]);
			for (int h = 0; h < 2; h++)
				for (int i = 0; i < R; i++) {
					int32_t q4;
					memcpy(&q4, j->q + (r0 + i) * j->kp + b * 32 + (kk + h) * 4, 4);
					d[i][(kk + h) % CH] = _mm512_dpbusd_epi32(d[i][(kk + h) % CH], w[h], _mm512_set1_epi32(q4));
				}
		}
		const __m512 s = _mm512_loadu_ps(j->s + (g * nblk + b) * 16);
		for (int i = 0; i < R; i++) {
			const int64_t r = r0 + i;
			for (int c = 1; c < CH; c++) d[i][0] = _mm512_add_epi32(d[i][0], d[i][c]);
			acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[i][0]), _mm512_mul_ps(s, _mm512_set1_ps(j->sa[r * nblk + b])), acc[i]);
		}
	}
	int cols;
	int64_t ld;
	float* y = out_at(j, r0, g, &cols, &ld);
	const __mmask16 live = (__mmask16)((1u << cols) - 1);
	for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(y + i * ld, live, acc[i]);
}

static VNNI void gemm_vnni(const q4job* j, int64_t r0, int64_t r1, int64_t g) {
	for (int64_t r = r0; r < r1; r += 4) {
		switch (r1 - r < 4 ? r1 - r : 4) {
		case 1: rows_vnni(j, r, g, 1); break;
		case 2: rows_vnni(j, r, g, 2); break;
		case 3: rows_vnni(j, r, g, 3); break;
		default: rows_vnni(j, r, g, 4); break;
		}
	}
}

// The tile configuration: tiles 0 and 1 hold 16×16 int32 sums, 2 and 3 the
// activations of 16 rows by one block (16 rows of 32 bytes), 4 and 5 the
// weights of one block by 16 columns (8 rows of 16×4 bytes).
typedef struct {
	uint8_t palette, start;
	uint8_t reserved[14];
	uint16_t colsb[16];
	uint8_t rows[16];
} tilecfg;

static const tilecfg amx_cfg = {
	.palette = 1,
	.colsb = {64, 64, 32, 32, 64, 64},
	.rows = {16, 16, 16, 16, 8, 8},
};

// Sums of block b into tile T from activation tile A and weight tile W.
// The tile instructions take their register numbers as constants, hence
// macros.
#define BLOCK(T, A, W, b)                              \
	do {                                               \
		_tile_zero(T);                                 \
		_tile_loadd(A, q + (b) * 32, j->kp);           \
		_tile_loadd(W, w + (b) * 512, 64);             \
		_tile_dpbssd(T, A, W);                         \
	} while (0)

// Scales the R live rows of tile T (one per row of the tile, a lane per
// column) into acc.
#define SCALE(T, b, R)                                                                                 \
	do {                                                                                               \
		_tile_stored(T, sums, 64);                                                                     \
		const __m512 s = _mm512_loadu_ps(j->s + (g * nblk + (b)) * 16);                                \
		for (int i = 0; i < (R); i++)                                                                  \
			acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums + i * 16)),             \
			                         _mm512_mul_ps(s, _mm512_set1_ps(sa[i * nblk + (b)])), acc[i]);     \
	} while (0)

// tile_rows_r computes the group of 16 columns g (weights unpacked in w)
// for the R live rows of the tile of rows t (R constant for a full tile;
// rows past M are loaded as zeros and not scaled).
static inline __attribute__((always_inline)) AMX void tile_rows_r(const q4job* j, int64_t t, int64_t g, const int8_t* w, const int R) {
	const int64_t nblk = j->nblk, r0 = t * TILE_ROWS;
	const int8_t* q = j->q + r0 * j->kp;
	const float* sa = j->sa + r0 * nblk;
	int32_t sums[256] __attribute__((aligned(64)));
	__m512 acc[TILE_ROWS];
	for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
	int64_t b = 0;
	for (; b + 1 < nblk; b += 2) {
		BLOCK(0, 2, 4, b);
		BLOCK(1, 3, 5, b + 1);
		SCALE(0, b, R);
		SCALE(1, b + 1, R);
	}
	if (b < nblk) {
		BLOCK(0, 2, 4, b);
		SCALE(0, b, R);
	}
	int cols;
	int64_t ld;
	float* y = out_at(j, r0, g, &cols, &ld);
	const __mmask16 live = (__mmask16)((1u << cols) - 1);
	for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(y + i * ld, live, acc[i]);
}

// tile_rows is tile_rows_r for the tile of rows t.
static AMX void tile_rows(const q4job* j, int64_t t, int64_t g, const int8_t* w) {
	const int64_t rows = j->M - t * TILE_ROWS;
	if (rows >= TILE_ROWS)
		tile_rows_r(j, t, g, w, TILE_ROWS);
	else
		tile_rows_r(j, t, g, w, (int)rows);
}

// gemm_amx computes the group of 16 columns g for the tiles of rows t0..t1.
static AMX int gemm_amx(const q4job* j, int64_t t0, int64_t t1, int64_t g) {
	// Up to K = 4096 on the stack: no allocation per task.
	int8_t wbuf[128 * 512] __attribute__((aligned(64)));
	int8_t* w = j->nblk <= 128 ? wbuf : aligned_alloc(64, (size_t)(j->nblk * 512));
	if (!w) return -1;
	// The tile's weight operand: per block, 8 rows of the 16 columns' 4
	// values of k, as int8 (nibble - 8).
	const __m512i eight = _mm512_set1_epi8(8);
	for (int64_t i = 0; i < j->nblk * 4; i++) {
		__m512i lo, hi;
		unpack(j->b + g * j->nblk * 256 + i * 64, &lo, &hi);
		_mm512_store_si512(w + i * 128, _mm512_sub_epi8(lo, eight));
		_mm512_store_si512(w + i * 128 + 64, _mm512_sub_epi8(hi, eight));
	}
	_tile_loadconfig(&amx_cfg);
	for (int64_t t = t0; t < t1; t++) tile_rows(j, t, g, w);
	_tile_release();
	if (w != wbuf) free(w);
	return 0;
}

// vnni_probe reports whether the CPU has AVX-512 F, BW, VL and VNNI
// and the OS saves the AVX-512 state.
static int vnni_probe(void) {
	unsigned a, b, c, d;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
	const int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
	if (!(f && bw && vl && vnni)) return 0;
	if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; // OSXSAVE
	unsigned lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 0xE6) == 0xE6;
}

// amx_probe reports whether the CPU has AMX-INT8 besides, and the OS lets
// this process use the tiles (Linux asks a process to request the tile
// state first; the request fails where a thread's signal stack is too
// small for it).
static int amx_probe(void) {
	unsigned a, b, c, d;
	if (!vnni_probe() || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
	if (!((d >> 24) & 1) || !((d >> 25) & 1)) return 0; // AMX-TILE, AMX-INT8
	unsigned lo, hi;
#ifdef SYS_arch_prctl
	// ARCH_REQ_XCOMP_PERM for XTILEDATA (feature 18); the OS then saves
	// the tile state (XCR0 bits 17 and 18).
	if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((lo >> 17) & 3) == 3;
#else
	return 0;
#endif
}

// cpu_paths probes once: bit 0 the vector path, bit 1 the tiles. The
// answer never changes, so a race writes the same value twice.
static int cpu_paths(void) {
	static int known = -1;
	int v = __atomic_load_n(&known, __ATOMIC_ACQUIRE);
	if (v < 0) {
		v = vnni_probe() | amx_probe() << 1;
		__atomic_store_n(&known, v, __ATOMIC_RELEASE);
	}
	return v;
}

static int has_vnni(void) { return cpu_paths() & 1; }
static int has_amx(void) { return cpu_paths() >> 1 & 1; }
#else
static void quantize_row_vnni(const q4job* j, int64_t r) { quantize_row(j, r); }
static int has_vnni(void) { return 0; }
static int has_amx(void) { return 0; }
static void gemm_vnni(const q4job* j, int64_t r0, int64_t r1, int64_t g) { (void)j, (void)r0, (void)r1, (void)g; }
static int gemm_amx(const q4job* j, int64_t t0, int64_t t1, int64_t g) {
	(void)j, (void)t0, (void)t1, (void)g;
	return -1;
}
#endif

int snapvlm_matmul_q4_vector(void) { return has_vnni(); }

int snapvlm_matmul_q4_tiles(void) { return has_amx(); }

// gemm_task is one group of 16 columns by up to TASK_ROWS rows.
static void gemm_task(void* arg, size_t i) {
	const q4job* j = arg;
	const int64_t per = TASK_ROWS / TILE_ROWS;
	const int64_t rb = (int64_t)i / j->groups, g = (int64_t)i % j->groups;
	const int64_t t0 = rb * per, t1 = t0 + per < j->tiles ? t0 + per : j->tiles;
	const int64_t r0 = t0 * TILE_ROWS, r1 = t1 * TILE_ROWS < j->M ? t1 * TILE_ROWS : j->M;
	if (j->amx && gemm_amx(j, t0, t1, g) == 0) return;
	if (j->vnni) {
		gemm_vnni(j, r0, r1, g);
		return;
	}
	for (int64_t r = r0; r < r1; r++) {
		int cols;
		int64_t ld;
		float* y = out_at(j, r, g, &cols, &ld);
		for (int c = 0; c < cols; c++) y[c] = out_portable(j, r, g * 16 + c);
	}
}

// ---- the ONNX Runtime custom op ----

typedef struct {
	const void* api;
	int64_t K, N;
	int64_t ny[SPLITS]; // the outputs' widths (attributes N1, N2 split N)
	int nout;
	int vnni, amx;
} q4kernel;

static const char* q4_name(const custom_op* op) { (void)op; return SNAPVLM_MATMUL_Q4_OP; }
static const char* q4_provider(const custom_op* op) { (void)op; return "CPUExecutionProvider"; }
static int q4_input_type(const custom_op* op, size_t i) { (void)op; return i == 1 ? typeUint8 : typeFloat; }
static size_t q4_inputs(const custom_op* op) { (void)op; return 3; }
static int q4_output_type(const custom_op* op, size_t i) { (void)op; (void)i; return typeFloat; }
static size_t q4_outputs(const custom_op* op) { (void)op; return SPLITS; }
static int q4_required(const custom_op* op, size_t i) { (void)op; (void)i; return 0; } // INPUT_OUTPUT_REQUIRED
static int q4_output_kind(const custom_op* op, size_t i) { (void)op; return i == 0 ? 0 : 1; } // the split ones OPTIONAL
static int q4_mem_default(const custom_op* op, size_t i) { (void)op; (void)i; return 0; }
static int q4_one(const custom_op* op) { (void)op; return 1; }

static status q4_fail(const void* api, const char* msg) { return FN(api, iCreateStatus, create_status_fn)(ortInvalidArgument, msg); }

static status q4_create(const custom_op* op, const void* api, const void* info, void** out) {
	(void)op;
	q4kernel* k = calloc(1, sizeof(q4kernel));
	if (!k) return FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm 4-bit matmul: out of memory");
	k->api = api;
	status st = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, "K", &k->K);
	if (!st) st = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, "N", &k->N);
	if (!st && (k->K <= 0 || k->N <= 0)) st = q4_fail(api, "snapvlm 4-bit matmul: K and N must be positive");
	// Optional N1 and N2: the widths of outputs 1 and 2, cut from the end
	// of the N columns; output 0 has the rest.
	int64_t split[SPLITS - 1] = {0, 0};
	for (int i = 0; !st && i < SPLITS - 1; i++) {
		status sa = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, i == 0 ? "N1" : "N2", &split[i]);
		if (sa) FN(api, iReleaseStatus, release_fn)(sa);
	}
	if (!st) {
		k->nout = 1 + (split[0] > 0) + (split[0] > 0 && split[1] > 0);
		k->ny[0] = k->N - split[0] - split[1];
		k->ny[1] = split[0], k->ny[2] = split[1];
		if (split[0] < 0 || split[1] < 0 || (split[1] > 0 && split[0] == 0) || k->ny[0] <= 0 ||
		    (k->nout > 1 && k->ny[0] % 16 != 0) || (k->nout > 2 && k->ny[1] % 16 != 0))
			st = q4_fail(api, "snapvlm 4-bit matmul: N1 and N2 must split N into outputs of multiples of 16 columns (but the last)");
	}
	if (st) {
		free(k);
		return st;
	}
	// For tests: an attribute path = 1 keeps a node on the portable path,
	// 2 off the tiles.
	int64_t path = 0;
	st = FN(api, iKernelInfoGetAttribute_int64, attr_int64_fn)(info, "path", &path);
	if (st) FN(api, iReleaseStatus, release_fn)(st);
	k->vnni = path != 1 && has_vnni();
	k->amx = path == 0 && has_amx();
	*out = k;
	return NULL;
}

static void q4_destroy(void* k) { free(k); }

// dims reads a value's dimensions (at most 8).
static status dims_of(const void* api, const void* v, int64_t d[8], size_t* n) {
	void* info;
	status st = FN(api, iGetTensorTypeAndShape, type_shape_fn)(v, &info);
	if (st) return st;
	st = FN(api, iGetDimensionsCount, dims_count_fn)(info, n);
	if (!st && (*n < 1 || *n > 8)) st = q4_fail(api, "snapvlm 4-bit matmul: an input of 0 or more than 8 dimensions");
	if (!st) st = FN(api, iGetDimensions, dims_fn)(info, d, *n);
	FN(api, iReleaseTensorTypeAndShapeInfo, release_fn)(info);
	return st;
}

static status q4_compute(void* kp, void* ctx) {
	const q4kernel* k = kp;
	const void* api = k->api;
	const void* in[3];
	int64_t d[3][8];
	size_t nd[3];
	void* data[3];
	status st;
	for (size_t i = 0; i < 3; i++) {
		if ((st = FN(api, iKernelContext_GetInput, get_input_fn)(ctx, i, &in[i]))) return st;
		if (!in[i]) return q4_fail(api, "snapvlm 4-bit matmul: an input is missing");
		if ((st = dims_of(api, in[i], d[i], &nd[i]))) return st;
		if ((st = FN(api, iGetTensorMutableData, mutable_data_fn)((void*)in[i], &data[i]))) return st;
	}
	const int64_t K = k->K, N = k->N, nblk = (K + 31) / 32, groups = (N + 15) / 16;
	int64_t nb = 1, ns = 1;
	for (size_t i = 0; i < nd[1]; i++) nb *= d[1][i];
	for (size_t i = 0; i < nd[2]; i++) ns *= d[2][i];
	if (d[0][nd[0] - 1] != K || nb != groups * nblk * 256 || ns != groups * nblk * 16)
		return q4_fail(api, "snapvlm 4-bit matmul: want A [..., K] and B and scales packed by onnx.PackQ4 (ceil(N/16)·ceil(K/32)·256 bytes, ·16 scales)");
	int64_t M = 1, odims[8];
	for (size_t i = 0; i + 1 < nd[0]; i++) {
		M *= d[0][i];
		odims[i] = d[0][i];
	}
	q4job j = {.b = data[1], .s = data[2], .a = data[0], .M = M, .K = K, .N = N, .nblk = nblk, .kp = nblk * 32, .groups = groups, .nout = k->nout};
	for (int o = 0, g0 = 0; o < k->nout; g0 += (int)(k->ny[o] / 16), o++) {
		void *out, *y;
		odims[nd[0] - 1] = k->ny[o];
		if ((st = FN(api, iKernelContext_GetOutput, get_output_fn)(ctx, (size_t)o, odims, nd[0], &out)) ||
		    (st = FN(api, iGetTensorMutableData, mutable_data_fn)(out, &y)))
			return st;
		j.y[o] = y, j.ny[o] = k->ny[o], j.g0[o] = g0;
	}
	if (M == 0) return NULL;
	j.tiles = (M + TILE_ROWS - 1) / TILE_ROWS;
	j.vnni = k->vnni;
	j.amx = k->amx && M > ROWS_VNNI;
	const int64_t rowTasks = (M + TASK_ROWS - 1) / TASK_ROWS;
	// The tile loads want 64-byte alignment.
	const int64_t qbytes = j.tiles * TILE_ROWS * j.kp;
	void* scratch = aligned_alloc(64, (size_t)(qbytes + 2 * M * nblk * 4 + 63) / 64 * 64);
	if (!scratch) return FN(api, iCreateStatus, create_status_fn)(ortFail, "snapvlm 4-bit matmul: out of memory");
	j.q = scratch;
	j.qoff = (int32_t*)(j.q + qbytes);
	j.sa = (float*)(j.qoff + M * nblk);
	// The tiles read the last tile's rows past M: zeros.
	if (j.amx) memset(j.q + M * j.kp, 0, (size_t)(qbytes - M * j.kp));
	st = FN(api, iKernelContext_ParallelFor, parallel_for_fn)(ctx, quantize_tile, (size_t)j.tiles, 0, &j);
	if (!st) st = FN(api, iKernelContext_ParallelFor, parallel_for_fn)(ctx, gemm_task, (size_t)(rowTasks * groups), 0, &j);
	free(scratch);
	return st;
}

SNAPVLM_OP_V1(q4)

const custom_op snapvlm_matmul_q4_op = {
	.version = 16,
	.CreateKernel = q4_create_v1,
	.GetName = q4_name,
	.GetExecutionProviderType = q4_provider,
	.GetInputType = q4_input_type,
	.GetInputTypeCount = q4_inputs,
	.GetOutputType = q4_output_type,
	.GetOutputTypeCount = q4_outputs,
	.KernelCompute = q4_compute_v1,
	.KernelDestroy = q4_destroy,
	.GetInputCharacteristic = q4_required,
	.GetOutputCharacteristic = q4_output_kind,
	.GetInputMemoryType = q4_mem_default,
	.GetVariadicInputMinArity = q4_one,
	.GetVariadicInputHomogeneity = q4_one,
	.GetVariadicOutputMinArity = q4_one,
	.GetVariadicOutputHomogeneity = q4_one,
	.CreateKernelV2 = q4_create,
	.KernelComputeV2 = q4_compute,
};
