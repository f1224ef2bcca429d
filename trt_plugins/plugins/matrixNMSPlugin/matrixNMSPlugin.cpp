// lapmask::MatrixNMS IPluginV3 (contract: OPS.md, lapmask/ops/contract.py MATRIX_NMS).
// masks [K, H, W] (float32 or float16, 0/1), scores [K] float32 (sorted descending, invalid = -1), labels [K] int32
// -> decayed_scores [K] float32. All arithmetic is fp32 inside the kernels (areas exceed the fp16 range).
// uint8 masks, which the contract allows elsewhere, cannot be a plugin input: TensorRT plugin tensors exclude kUINT8.
#include "matrixNMSPlugin.h"

#include "launchers_cuda.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <sstream>

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IExprBuilder;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

namespace lapmask
{
namespace plugin
{

namespace
{
constexpr char const* kPLUGIN_NAME{"MatrixNMS"};
constexpr char const* kPLUGIN_VERSION{"1"};

void requireEqual(int64_t a, int64_t b, std::string const& what)
{
    if (a >= 0 && b >= 0)
    {
        require(a == b, what + ": " + std::to_string(a) + " != " + std::to_string(b));
    }
}

bool isMaskType(DataType t)
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}
} // namespace

// ---- attributes ----

MatrixNmsAttributes MatrixNmsAttributes::fromFields(PluginFieldCollection const* fc)
{
    FieldReader r(fc, {"kernel", "sigma"});
    MatrixNmsAttributes a;
    if (r.has("kernel"))
    {
        std::string const name = r.string("kernel");
        if (name == "gaussian")
        {
            a.kernel = kernels::kMatrixNmsGaussian;
        }
        else if (name == "linear")
        {
            a.kernel = kernels::kMatrixNmsLinear;
        }
        else
        {
            fail("kernel must be 'gaussian' or 'linear', got '" + name + "'");
        }
    }
    if (r.has("sigma"))
    {
        a.sigma = r.real("sigma");
    }
    a.validate();
    return a;
}

void MatrixNmsAttributes::validate() const
{
    require(kernel == kernels::kMatrixNmsGaussian || kernel == kernels::kMatrixNmsLinear, "unknown kernel code");
    require(std::isfinite(sigma) && sigma >= 0.0F, "sigma must be finite and >= 0, got " + std::to_string(sigma));
}

void MatrixNmsAttributes::serialize(FieldWriter& writer) const
{
    writer.string("kernel", kernelName());
    writer.real("sigma", sigma);
}

std::string MatrixNmsAttributes::kernelName() const
{
    return kernel == kernels::kMatrixNmsLinear ? "linear" : "gaussian";
}

std::string MatrixNmsAttributes::describe() const
{
    std::ostringstream s;
    s.precision(9);
    s << "kernel=" << kernelName() << ";sigma=" << sigma;
    return s.str();
}

// ---- plugin ----

MatrixNMSPlugin::MatrixNMSPlugin(MatrixNmsAttributes attributes)
    : mAttributes(attributes)
{
    mAttributes.validate();
    mDescription = std::string(kPLUGIN_NAME) + "_v" + kPLUGIN_VERSION + ":" + mAttributes.describe();
}

nvinfer1::IPluginCapability* MatrixNMSPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* MatrixNMSPlugin::clone() noexcept
{
    try
    {
        return new MatrixNMSPlugin(mAttributes);
    }
    catch (...)
    {
        logCaught("MatrixNMS::clone");
    }
    return nullptr;
}

char const* MatrixNMSPlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* MatrixNMSPlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* MatrixNMSPlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t MatrixNMSPlugin::getNbOutputs() const noexcept
{
    return 1;
}

void MatrixNMSPlugin::checkShapes(Dims const* dims) const
{
    require(dims != nullptr, "no input shapes");
    Dims const& masks = dims[kMASKS];
    Dims const& scores = dims[kSCORES];
    Dims const& labels = dims[kLABELS];
    require(masks.nbDims == 3, "masks must be [K, H, W], got " + dimsString(masks));
    require(scores.nbDims == 1, "scores must be [K], got " + dimsString(scores));
    require(labels.nbDims == 1, "labels must be [K], got " + dimsString(labels));
    requireEqual(masks.d[0], scores.d[0], "masks K vs scores K");
    requireEqual(labels.d[0], scores.d[0], "labels K vs scores K");
}

kernels::MatrixNmsParams MatrixNMSPlugin::makeParams(Dims const* dims) const
{
    checkShapes(dims);
    Dims const& masks = dims[kMASKS];
    for (int32_t i = 0; i < 3; ++i)
    {
        require(masks.d[i] >= 0, "masks shape must be known, got " + dimsString(masks));
    }
    kernels::MatrixNmsParams p{};
    p.candidates = masks.d[0];
    int64_t pixels = 0;
    require(!__builtin_mul_overflow(masks.d[1], masks.d[2], &pixels), "masks are too large");
    int64_t total = 0;
    int64_t square = 0;
    require(!__builtin_mul_overflow(pixels, p.candidates, &total) && total <= (int64_t{1} << 56),
        "masks are too large");
    require(!__builtin_mul_overflow(p.candidates, p.candidates, &square) && square <= (int64_t{1} << 56),
        "too many candidates");
    p.pixels = pixels;
    p.kernel = mAttributes.kernel;
    p.sigma = mAttributes.sigma;
    return p;
}

int32_t MatrixNMSPlugin::configurePlugin(
    DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        require(in != nullptr && out != nullptr && nbInputs == kNB_INPUTS && nbOutputs == 1,
            "expects 3 inputs (masks, scores, labels) and 1 output");
        Dims const dims[kNB_INPUTS] = {in[kMASKS].desc.dims, in[kSCORES].desc.dims, in[kLABELS].desc.dims};
        checkShapes(dims);
        require(isMaskType(in[kMASKS].desc.type), "masks must be float32 or float16");
        require(in[kSCORES].desc.type == DataType::kFLOAT, "scores must be float32");
        require(in[kLABELS].desc.type == DataType::kINT32, "labels must be int32");
        require(out[0].desc.type == DataType::kFLOAT, "decayed_scores must be float32");
        return 0;
    }
    catch (...)
    {
        logCaught("MatrixNMS::configurePlugin");
    }
    return 1;
}

