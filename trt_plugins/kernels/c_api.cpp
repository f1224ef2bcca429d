// The C ABI (lapmask_kernels.h): argument checks, dtype dispatch, status codes and the per-thread last error.
// Nothing here throws across the boundary and nothing aborts: every failure becomes a status + message.
#include "lapmask_kernels.h"

#include "kernels_cpu.h"

#include <cmath>
#include <cstring>
#include <exception>
#include <new>
#include <sstream>
#include <string>

#if defined(LAPMASK_WITH_CUDA)
#include "launchers_cuda.h"
#endif

#ifndef LAPMASK_CUDA_ARCHS
#define LAPMASK_CUDA_ARCHS ""
#endif

namespace
{

using lapmask::kernels::DeformConvParams;
using lapmask::kernels::Half;
using lapmask::kernels::MatrixNmsParams;

thread_local std::string gLastError;

//! Thrown by the checks below; converted to LAPMASK_STATUS_INVALID_ARGUMENT at the boundary.
struct InvalidArgument
{
    std::string message;
};

[[noreturn]] void fail(std::string const& message)
{
    throw InvalidArgument{message};
}

lapmask_status setError(lapmask_status status, std::string const& message)
{
    gLastError = message;
    return status;
}

//! Run `body` and turn every exception into a status; clears the last error on success.
template <typename Body>
lapmask_status guarded(char const* function, Body&& body)
{
    try
    {
        lapmask_status const status = body();
        if (status == LAPMASK_STATUS_OK)
        {
            gLastError.clear();
        }
        return status;
    }
    catch (InvalidArgument const& e)
    {
        return setError(LAPMASK_STATUS_INVALID_ARGUMENT, std::string(function) + ": " + e.message);
    }
    catch (std::bad_alloc const&)
    {
        return setError(LAPMASK_STATUS_OUT_OF_MEMORY, std::string(function) + ": out of host memory");
    }
    catch (std::exception const& e)
    {
        return setError(LAPMASK_STATUS_INTERNAL_ERROR, std::string(function) + ": " + e.what());
    }
    catch (...)
    {
        return setError(LAPMASK_STATUS_INTERNAL_ERROR, std::string(function) + ": unknown exception");
    }
}

//! a * b, failing on int64 overflow (shapes come from callers we do not trust).
int64_t mulChecked(int64_t a, int64_t b, char const* what)
{
    int64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r) || r > (int64_t{1} << 56))
    {
        fail(std::string(what) + " is too large");
    }
    return r;
}

void requirePointer(void const* ptr, int64_t elements, char const* name)
{
    if (ptr == nullptr && elements > 0)
    {
        fail(std::string(name) + " is NULL but has " + std::to_string(elements) + " elements");
    }
}

void requireAtLeast(int64_t value, int64_t minimum, char const* name)
{
    if (value < minimum)
    {
        fail(std::string(name) + " must be >= " + std::to_string(minimum) + ", got " + std::to_string(value));
    }
}

char const* dtypeName(lapmask_dtype dtype)
{
    switch (dtype)
    {
    case LAPMASK_DTYPE_FLOAT32: return "float32";
    case LAPMASK_DTYPE_FLOAT16: return "float16";
    case LAPMASK_DTYPE_FLOAT64: return "float64";
    case LAPMASK_DTYPE_UINT8: return "uint8";
    case LAPMASK_DTYPE_INT32: return "int32";
    }
    return "unknown";
}

