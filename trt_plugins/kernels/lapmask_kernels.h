/* C ABI of liblapmask_kernels: the DynamicDeformConv and MatrixNMS kernels (contract: OPS.md).
 *
 * Every entry point returns a lapmask_status and never aborts on bad input; on failure
 * lapmask_last_error() returns a message for the calling thread (valid until that thread's next call).
 * Tensors are dense, contiguous, row-major. CPU entry points take host pointers; *_cuda entry points take
 * device pointers and a cudaStream_t passed as void* (so this header needs no CUDA headers). A library built
 * without CUDA still exports the *_cuda symbols; they return LAPMASK_STATUS_NOT_COMPILED.
 */
#ifndef LAPMASK_KERNELS_H
#define LAPMASK_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define LAPMASK_API __declspec(dllexport)
#else
#define LAPMASK_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever this ABI changes incompatibly (the op versions in OPS.md are separate). */
#define LAPMASK_KERNELS_ABI_VERSION 1

typedef enum lapmask_status
{
    LAPMASK_STATUS_OK = 0,
    LAPMASK_STATUS_INVALID_ARGUMENT = 1,
    LAPMASK_STATUS_OUT_OF_MEMORY = 2,
    LAPMASK_STATUS_CUDA_ERROR = 3,
    LAPMASK_STATUS_NOT_COMPILED = 4,
    LAPMASK_STATUS_INTERNAL_ERROR = 5
} lapmask_status;

/* Element types (storage). Which op accepts which is listed per function. */
typedef enum lapmask_dtype
{
    LAPMASK_DTYPE_FLOAT32 = 0,
    LAPMASK_DTYPE_FLOAT16 = 1,
    LAPMASK_DTYPE_FLOAT64 = 2,
    LAPMASK_DTYPE_UINT8 = 3,
    LAPMASK_DTYPE_INT32 = 4
} lapmask_dtype;

/* Matrix NMS decay kernels (attribute `kernel`). */
typedef enum lapmask_nms_kernel
{
    LAPMASK_NMS_GAUSSIAN = 0,
    LAPMASK_NMS_LINEAR = 1
} lapmask_nms_kernel;

/* DynamicDeformConv shapes and attributes (ONNX DeformConv-19 names). Fill with lapmask_deform_conv_desc_init
 * (the contract defaults), then set the shapes. Tensors:
 *   x      [batch, channels, height, width]
 *   weight [out_channels, channels / group, kernel_h, kernel_w]
 *   offset [batch, offset_group * 2 * kernel_h * kernel_w, out_h, out_w]   (dy, dx) interleaved per tap
 *   mask   [batch, offset_group * kernel_h * kernel_w, out_h, out_w]       modulation (NULL: all ones)
 *   bias   [out_channels]                                                 (NULL: no bias)
 *   out    [batch, out_channels, out_h, out_w]
 * with out_h, out_w from lapmask_deform_conv_output_size. */
typedef struct lapmask_deform_conv_desc
{
    int64_t batch;
    int64_t channels;
    int64_t height;
    int64_t width;
    int64_t out_channels;
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t pad_bottom;
    int32_t pad_right;
    int32_t dilation_h;
    int32_t dilation_w;
    int32_t group;
    int32_t offset_group;
} lapmask_deform_conv_desc;

/* ---- library information ---- */
LAPMASK_API int32_t lapmask_kernels_abi_version(void);
LAPMASK_API const char* lapmask_kernels_build_info(void); /* e.g. "cpu openmp cuda(75;80;86;89;90)" */
LAPMASK_API int32_t lapmask_kernels_has_cuda(void);       /* 1 when the *_cuda entry points are compiled */
LAPMASK_API const char* lapmask_last_error(void);

/* ---- contract defaults (tested against lapmask/ops/contract.py) ---- */
LAPMASK_API void lapmask_deform_conv_desc_init(lapmask_deform_conv_desc* desc);
LAPMASK_API int32_t lapmask_matrix_nms_default_kernel(void);
LAPMASK_API float lapmask_matrix_nms_default_sigma(void);
/* "gaussian" -> 0, "linear" -> 1; anything else is INVALID_ARGUMENT. */
LAPMASK_API lapmask_status lapmask_matrix_nms_kernel_from_name(const char* name, int32_t* kernel);

/* ---- DynamicDeformConv ---- */
LAPMASK_API lapmask_status lapmask_deform_conv_output_size(
    const lapmask_deform_conv_desc* desc, int64_t* out_h, int64_t* out_w);

/* dtype: FLOAT32, FLOAT16 or FLOAT64 (all tensors the same type); fp32 accumulation (fp64 for FLOAT64). */
LAPMASK_API lapmask_status lapmask_deform_conv_cpu(const lapmask_deform_conv_desc* desc, lapmask_dtype dtype,
    const void* x, const void* weight, const void* offset, const void* mask, const void* bias, void* out);

/* Device workspace (bytes) for lapmask_deform_conv_cuda: the fp32 column matrix of one image. */
LAPMASK_API lapmask_status lapmask_deform_conv_cuda_workspace_size(
    const lapmask_deform_conv_desc* desc, lapmask_dtype dtype, size_t* bytes);

/* dtype: FLOAT32 or FLOAT16. Device pointers; asynchronous on `stream` (a cudaStream_t, NULL = default). */
LAPMASK_API lapmask_status lapmask_deform_conv_cuda(const lapmask_deform_conv_desc* desc, lapmask_dtype dtype,
    const void* x, const void* weight, const void* offset, const void* mask, const void* bias, void* out,
    void* workspace, size_t workspace_bytes, void* stream);

/* ---- MatrixNMS (decay only) ----
 *   masks  [candidates, pixels]  0/1 as FLOAT32, FLOAT16 or UINT8 (mask_dtype)
 *   scores [candidates] float32, sorted descending, invalid = -1
 *   labels [candidates] int32
 *   out    [candidates] float32 decayed scores (invalid entries copied from scores) */
LAPMASK_API lapmask_status lapmask_matrix_nms_cpu(int64_t candidates, int64_t pixels, lapmask_dtype mask_dtype,
    const void* masks, const float* scores, const int32_t* labels, int32_t kernel, float sigma, float* out);

LAPMASK_API lapmask_status lapmask_matrix_nms_cuda_workspace_size(
    int64_t candidates, int64_t pixels, size_t* bytes);

LAPMASK_API lapmask_status lapmask_matrix_nms_cuda(int64_t candidates, int64_t pixels, lapmask_dtype mask_dtype,
    const void* masks, const float* scores, const int32_t* labels, int32_t kernel, float sigma, float* out,
    void* workspace, size_t workspace_bytes, void* stream);

/* ---- test helpers: fp16 conversions used by the kernels (round to nearest even) ---- */
LAPMASK_API lapmask_status lapmask_float_to_half_bits(const float* in, uint16_t* out, int64_t n);
LAPMASK_API lapmask_status lapmask_half_bits_to_float(const uint16_t* in, float* out, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* LAPMASK_KERNELS_H */
