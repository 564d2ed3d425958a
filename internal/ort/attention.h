// snapvlm's attention kernel for ONNX Runtime's CPU provider: the
// semantics of com.microsoft GroupQueryAttention as the decoder rewrite
// uses it (float32, separate Q/K/V, past and present either one buffer or
// two), computed in one pass over the cache per query row.

#ifndef SNAPVLM_ATTENTION_H
#define SNAPVLM_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

// The operator domain of the kernel (ort.AttentionDomain).
#define SNAPVLM_ATTENTION_DOMAIN "ai.snapvlm"

// The kernel's operator with a float16 cache (ort.Attention16Op), built
// where the compiler has _Float16.
#define SNAPVLM_ATTENTION16_OP "GroupQueryAttention16"
#if defined(__FLT16_MAX__)
#define SNAPVLM_HALF 1
#endif

// snapvlm_attention_half reports whether the domain has the float16-cache
// operator.
int snapvlm_attention_half(void);

// snapvlm_attention_domain returns the custom-op domain holding the
// kernel and the 4-bit matmul (matmulq4.h), made from the library at path, or NULL with err set when the
// library's C API is too old (the kernel needs API 17) or the domain
// cannot be made.
void* snapvlm_attention_domain(const char* path, char* err, size_t errlen);

// snapvlm_attention_add adds the domain to a session's options; it returns
// 0, or -1 with err set.
int snapvlm_attention_add(void* options, void* domain, char* err, size_t errlen);

#endif