//! Validate a descriptor and turn it into kernel parameters (output size included).
DeformConvParams deformParams(lapmask_deform_conv_desc const* d, bool hasMask, bool hasBias)
{
    if (d == nullptr)
    {
        fail("desc is NULL");
    }
    requireAtLeast(d->batch, 0, "batch");
    requireAtLeast(d->channels, 1, "channels");
    requireAtLeast(d->height, 1, "height");
    requireAtLeast(d->width, 1, "width");
    requireAtLeast(d->out_channels, 0, "out_channels");
    requireAtLeast(d->kernel_h, 1, "kernel_h");
    requireAtLeast(d->kernel_w, 1, "kernel_w");
    requireAtLeast(d->stride_h, 1, "stride_h");
    requireAtLeast(d->stride_w, 1, "stride_w");
    requireAtLeast(d->pad_top, 0, "pad_top");
    requireAtLeast(d->pad_left, 0, "pad_left");
    requireAtLeast(d->pad_bottom, 0, "pad_bottom");
    requireAtLeast(d->pad_right, 0, "pad_right");
    requireAtLeast(d->dilation_h, 1, "dilation_h");
    requireAtLeast(d->dilation_w, 1, "dilation_w");
    requireAtLeast(d->group, 1, "group");
    requireAtLeast(d->offset_group, 1, "offset_group");
    if (d->channels % d->group != 0 || d->out_channels % d->group != 0)
    {
        fail("channels (" + std::to_string(d->channels) + ") and out_channels (" + std::to_string(d->out_channels)
            + ") must be divisible by group (" + std::to_string(d->group) + ")");
    }
    if (d->channels % d->offset_group != 0)
    {
        fail("channels (" + std::to_string(d->channels) + ") must be divisible by offset_group ("
            + std::to_string(d->offset_group) + ")");
    }
    DeformConvParams p{};
    p.batch = d->batch;
    p.channels = d->channels;
    p.height = d->height;
    p.width = d->width;
    p.outChannels = d->out_channels;
    p.kernelH = d->kernel_h;
    p.kernelW = d->kernel_w;
    p.strideH = d->stride_h;
    p.strideW = d->stride_w;
    p.padTop = d->pad_top;
    p.padLeft = d->pad_left;
    p.padBottom = d->pad_bottom;
    p.padRight = d->pad_right;
    p.dilationH = d->dilation_h;
    p.dilationW = d->dilation_w;
    p.group = d->group;
    p.offsetGroup = d->offset_group;
    p.hasMask = hasMask;
    p.hasBias = hasBias;
    p.outHeight = lapmask::kernels::deformOutExtent(p.height, p.padTop, p.padBottom, p.kernelH, p.strideH, p.dilationH);
    p.outWidth = lapmask::kernels::deformOutExtent(p.width, p.padLeft, p.padRight, p.kernelW, p.strideW, p.dilationW);
    if (p.outHeight < 1 || p.outWidth < 1)
    {
        fail("the dilated kernel does not fit the padded input (output size would be < 1)");
    }
    // Every tensor's element count must fit comfortably in int64 (also guards the kernels' index arithmetic).
    int64_t const taps = mulChecked(p.kernelH, p.kernelW, "kernel");
    int64_t const pixels = mulChecked(p.outHeight, p.outWidth, "output plane");
    mulChecked(mulChecked(mulChecked(p.batch, p.channels, "x"), p.height, "x"), p.width, "x");
    mulChecked(mulChecked(p.outChannels, p.channels / p.group, "weight"), taps, "weight");
    mulChecked(mulChecked(mulChecked(p.batch, 2 * p.offsetGroup, "offset"), taps, "offset"), pixels, "offset");
    mulChecked(mulChecked(p.batch, p.outChannels, "out"), pixels, "out");
    mulChecked(mulChecked(p.channels, taps, "columns"), pixels, "columns");
    return p;
}

void requireDeformPointers(DeformConvParams const& p, void const* x, void const* weight, void const* offset,
    void const* out)
{
    int64_t const taps = lapmask::kernels::deformTaps(p);
    int64_t const pixels = lapmask::kernels::deformPixels(p);
    requirePointer(x, p.batch * p.channels * p.height * p.width, "x");
    requirePointer(weight, p.outChannels * (p.channels / p.group) * taps, "weight");
    requirePointer(offset, p.batch * 2 * p.offsetGroup * taps * pixels, "offset");
    requirePointer(out, p.batch * p.outChannels * pixels, "out");
}