int32_t MatrixNMSPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        require(outputTypes != nullptr && inputTypes != nullptr && nbInputs == kNB_INPUTS && nbOutputs == 1,
            "expects 3 inputs (masks, scores, labels) and 1 output");
        require(isMaskType(inputTypes[kMASKS]),
            std::string("masks must be float32 or float16, got ") + dataTypeName(inputTypes[kMASKS]));
        require(inputTypes[kSCORES] == DataType::kFLOAT,
            std::string("scores must be float32, got ") + dataTypeName(inputTypes[kSCORES]));
        require(inputTypes[kLABELS] == DataType::kINT32,
            std::string("labels must be int32, got ") + dataTypeName(inputTypes[kLABELS]));
        outputTypes[0] = DataType::kFLOAT; // float32 whatever the mask storage (OPS.md fp16 policy)
        return 0;
    }
    catch (...)
    {
        logCaught("MatrixNMS::getOutputDataTypes");
    }
    return 1;
}

int32_t MatrixNMSPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /* shapeInputs */,
    int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs, IExprBuilder& /* exprBuilder */) noexcept
{
    try
    {
        require(inputs != nullptr && outputs != nullptr && nbInputs == kNB_INPUTS && nbOutputs == 1,
            "expects 3 inputs (masks, scores, labels) and 1 output");
        require(nbShapeInputs == 0, "takes no shape inputs");
        require(inputs[kMASKS].nbDims == 3 && inputs[kSCORES].nbDims == 1 && inputs[kLABELS].nbDims == 1,
            "masks must be [K, H, W], scores and labels [K]");
        outputs[0].nbDims = 1;
        outputs[0].d[0] = inputs[kSCORES].d[0];
        return 0;
    }
    catch (...)
    {
        logCaught("MatrixNMS::getOutputShapes");
    }
    return 1;
}

bool MatrixNMSPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (inOut == nullptr || nbInputs != kNB_INPUTS || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs)
        {
            return false;
        }
        PluginTensorDesc const& d = inOut[pos].desc;
        if (d.format != TensorFormat::kLINEAR)
        {
            return false;
        }
        switch (pos)
        {
        case kMASKS: return isMaskType(d.type);
        case kSCORES: return d.type == DataType::kFLOAT;
        case kLABELS: return d.type == DataType::kINT32;
        default: return d.type == DataType::kFLOAT; // decayed_scores
        }
    }
    catch (...)
    {
        logCaught("MatrixNMS::supportsFormatCombination");
    }
    return false;
}

