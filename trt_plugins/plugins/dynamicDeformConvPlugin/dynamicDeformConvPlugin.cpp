// lapmask::DynamicDeformConv IPluginV3 (contract: OPS.md, lapmask/ops/contract.py DYNAMIC_DEFORM_CONV).
// Shapes: X [B, C, H, W], W [N, C/group, kh, kw], offset [B, og*2*kh*kw, Ho, Wo], B [N], mask [B, og*kh*kw, Ho, Wo]
// -> Y [B, N, Ho, Wo]; T = float32 or float16 for every input and the output (fp32 arithmetic, kernels' policy).
#include "dynamicDeformConvPlugin.h"

#include "launchers_cuda.h"

#include <cuda_runtime_api.h>

#include <sstream>

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IDimensionExpr;
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
constexpr char const* kPLUGIN_NAME{"DynamicDeformConv"};
constexpr char const* kPLUGIN_VERSION{"1"};
//! Not an ONNX attribute: the input count (3-5) a built engine's plugin was configured with, serialized so the
//! runtime plugin knows it even before its first onShapeChange.
constexpr char const* kNUM_INPUTS_FIELD{"lapmask_num_inputs"};

bool isFloatType(DataType t)
{
    return t == DataType::kFLOAT || t == DataType::kHALF;
}

std::string listString(std::vector<int32_t> const& v)
{
    std::ostringstream s;
    s << "[";
    for (size_t i = 0; i < v.size(); ++i)
    {
        s << (i ? "," : "") << v[i];
    }
    s << "]";
    return s.str();
}

//! a * b for element counts, failing beyond 2^56 (shapes come from engines we do not control).
int64_t mulChecked(int64_t a, int64_t b, char const* what)
{
    int64_t r = 0;
    require(!__builtin_mul_overflow(a, b, &r) && r <= (int64_t{1} << 56), std::string(what) + " is too large");
    return r;
}

void requireRank(Dims const& d, int32_t rank, char const* name)
{
    require(d.nbDims == rank,
        std::string(name) + " must have rank " + std::to_string(rank) + ", got " + dimsString(d));
}

void requireEqual(int64_t a, int64_t b, std::string const& what)
{
    if (a >= 0 && b >= 0)
    {
        require(a == b, what + ": " + std::to_string(a) + " != " + std::to_string(b));
    }
}
} // namespace

// ---- attributes ----

DeformConvAttributes DeformConvAttributes::fromFields(PluginFieldCollection const* fc, int32_t* numInputs)
{
    std::vector<std::string> known{"dilations", "group", "kernel_shape", "offset_group", "pads", "strides"};
    if (numInputs != nullptr)
    {
        known.emplace_back(kNUM_INPUTS_FIELD);
    }
    FieldReader r(fc, known);
    DeformConvAttributes a;
    if (numInputs != nullptr)
    {
        *numInputs = r.has(kNUM_INPUTS_FIELD) ? r.integer(kNUM_INPUTS_FIELD) : -1;
        require(*numInputs == -1 || (*numInputs >= DynamicDeformConvPlugin::kMIN_INPUTS
                    && *numInputs <= DynamicDeformConvPlugin::kMAX_INPUTS),
            std::string(kNUM_INPUTS_FIELD) + " must be 3, 4 or 5");
    }
    if (r.has("dilations"))
    {
        a.dilations = r.ints("dilations", 2);
    }
    if (r.has("group"))
    {
        a.group = r.integer("group");
    }
    if (r.has("kernel_shape"))
    {
        a.kernelShape = r.ints("kernel_shape", 2);
    }
    if (r.has("offset_group"))
    {
        a.offsetGroup = r.integer("offset_group");
    }
    if (r.has("pads"))
    {
        a.pads = r.ints("pads", 4);
    }
    if (r.has("strides"))
    {
        a.strides = r.ints("strides", 2);
    }
    a.validate();
    return a;
}