MatrixNmsParams nmsParams(int64_t candidates, int64_t pixels, int32_t kernel, float sigma)
{
    requireAtLeast(candidates, 0, "candidates");
    requireAtLeast(pixels, 0, "pixels");
    if (kernel != LAPMASK_NMS_GAUSSIAN && kernel != LAPMASK_NMS_LINEAR)
    {
        fail("kernel must be 0 (gaussian) or 1 (linear), got " + std::to_string(kernel));
    }
    if (!std::isfinite(sigma) || sigma < 0.0f)
    {
        fail("sigma must be finite and >= 0");
    }
    mulChecked(candidates, pixels, "masks");
    mulChecked(candidates, candidates, "candidates^2");
    MatrixNmsParams p{};
    p.candidates = candidates;
    p.pixels = pixels;
    p.kernel = kernel;
    p.sigma = sigma;
    return p;
}

void requireNmsPointers(MatrixNmsParams const& p, void const* masks, void const* scores, void const* labels,
    void const* out)
{
    requirePointer(masks, p.candidates * p.pixels, "masks");
    requirePointer(scores, p.candidates, "scores");
    requirePointer(labels, p.candidates, "labels");
    requirePointer(out, p.candidates, "out");
}

#if defined(LAPMASK_WITH_CUDA)
lapmask_status cudaStatus(cudaError_t err, char const* what)
{
    if (err == cudaSuccess)
    {
        return LAPMASK_STATUS_OK;
    }
    (void) cudaGetLastError(); // clear a non-sticky error so later calls are not blamed for it
    return setError(LAPMASK_STATUS_CUDA_ERROR, std::string(what) + ": " + cudaGetErrorString(err));
}
#else
lapmask_status notCompiled(char const* function)
{
    return setError(LAPMASK_STATUS_NOT_COMPILED,
        std::string(function)
            + ": liblapmask_kernels was built without CUDA; rebuild with nvcc on PATH "
              "(python -m lapmask.ops.build_kernels --cuda on)");
}
#endif

} // namespace