size_t MatrixNMSPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    try
    {
        require(inputs != nullptr && nbInputs == kNB_INPUTS, "expects 3 inputs");
        Dims const dims[kNB_INPUTS] = {inputs[kMASKS].max, inputs[kSCORES].max, inputs[kLABELS].max};
        // Packed masks, D [K, K] and the K vectors grow with K and H*W: the profile's max bounds every size.
        return kernels::matrixNmsCudaWorkspaceSize(makeParams(dims));
    }
    catch (...)
    {
        logCaught("MatrixNMS::getWorkspaceSize");
    }
    return 0;
}

char const* MatrixNMSPlugin::getTimingCacheID() noexcept
{
    return mDescription.c_str();
}

char const* MatrixNMSPlugin::getMetadataString() noexcept
{
    return mDescription.c_str();
}

int32_t MatrixNMSPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        require(in != nullptr && out != nullptr && nbInputs == kNB_INPUTS && nbOutputs == 1,
            "expects 3 inputs (masks, scores, labels) and 1 output");
        Dims const dims[kNB_INPUTS] = {in[kMASKS].dims, in[kSCORES].dims, in[kLABELS].dims};
        kernels::MatrixNmsParams const p = makeParams(dims);
        require(out[0].dims.nbDims == 1 && out[0].dims.d[0] == p.candidates,
            "decayed_scores is " + dimsString(out[0].dims) + ", expected [" + std::to_string(p.candidates) + "]");
        return 0;
    }
    catch (...)
    {
        logCaught("MatrixNMS::onShapeChange");
    }
    return 1;
}

int32_t MatrixNMSPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /* outputDesc */,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        require(inputDesc != nullptr && inputs != nullptr && outputs != nullptr, "null tensor arrays");
        Dims const dims[kNB_INPUTS] = {inputDesc[kMASKS].dims, inputDesc[kSCORES].dims, inputDesc[kLABELS].dims};
        kernels::MatrixNmsParams const p = makeParams(dims);
        size_t const workspaceBytes = kernels::matrixNmsCudaWorkspaceSize(p);
        auto const* scores = static_cast<float const*>(inputs[kSCORES]);
        auto const* labels = static_cast<int32_t const*>(inputs[kLABELS]);
        auto* out = static_cast<float*>(outputs[0]);
        cudaError_t err = cudaErrorInvalidValue;
        if (inputDesc[kMASKS].type == DataType::kFLOAT)
        {
            err = kernels::launchMatrixNms<float>(p, static_cast<float const*>(inputs[kMASKS]), scores, labels, out,
                workspace, workspaceBytes, stream);
        }
        else if (inputDesc[kMASKS].type == DataType::kHALF)
        {
            err = kernels::launchMatrixNms<kernels::Half>(p, static_cast<kernels::Half const*>(inputs[kMASKS]), scores,
                labels, out, workspace, workspaceBytes, stream);
        }
        else
        {
            fail(std::string("unsupported mask type ") + dataTypeName(inputDesc[kMASKS].type));
        }
        require(err == cudaSuccess, std::string("kernel launch failed: ") + cudaGetErrorString(err));
        return 0;
    }
    catch (...)
    {
        logCaught("MatrixNMS::enqueue");
    }
    return 1;
}

nvinfer1::IPluginV3* MatrixNMSPlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    return clone();
}

PluginFieldCollection const* MatrixNMSPlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized.clear();
        mAttributes.serialize(mSerialized);
        return mSerialized.collection();
    }
    catch (...)
    {
        logCaught("MatrixNMS::getFieldsToSerialize");
    }
    return nullptr;
}

// ---- creator ----

MatrixNMSPluginCreator::MatrixNMSPluginCreator()
{
    // ONNX attribute -> plugin field (the ONNX parser maps STRING to kCHAR with a NUL, FLOAT to kFLOAT32).
    mFieldNames.add("kernel", PluginFieldType::kCHAR, 1);
    mFieldNames.add("sigma", PluginFieldType::kFLOAT32, 1);
}

char const* MatrixNMSPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* MatrixNMSPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* MatrixNMSPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* MatrixNMSPluginCreator::getFieldNames() noexcept
{
    return mFieldNames.collection();
}

nvinfer1::IPluginV3* MatrixNMSPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        require(phase == nvinfer1::TensorRTPhase::kBUILD || phase == nvinfer1::TensorRTPhase::kRUNTIME,
            "unknown TensorRT phase");
        return new MatrixNMSPlugin(MatrixNmsAttributes::fromFields(fc));
    }
    catch (...)
    {
        logCaught((std::string("MatrixNMS createPlugin '") + (name ? name : "") + "'").c_str());
    }
    return nullptr;
}

} // namespace plugin
} // namespace lapmask