void DeformConvAttributes::validate() const
{
    require(dilations.size() == 2 && dilations[0] >= 1 && dilations[1] >= 1,
        "dilations must be 2 values >= 1, got " + listString(dilations));
    require(strides.size() == 2 && strides[0] >= 1 && strides[1] >= 1,
        "strides must be 2 values >= 1, got " + listString(strides));
    require(pads.size() == 4 && pads[0] >= 0 && pads[1] >= 0 && pads[2] >= 0 && pads[3] >= 0,
        "pads must be 4 values >= 0 (top, left, bottom, right), got " + listString(pads));
    require(group >= 1, "group must be >= 1, got " + std::to_string(group));
    require(offsetGroup >= 1, "offset_group must be >= 1, got " + std::to_string(offsetGroup));
    require(kernelShape.empty() || (kernelShape.size() == 2 && kernelShape[0] >= 1 && kernelShape[1] >= 1),
        "kernel_shape must be 2 values >= 1, got " + listString(kernelShape));
}

void DeformConvAttributes::serialize(FieldWriter& writer) const
{
    writer.ints("dilations", dilations);
    writer.integer("group", group);
    if (!kernelShape.empty())
    {
        writer.ints("kernel_shape", kernelShape); // absent stays absent: "inferred from W" round-trips
    }
    writer.integer("offset_group", offsetGroup);
    writer.ints("pads", pads);
    writer.ints("strides", strides);
}

std::string DeformConvAttributes::describe() const
{
    return "dilations=" + listString(dilations) + ";group=" + std::to_string(group) + ";kernel_shape="
        + (kernelShape.empty() ? std::string("inferred") : listString(kernelShape))
        + ";offset_group=" + std::to_string(offsetGroup) + ";pads=" + listString(pads)
        + ";strides=" + listString(strides);
}

// ---- plugin ----

DynamicDeformConvPlugin::DynamicDeformConvPlugin(DeformConvAttributes attributes, int32_t nbInputs)
    : mAttributes(std::move(attributes))
    , mNbInputs(nbInputs)
{
    mAttributes.validate();
    mDescription = std::string(kPLUGIN_NAME) + "_v" + kPLUGIN_VERSION + ":" + mAttributes.describe();
}

