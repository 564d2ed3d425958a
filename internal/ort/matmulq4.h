// snapvlm's 4-bit matmul for ONNX Runtime's CPU provider: the product of
// com.microsoft MatMulNBits (bits 4, block_size 32, no zero points, float32)
// with its activations quantized to int8 per row and block of 32, in the
// same custom-op domain as the attention kernel.

#ifndef SNAPVLM_MATMULQ4_H
#define SNAPVLM_MATMULQ4_H

#include "ortop.h"

// The operator's name in the domain (ort.MatMulQ4Op).
#define SNAPVLM_MATMUL_Q4_OP "MatMulQ4"

// snapvlm_matmul_q4_vector reports whether this CPU runs the kernel's
// AVX-512 VNNI path (1) or only its portable one (0);
// snapvlm_matmul_q4_tiles, whether this process also runs its AMX path.
// All paths give the same bits.
int snapvlm_matmul_q4_vector(void);
int snapvlm_matmul_q4_tiles(void);

extern const custom_op snapvlm_matmul_q4_op;

#endif