extern "C" {

int32_t lapmask_kernels_abi_version(void)
{
    return LAPMASK_KERNELS_ABI_VERSION;
}

char const* lapmask_kernels_build_info(void)
{
    static std::string const info = [] {
        std::ostringstream s;
        s << "cpu";
#if defined(_OPENMP)
        s << " openmp";
#endif
#if defined(LAPMASK_WITH_CUDA)
        s << " cuda(" << LAPMASK_CUDA_ARCHS << ")";
#endif
        return s.str();
    }();
    return info.c_str();
}

int32_t lapmask_kernels_has_cuda(void)
{
#if defined(LAPMASK_WITH_CUDA)
    return 1;
#else
    return 0;
#endif
}

char const* lapmask_last_error(void)
{
    return gLastError.c_str();
}

void lapmask_deform_conv_desc_init(lapmask_deform_conv_desc* desc)
{
    if (desc == nullptr)
    {
        return;
    }
    std::memset(desc, 0, sizeof(*desc));
    // ONNX DeformConv-19 defaults (OPS.md): 3x3 as LapMask's dynamic filter, no padding, unit stride/dilation.
    desc->kernel_h = 3;
    desc->kernel_w = 3;
    desc->stride_h = 1;
    desc->stride_w = 1;
    desc->dilation_h = 1;
    desc->dilation_w = 1;
    desc->group = 1;
    desc->offset_group = 1;
}

int32_t lapmask_matrix_nms_default_kernel(void)
{
    return LAPMASK_NMS_GAUSSIAN; // spec 7.1 NMS_KERNEL
}

float lapmask_matrix_nms_default_sigma(void)
{
    return 2.0f; // spec 7.1 NMS_SIGMA
}

lapmask_status lapmask_matrix_nms_kernel_from_name(char const* name, int32_t* kernel)
{
    return guarded("lapmask_matrix_nms_kernel_from_name", [&] {
        if (name == nullptr || kernel == nullptr)
        {
            fail("name and kernel must not be NULL");
        }
        if (std::strcmp(name, "gaussian") == 0)
        {
            *kernel = LAPMASK_NMS_GAUSSIAN;
        }
        else if (std::strcmp(name, "linear") == 0)
        {
            *kernel = LAPMASK_NMS_LINEAR;
        }
        else
        {
            fail(std::string("unknown kernel '") + name + "'; use 'gaussian' or 'linear'");
        }
        return LAPMASK_STATUS_OK;
    });
}

lapmask_status lapmask_deform_conv_output_size(lapmask_deform_conv_desc const* desc, int64_t* out_h, int64_t* out_w)
{
    return guarded("lapmask_deform_conv_output_size", [&] {
        if (out_h == nullptr || out_w == nullptr)
        {
            fail("out_h and out_w must not be NULL");
        }
        DeformConvParams const p = deformParams(desc, true, false);
        *out_h = p.outHeight;
        *out_w = p.outWidth;
        return LAPMASK_STATUS_OK;
    });
}

lapmask_status lapmask_deform_conv_cpu(lapmask_deform_conv_desc const* desc, lapmask_dtype dtype, void const* x,
    void const* weight, void const* offset, void const* mask, void const* bias, void* out)
{
    return guarded("lapmask_deform_conv_cpu", [&] {
        DeformConvParams const p = deformParams(desc, mask != nullptr, bias != nullptr);
        requireDeformPointers(p, x, weight, offset, out);
        switch (dtype)
        {
        case LAPMASK_DTYPE_FLOAT32:
            lapmask::kernels::deformConvCpu<float>(p, static_cast<float const*>(x), static_cast<float const*>(weight),
                static_cast<float const*>(offset), static_cast<float const*>(mask), static_cast<float const*>(bias),
                static_cast<float*>(out));
            break;
        case LAPMASK_DTYPE_FLOAT16:
            lapmask::kernels::deformConvCpu<Half>(p, static_cast<Half const*>(x), static_cast<Half const*>(weight),
                static_cast<Half const*>(offset), static_cast<Half const*>(mask), static_cast<Half const*>(bias),
                static_cast<Half*>(out));
            break;
        case LAPMASK_DTYPE_FLOAT64:
            lapmask::kernels::deformConvCpu<double>(p, static_cast<double const*>(x),
                static_cast<double const*>(weight), static_cast<double const*>(offset),
                static_cast<double const*>(mask), static_cast<double const*>(bias), static_cast<double*>(out));
            break;
        default: fail(std::string("dtype ") + dtypeName(dtype) + " is not supported (float32, float16, float64)");
        }
        return LAPMASK_STATUS_OK;
    });
}

lapmask_status lapmask_matrix_nms_cpu(int64_t candidates, int64_t pixels, lapmask_dtype mask_dtype, void const* masks,
    float const* scores, int32_t const* labels, int32_t kernel, float sigma, float* out)
{
    return guarded("lapmask_matrix_nms_cpu", [&] {
        MatrixNmsParams const p = nmsParams(candidates, pixels, kernel, sigma);
        requireNmsPointers(p, masks, scores, labels, out);
        switch (mask_dtype)
        {
        case LAPMASK_DTYPE_FLOAT32:
            lapmask::kernels::matrixNmsCpu<float>(p, static_cast<float const*>(masks), scores, labels, out);
            break;
        case LAPMASK_DTYPE_FLOAT16:
            lapmask::kernels::matrixNmsCpu<Half>(p, static_cast<Half const*>(masks), scores, labels, out);
            break;
        case LAPMASK_DTYPE_UINT8:
            lapmask::kernels::matrixNmsCpu<uint8_t>(p, static_cast<uint8_t const*>(masks), scores, labels, out);
            break;
        default:
            fail(std::string("mask dtype ") + dtypeName(mask_dtype) + " is not supported (float32, float16, uint8)");
        }
        return LAPMASK_STATUS_OK;
    });
}

lapmask_status lapmask_deform_conv_cuda_workspace_size(
    lapmask_deform_conv_desc const* desc, lapmask_dtype dtype, size_t* bytes)
{
    return guarded("lapmask_deform_conv_cuda_workspace_size", [&] {
#if defined(LAPMASK_WITH_CUDA)
        if (bytes == nullptr)
        {
            fail("bytes must not be NULL");
        }
        if (dtype != LAPMASK_DTYPE_FLOAT32 && dtype != LAPMASK_DTYPE_FLOAT16)
        {
            fail(std::string("dtype ") + dtypeName(dtype) + " is not supported on CUDA (float32, float16)");
        }
        *bytes = lapmask::kernels::deformConvCudaWorkspaceSize(deformParams(desc, true, false));
        return LAPMASK_STATUS_OK;
#else
        (void) desc;
        (void) dtype;
        (void) bytes;
        return notCompiled("lapmask_deform_conv_cuda_workspace_size");
#endif
    });
}

lapmask_status lapmask_deform_conv_cuda(lapmask_deform_conv_desc const* desc, lapmask_dtype dtype, void const* x,
    void const* weight, void const* offset, void const* mask, void const* bias, void* out, void* workspace,
    size_t workspace_bytes, void* stream)
{
    return guarded("lapmask_deform_conv_cuda", [&] {
#if defined(LAPMASK_WITH_CUDA)
        DeformConvParams const p = deformParams(desc, mask != nullptr, bias != nullptr);
        requireDeformPointers(p, x, weight, offset, out);
        size_t const need = lapmask::kernels::deformConvCudaWorkspaceSize(p);
        if (workspace_bytes < need || (workspace == nullptr && need > 0))
        {
            fail("workspace of " + std::to_string(workspace_bytes) + " bytes is smaller than the "
                + std::to_string(need) + " bytes lapmask_deform_conv_cuda_workspace_size asks for");
        }
        cudaStream_t const s = static_cast<cudaStream_t>(stream);
        switch (dtype)
        {
        case LAPMASK_DTYPE_FLOAT32:
            return cudaStatus(lapmask::kernels::launchDeformConv<float>(p, static_cast<float const*>(x),
                                  static_cast<float const*>(weight), static_cast<float const*>(offset),
                                  static_cast<float const*>(mask), static_cast<float const*>(bias),
                                  static_cast<float*>(out), workspace, workspace_bytes, s),
                "lapmask_deform_conv_cuda");
        case LAPMASK_DTYPE_FLOAT16:
            return cudaStatus(lapmask::kernels::launchDeformConv<Half>(p, static_cast<Half const*>(x),
                                  static_cast<Half const*>(weight), static_cast<Half const*>(offset),
                                  static_cast<Half const*>(mask), static_cast<Half const*>(bias),
                                  static_cast<Half*>(out), workspace, workspace_bytes, s),
                "lapmask_deform_conv_cuda");
        default: fail(std::string("dtype ") + dtypeName(dtype) + " is not supported on CUDA (float32, float16)");
        }
#else
        (void) desc, (void) dtype, (void) x, (void) weight, (void) offset, (void) mask, (void) bias, (void) out;
        (void) workspace, (void) workspace_bytes, (void) stream;
        return notCompiled("lapmask_deform_conv_cuda");
#endif
    });
}

lapmask_status lapmask_matrix_nms_cuda_workspace_size(int64_t candidates, int64_t pixels, size_t* bytes)
{
    return guarded("lapmask_matrix_nms_cuda_workspace_size", [&] {
#if defined(LAPMASK_WITH_CUDA)
        if (bytes == nullptr)
        {
            fail("bytes must not be NULL");
        }
        *bytes = lapmask::kernels::matrixNmsCudaWorkspaceSize(nmsParams(candidates, pixels, 0, 2.0f));
        return LAPMASK_STATUS_OK;
#else
        (void) candidates, (void) pixels, (void) bytes;
        return notCompiled("lapmask_matrix_nms_cuda_workspace_size");
#endif
    });
}

lapmask_status lapmask_matrix_nms_cuda(int64_t candidates, int64_t pixels, lapmask_dtype mask_dtype, void const* masks,
    float const* scores, int32_t const* labels, int32_t kernel, float sigma, float* out, void* workspace,
    size_t workspace_bytes, void* stream)
{
    return guarded("lapmask_matrix_nms_cuda", [&] {
#if defined(LAPMASK_WITH_CUDA)
        MatrixNmsParams const p = nmsParams(candidates, pixels, kernel, sigma);
        requireNmsPointers(p, masks, scores, labels, out);
        size_t const need = lapmask::kernels::matrixNmsCudaWorkspaceSize(p);
        if (p.candidates > 0 && (workspace == nullptr || workspace_bytes < need))
        {
            fail("workspace of " + std::to_string(workspace_bytes) + " bytes is smaller than the "
                + std::to_string(need) + " bytes lapmask_matrix_nms_cuda_workspace_size asks for");
        }
        cudaStream_t const s = static_cast<cudaStream_t>(stream);
        switch (mask_dtype)
        {
        case LAPMASK_DTYPE_FLOAT32:
            return cudaStatus(lapmask::kernels::launchMatrixNms<float>(p, static_cast<float const*>(masks), scores,
                                  labels, out, workspace, workspace_bytes, s),
                "lapmask_matrix_nms_cuda");
        case LAPMASK_DTYPE_FLOAT16:
            return cudaStatus(lapmask::kernels::launchMatrixNms<Half>(p, static_cast<Half const*>(masks), scores,
                                  labels, out, workspace, workspace_bytes, s),
                "lapmask_matrix_nms_cuda");
        case LAPMASK_DTYPE_UINT8:
            return cudaStatus(lapmask::kernels::launchMatrixNms<uint8_t>(p, static_cast<uint8_t const*>(masks),
                                  scores, labels, out, workspace, workspace_bytes, s),
                "lapmask_matrix_nms_cuda");
        default:
            fail(std::string("mask dtype ") + dtypeName(mask_dtype) + " is not supported (float32, float16, uint8)");
        }
#else
        (void) candidates, (void) pixels, (void) mask_dtype, (void) masks, (void) scores, (void) labels;
        (void) kernel, (void) sigma, (void) out, (void) workspace, (void) workspace_bytes, (void) stream;
        return notCompiled("lapmask_matrix_nms_cuda");
#endif
    });
}

lapmask_status lapmask_float_to_half_bits(float const* in, uint16_t* out, int64_t n)
{
    return guarded("lapmask_float_to_half_bits", [&] {
        requireAtLeast(n, 0, "n");
        requirePointer(in, n, "in");
        requirePointer(out, n, "out");
        for (int64_t i = 0; i < n; ++i)
        {
            out[i] = lapmask::kernels::floatToHalfBits(in[i]);
        }
        return LAPMASK_STATUS_OK;
    });
}

lapmask_status lapmask_half_bits_to_float(uint16_t const* in, float* out, int64_t n)
{
    return guarded("lapmask_half_bits_to_float", [&] {
        requireAtLeast(n, 0, "n");
        requirePointer(in, n, "in");
        requirePointer(out, n, "out");
        for (int64_t i = 0; i < n; ++i)
        {
            out[i] = lapmask::kernels::halfBitsToFloat(in[i]);
        }
        return LAPMASK_STATUS_OK;
    });
}

} // extern "C"