nvinfer1::IPluginCapability* DynamicDeformConvPlugin::getCapabilityInterface(
    nvinfer1::PluginCapabilityType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* DynamicDeformConvPlugin::clone() noexcept
{
    try
    {
        return new DynamicDeformConvPlugin(mAttributes, mNbInputs);
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::clone");
    }
    return nullptr;
}

char const* DynamicDeformConvPlugin::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* DynamicDeformConvPlugin::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* DynamicDeformConvPlugin::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

int32_t DynamicDeformConvPlugin::getNbOutputs() const noexcept
{
    return 1;
}

void DynamicDeformConvPlugin::checkShapes(Dims const* dims, int32_t nbInputs) const
{
    require(dims != nullptr, "no input shapes");
    require(nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS,
        "expects 3 to 5 inputs (X, W, offset, B?, mask?), got " + std::to_string(nbInputs));
    Dims const& x = dims[kX];
    Dims const& w = dims[kW];
    Dims const& off = dims[kOFFSET];
    requireRank(x, 4, "X");
    requireRank(w, 4, "W");
    requireRank(off, 4, "offset");
    auto const& a = mAttributes;
    int64_t const c = x.d[1];
    int64_t const n = w.d[0];
    if (c >= 0)
    {
        require(c >= 1, "X has 0 channels");
        require(c % a.group == 0, "X channels " + std::to_string(c) + " not divisible by group " + std::to_string(a.group));
        require(c % a.offsetGroup == 0,
            "X channels " + std::to_string(c) + " not divisible by offset_group " + std::to_string(a.offsetGroup));
        if (w.d[1] >= 0)
        {
            require(w.d[1] * a.group == c, "W has " + std::to_string(w.d[1]) + " input channels per group, X has "
                    + std::to_string(c) + " channels and group is " + std::to_string(a.group));
        }
    }
    if (n >= 0)
    {
        require(n % a.group == 0, "W has " + std::to_string(n) + " filters, not divisible by group");
    }
    int64_t const kh = a.kernelShape.empty() ? w.d[2] : a.kernelShape[0];
    int64_t const kw = a.kernelShape.empty() ? w.d[3] : a.kernelShape[1];
    if (!a.kernelShape.empty())
    {
        requireEqual(w.d[2], kh, "W kernel height vs kernel_shape[0]");
        requireEqual(w.d[3], kw, "W kernel width vs kernel_shape[1]");
    }
    requireEqual(off.d[0], x.d[0], "offset batch vs X batch");
    int64_t ho = -1;
    int64_t wo = -1;
    if (kh >= 0 && kw >= 0)
    {
        require(kh >= 1 && kw >= 1, "the kernel must be at least 1x1");
        requireEqual(off.d[1], a.offsetGroup * 2 * kh * kw, "offset channels vs offset_group*2*kh*kw");
        if (x.d[2] >= 0)
        {
            ho = kernels::deformOutExtent(x.d[2], a.pads[0], a.pads[2], static_cast<int32_t>(kh), a.strides[0],
                a.dilations[0]);
            require(ho >= 1, "the dilated kernel does not fit the padded input height " + std::to_string(x.d[2]));
        }
        if (x.d[3] >= 0)
        {
            wo = kernels::deformOutExtent(x.d[3], a.pads[1], a.pads[3], static_cast<int32_t>(kw), a.strides[1],
                a.dilations[1]);
            require(wo >= 1, "the dilated kernel does not fit the padded input width " + std::to_string(x.d[3]));
        }
    }
    requireEqual(off.d[2], ho, "offset height vs output height");
    requireEqual(off.d[3], wo, "offset width vs output width");
    if (nbInputs > kBIAS)
    {
        requireRank(dims[kBIAS], 1, "B");
        requireEqual(dims[kBIAS].d[0], n, "B length vs W filters");
    }
    if (nbInputs > kMASK)
    {
        Dims const& m = dims[kMASK];
        requireRank(m, 4, "mask");
        requireEqual(m.d[0], x.d[0], "mask batch vs X batch");
        if (kh >= 0 && kw >= 0)
        {
            requireEqual(m.d[1], a.offsetGroup * kh * kw, "mask channels vs offset_group*kh*kw");
        }
        requireEqual(m.d[2], ho, "mask height vs output height");
        requireEqual(m.d[3], wo, "mask width vs output width");
    }
}

kernels::DeformConvParams DynamicDeformConvPlugin::paramsFrom(Dims const& x, Dims const& w, int32_t nbInputs) const
{
    requireRank(x, 4, "X");
    requireRank(w, 4, "W");
    for (int32_t i = 0; i < 4; ++i)
    {
        require(x.d[i] >= 0 && w.d[i] >= 0, "shapes must be known: X " + dimsString(x) + ", W " + dimsString(w));
    }
    auto const& a = mAttributes;
    kernels::DeformConvParams p{};
    p.batch = x.d[0];
    p.channels = x.d[1];
    p.height = x.d[2];
    p.width = x.d[3];
    p.outChannels = w.d[0];
    p.kernelH = static_cast<int32_t>(a.kernelShape.empty() ? w.d[2] : a.kernelShape[0]);
    p.kernelW = static_cast<int32_t>(a.kernelShape.empty() ? w.d[3] : a.kernelShape[1]);
    p.strideH = a.strides[0];
    p.strideW = a.strides[1];
    p.padTop = a.pads[0];
    p.padLeft = a.pads[1];
    p.padBottom = a.pads[2];
    p.padRight = a.pads[3];
    p.dilationH = a.dilations[0];
    p.dilationW = a.dilations[1];
    p.group = a.group;
    p.offsetGroup = a.offsetGroup;
    p.hasBias = nbInputs > kBIAS;
    p.hasMask = nbInputs > kMASK;
    p.outHeight = kernels::deformOutExtent(p.height, p.padTop, p.padBottom, p.kernelH, p.strideH, p.dilationH);
    p.outWidth = kernels::deformOutExtent(p.width, p.padLeft, p.padRight, p.kernelW, p.strideW, p.dilationW);
    require(p.outHeight >= 1 && p.outWidth >= 1, "the dilated kernel does not fit the padded input");
    // Every tensor and the column workspace must stay far from int64 overflow (kernels index with int64).
    int64_t const taps = mulChecked(p.kernelH, p.kernelW, "kernel");
    int64_t const pixels = mulChecked(p.outHeight, p.outWidth, "output plane");
    mulChecked(mulChecked(mulChecked(p.batch, p.channels, "X"), p.height, "X"), p.width, "X");
    mulChecked(mulChecked(p.channels, taps, "columns"), pixels, "columns");
    mulChecked(mulChecked(mulChecked(p.batch, 2 * p.offsetGroup, "offset"), taps, "offset"), pixels, "offset");
    mulChecked(mulChecked(p.batch, p.outChannels, "Y"), pixels, "Y");
    return p;
}

kernels::DeformConvParams DynamicDeformConvPlugin::makeParams(Dims const* dims, int32_t nbInputs) const
{
    checkShapes(dims, nbInputs);
    return paramsFrom(dims[kX], dims[kW], nbInputs);
}

int32_t DynamicDeformConvPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
    DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        require(in != nullptr && out != nullptr && nbOutputs == 1, "expects 1 output");
        require(nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS, "expects 3 to 5 inputs (X, W, offset, B?, mask?)");
        Dims dims[kMAX_INPUTS];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].desc.dims;
            require(in[i].desc.type == in[0].desc.type, "all inputs must share one type (float32 or float16)");
        }
        require(out[0].desc.type == in[0].desc.type, "Y must have the type of X");
        checkShapes(dims, nbInputs);
        mNbInputs = nbInputs;
        return 0;
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::configurePlugin");
    }
    return 1;
}

