//go:build !windows

// The parts of ONNX Runtime's C API that snapvlm's custom operators use
// (attention.c, matmulq4.c). The API is a table of function pointers that
// only ever grows at its end, so the few entries used are addressed by
// index (TestAttentionAPIIndices checks them against the header of the Go
// binding).

#ifndef SNAPVLM_ORTOP_H
#define SNAPVLM_ORTOP_H

#include <stddef.h>
#include <stdint.h>

typedef void* (*get_api_fn)(uint32_t);
typedef struct {
	get_api_fn GetApi;
	const char* (*GetVersionString)(void);
} api_base;

// The API version whose table the kernel reads: 17 added
// KernelContext_ParallelFor.
#define SNAPVLM_ORT_API 17

// Indices into OrtApi (onnxruntime_c_api.h, struct OrtApi).
enum {
	iCreateStatus = 0,
	iGetErrorMessage = 2,
	iCreateCustomOpDomain = 26,
	iCustomOpDomain_Add = 27,
	iAddCustomOpDomain = 28,
	iGetTensorMutableData = 51,
	iGetTensorElementType = 60,
	iGetDimensionsCount = 61,
	iGetDimensions = 62,
	iGetTensorTypeAndShape = 65,
	iKernelInfoGetAttribute_float = 85,
	iKernelInfoGetAttribute_int64 = 86,
	iKernelContext_GetInputCount = 88,
	iKernelContext_GetInput = 90,
	iKernelContext_GetOutput = 91,
	iReleaseStatus = 93,
	iReleaseTensorTypeAndShapeInfo = 99,
	iKernelContext_ParallelFor = 274,
};

typedef void* status; // OrtStatus*, NULL for success
typedef status (*create_status_fn)(int code, const char* msg);
typedef const char* (*error_message_fn)(const void* st);
typedef void (*release_fn)(void*);
typedef status (*create_domain_fn)(const char*, void**);
typedef status (*domain_add_fn)(void*, const void*);
typedef status (*add_domain_fn)(void*, void*);
typedef status (*mutable_data_fn)(void*, void**);
typedef status (*element_type_fn)(const void*, int*);
typedef status (*dims_count_fn)(const void*, size_t*);
typedef status (*dims_fn)(const void*, int64_t*, size_t);
typedef status (*type_shape_fn)(const void*, void**);
typedef status (*attr_float_fn)(const void*, const char*, float*);
typedef status (*attr_int64_fn)(const void*, const char*, int64_t*);
typedef status (*input_count_fn)(const void*, size_t*);
typedef status (*get_input_fn)(const void*, size_t, const void**);
typedef status (*get_output_fn)(void*, size_t, const int64_t*, size_t, void**);
typedef status (*parallel_for_fn)(const void*, void (*)(void*, size_t), size_t, size_t, void*);

#define FN(api, i, type) ((type)((void* const*)(api))[i])

// OrtCustomOp, in the layout of onnxruntime_c_api.h (version 16 reads
// through KernelComputeV2).
typedef struct custom_op {
	uint32_t version;
	void* (*CreateKernel)(const struct custom_op*, const void* api, const void* info);
	const char* (*GetName)(const struct custom_op*);
	const char* (*GetExecutionProviderType)(const struct custom_op*);
	int (*GetInputType)(const struct custom_op*, size_t);
	size_t (*GetInputTypeCount)(const struct custom_op*);
	int (*GetOutputType)(const struct custom_op*, size_t);
	size_t (*GetOutputTypeCount)(const struct custom_op*);
	void (*KernelCompute)(void* kernel, void* context);
	void (*KernelDestroy)(void* kernel);
	int (*GetInputCharacteristic)(const struct custom_op*, size_t);
	int (*GetOutputCharacteristic)(const struct custom_op*, size_t);
	int (*GetInputMemoryType)(const struct custom_op*, size_t);
	int (*GetVariadicInputMinArity)(const struct custom_op*);
	int (*GetVariadicInputHomogeneity)(const struct custom_op*);
	int (*GetVariadicOutputMinArity)(const struct custom_op*);
	int (*GetVariadicOutputHomogeneity)(const struct custom_op*);
	status (*CreateKernelV2)(const struct custom_op*, const void* api, const void* info, void** kernel);
	status (*KernelComputeV2)(void* kernel, void* context);
} custom_op;

enum { typeFloat = 1, typeUint8 = 2, typeInt32 = 6, typeFloat16 = 10 };

// SNAPVLM_OP_V1 defines P##_compute_v1 and P##_create_v1, the version-1
// entry points of an operator over its P##_compute and P##_create (which
// return a status); the version-1 interface cannot return one, so it is
// released. The kernel's first field must be the API.
#define SNAPVLM_OP_V1(P)                                                            \
	static void P##_compute_v1(void* k, void* ctx) {                                \
		status st = P##_compute(k, ctx);                                            \
		if (st) FN(*(const void* const*)k, iReleaseStatus, release_fn)(st);        \
	}                                                                               \
	static void* P##_create_v1(const custom_op* op, const void* api, const void* info) { \
		void* k = NULL;                                                             \
		status st = P##_create(op, api, info, &k);                                  \
		if (st) FN(api, iReleaseStatus, release_fn)(st);                            \
		return k;                                                                   \
	}
enum { ortFail = 1, ortInvalidArgument = 2 };

#endif