int32_t DynamicDeformConvPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        require(outputTypes != nullptr && inputTypes != nullptr && nbOutputs == 1, "expects 1 output");
        require(nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS, "expects 3 to 5 inputs (X, W, offset, B?, mask?)");
        require(isFloatType(inputTypes[kX]),
            std::string("X must be float32 or float16, got ") + dataTypeName(inputTypes[kX]));
        for (int32_t i = 1; i < nbInputs; ++i)
        {
            require(inputTypes[i] == inputTypes[kX], std::string("all inputs must have the type of X (")
                    + dataTypeName(inputTypes[kX]) + "); input " + std::to_string(i) + " is "
                    + dataTypeName(inputTypes[i]));
        }
        outputTypes[0] = inputTypes[kX];
        return 0;
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::getOutputDataTypes");
    }
    return 1;
}

int32_t DynamicDeformConvPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
    DimsExprs const* /* shapeInputs */, int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs,
    IExprBuilder& exprBuilder) noexcept
{
    try
    {
        require(inputs != nullptr && outputs != nullptr && nbOutputs == 1, "expects 1 output");
        require(nbShapeInputs == 0, "takes no shape inputs");
        require(nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS, "expects 3 to 5 inputs (X, W, offset, B?, mask?)");
        DimsExprs const& x = inputs[kX];
        DimsExprs const& w = inputs[kW];
        require(x.nbDims == 4 && w.nbDims == 4 && inputs[kOFFSET].nbDims == 4, "X, W and offset must have rank 4");
        auto constant = [&](int64_t v) {
            IDimensionExpr const* e = exprBuilder.constant(v);
            require(e != nullptr, "IExprBuilder::constant failed");
            return e;
        };
        auto op = [&](nvinfer1::DimensionOperation o, IDimensionExpr const* l, IDimensionExpr const* r) {
            require(l != nullptr && r != nullptr, "missing dimension expression");
            IDimensionExpr const* e = exprBuilder.operation(o, *l, *r);
            require(e != nullptr, "IExprBuilder::operation failed");
            return e;
        };
        auto const& a = mAttributes;
        IDimensionExpr const* kh = a.kernelShape.empty() ? w.d[2] : constant(a.kernelShape[0]);
        IDimensionExpr const* kw = a.kernelShape.empty() ? w.d[3] : constant(a.kernelShape[1]);
        // out = (in + padBegin + padEnd - dil*(k-1) - 1) floordiv stride + 1, as (in + pads + dil - 1 - dil*k).
        auto extent = [&](IDimensionExpr const* in, int32_t padBegin, int32_t padEnd, IDimensionExpr const* k,
                          int32_t stride, int32_t dil) {
            using Op = nvinfer1::DimensionOperation;
            IDimensionExpr const* span = op(Op::kSUB, op(Op::kSUM, in, constant(padBegin + padEnd + dil - 1)),
                op(Op::kPROD, constant(dil), k));
            return op(Op::kSUM, op(Op::kFLOOR_DIV, span, constant(stride)), constant(1));
        };
        outputs[0].nbDims = 4;
        outputs[0].d[0] = x.d[0];
        outputs[0].d[1] = w.d[0];
        outputs[0].d[2] = extent(x.d[2], a.pads[0], a.pads[2], kh, a.strides[0], a.dilations[0]);
        outputs[0].d[3] = extent(x.d[3], a.pads[1], a.pads[3], kw, a.strides[1], a.dilations[1]);
        return 0;
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::getOutputShapes");
    }
    return 1;
}

bool DynamicDeformConvPlugin::supportsFormatCombination(
    int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (inOut == nullptr || nbOutputs != 1 || nbInputs < kMIN_INPUTS || nbInputs > kMAX_INPUTS || pos < 0
            || pos >= nbInputs + nbOutputs)
        {
            return false;
        }
        nvinfer1::PluginTensorDesc const& d = inOut[pos].desc;
        // Dense row-major tensors of one float type (the contract's T) for every input and the output.
        return d.format == TensorFormat::kLINEAR && isFloatType(d.type) && (pos == 0 || d.type == inOut[0].desc.type);
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::supportsFormatCombination");
    }
    return false;
}

size_t DynamicDeformConvPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    try
    {
        require(inputs != nullptr && nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS, "expects 3 to 5 inputs");
        // The fp32 column matrix of one image grows with every dimension, so the profile's max bounds all sizes.
        return kernels::deformConvCudaWorkspaceSize(paramsFrom(inputs[kX].max, inputs[kW].max, nbInputs));
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::getWorkspaceSize");
    }
    return 0;
}

char const* DynamicDeformConvPlugin::getTimingCacheID() noexcept
{
    return mDescription.c_str();
}

char const* DynamicDeformConvPlugin::getMetadataString() noexcept
{
    return mDescription.c_str();
}

int32_t DynamicDeformConvPlugin::onShapeChange(
    PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* out, int32_t nbOutputs) noexcept
{
    try
    {
        require(in != nullptr && out != nullptr && nbOutputs == 1, "expects 1 output");
        require(nbInputs >= kMIN_INPUTS && nbInputs <= kMAX_INPUTS, "expects 3 to 5 inputs (X, W, offset, B?, mask?)");
        Dims dims[kMAX_INPUTS];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        kernels::DeformConvParams const p = makeParams(dims, nbInputs);
        Dims const& y = out[0].dims;
        require(y.nbDims == 4 && y.d[0] == p.batch && y.d[1] == p.outChannels && y.d[2] == p.outHeight
                && y.d[3] == p.outWidth,
            "Y is " + dimsString(y) + ", expected [" + std::to_string(p.batch) + ", " + std::to_string(p.outChannels)
                + ", " + std::to_string(p.outHeight) + ", " + std::to_string(p.outWidth) + "]");
        mNbInputs = nbInputs;
        return 0;
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::onShapeChange");
    }
    return 1;
}

int32_t DynamicDeformConvPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /* outputDesc */,
    void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        require(inputDesc != nullptr && inputs != nullptr && outputs != nullptr, "null tensor arrays");
        require(mNbInputs >= kMIN_INPUTS, "enqueue before configurePlugin/onShapeChange");
        Dims dims[kMAX_INPUTS];
        for (int32_t i = 0; i < mNbInputs; ++i)
        {
            dims[i] = inputDesc[i].dims;
        }
        kernels::DeformConvParams p = makeParams(dims, mNbInputs);
        // A null optional input (B or mask) means "absent", as in the C ABI.
        void const* bias = p.hasBias ? inputs[kBIAS] : nullptr;
        void const* mask = p.hasMask ? inputs[kMASK] : nullptr;
        p.hasBias = bias != nullptr;
        p.hasMask = mask != nullptr;
        size_t const workspaceBytes = kernels::deformConvCudaWorkspaceSize(p);
        cudaError_t err = cudaErrorInvalidValue;
        if (inputDesc[kX].type == DataType::kFLOAT)
        {
            using T = float;
            err = kernels::launchDeformConv<T>(p, static_cast<T const*>(inputs[kX]), static_cast<T const*>(inputs[kW]),
                static_cast<T const*>(inputs[kOFFSET]), static_cast<T const*>(mask), static_cast<T const*>(bias),
                static_cast<T*>(outputs[0]), workspace, workspaceBytes, stream);
        }
        else if (inputDesc[kX].type == DataType::kHALF)
        {
            using T = kernels::Half;
            err = kernels::launchDeformConv<T>(p, static_cast<T const*>(inputs[kX]), static_cast<T const*>(inputs[kW]),
                static_cast<T const*>(inputs[kOFFSET]), static_cast<T const*>(mask), static_cast<T const*>(bias),
                static_cast<T*>(outputs[0]), workspace, workspaceBytes, stream);
        }
        else
        {
            fail(std::string("unsupported type ") + dataTypeName(inputDesc[kX].type));
        }
        require(err == cudaSuccess, std::string("kernel launch failed: ") + cudaGetErrorString(err));
        return 0;
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::enqueue");
    }
    return 1;
}

nvinfer1::IPluginV3* DynamicDeformConvPlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    return clone(); // no per-context resources: the workspace comes from TensorRT
}

PluginFieldCollection const* DynamicDeformConvPlugin::getFieldsToSerialize() noexcept
{
    try
    {
        mSerialized.clear();
        mAttributes.serialize(mSerialized);
        if (mNbInputs >= kMIN_INPUTS)
        {
            mSerialized.integer(kNUM_INPUTS_FIELD, mNbInputs);
        }
        return mSerialized.collection();
    }
    catch (...)
    {
        logCaught("DynamicDeformConv::getFieldsToSerialize");
    }
    return nullptr;
}

// ---- creator ----

DynamicDeformConvPluginCreator::DynamicDeformConvPluginCreator()
{
    // ONNX attribute -> plugin field (the ONNX parser maps INTS/INT to kINT32 and FLOAT to kFLOAT32).
    mFieldNames.add("dilations", PluginFieldType::kINT32, 2);
    mFieldNames.add("group", PluginFieldType::kINT32, 1);
    mFieldNames.add("kernel_shape", PluginFieldType::kINT32, 2);
    mFieldNames.add("offset_group", PluginFieldType::kINT32, 1);
    mFieldNames.add("pads", PluginFieldType::kINT32, 4);
    mFieldNames.add("strides", PluginFieldType::kINT32, 2);
}

char const* DynamicDeformConvPluginCreator::getPluginName() const noexcept
{
    return kPLUGIN_NAME;
}

char const* DynamicDeformConvPluginCreator::getPluginVersion() const noexcept
{
    return kPLUGIN_VERSION;
}

char const* DynamicDeformConvPluginCreator::getPluginNamespace() const noexcept
{
    return kPLUGIN_NAMESPACE;
}

PluginFieldCollection const* DynamicDeformConvPluginCreator::getFieldNames() noexcept
{
    return mFieldNames.collection();
}

nvinfer1::IPluginV3* DynamicDeformConvPluginCreator::createPlugin(
    char const* name, PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept
{
    try
    {
        require(phase == nvinfer1::TensorRTPhase::kBUILD || phase == nvinfer1::TensorRTPhase::kRUNTIME,
            "unknown TensorRT phase");
        if (phase == nvinfer1::TensorRTPhase::kRUNTIME)
        {
            int32_t nbInputs = -1;
            DeformConvAttributes attributes = DeformConvAttributes::fromFields(fc, &nbInputs);
            return new DynamicDeformConvPlugin(std::move(attributes), nbInputs);
        }
        return new DynamicDeformConvPlugin(DeformConvAttributes::fromFields(fc));
    }
    catch (...)
    {
        logCaught((std::string("DynamicDeformConv createPlugin '") + (name ? name : "") + "'").c_str());
    }
    return nullptr;
}

} // namespace plugin
} // namespace lapmask
