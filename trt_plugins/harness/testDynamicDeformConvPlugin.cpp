// Harness for lapmask::DynamicDeformConv v1 without TensorRT's library: creator -> createPlugin from fields ->
// serialize/deserialize round trip -> supportsFormatCombination -> output shapes (our IExprBuilder) -> configure /
// workspace / onShapeChange -> enqueue on device buffers, compared with the CPU build of the kernels (C ABI, fp64).
//
//   lapmask_harness_deform_conv [--host-only]     exit 0 pass, 1 fail, 77 no CUDA device (host checks passed)
#include "harnessCommon.h"

using namespace harness;
using nvinfer1::PluginCapabilityType;
using nvinfer1::TensorRTPhase;

namespace
{

char const* const kNAME = "DynamicDeformConv";
RecordingLogger* gLog = nullptr;

//! One test configuration: attributes and shapes (X [B, C, H, W], W [N, C/group, kh, kw]).
struct Case
{
    std::vector<int32_t> pads{1, 1, 1, 1};
    std::vector<int32_t> strides{1, 1};
    std::vector<int32_t> dilations{1, 1};
    int32_t group{1};
    int32_t offsetGroup{1};
    bool kernelShapeAttr{true};
    int64_t batch{1}, channels{8}, height{13}, width{17}, filters{5}, kh{3}, kw{3};
    int32_t nbInputs{5};

    Fields fields() const
    {
        Fields f;
        f.ints("pads", pads).ints("strides", strides).ints("dilations", dilations).ints("group", {group});
        f.ints("offset_group", {offsetGroup});
        if (kernelShapeAttr)
        {
            f.ints("kernel_shape", {static_cast<int32_t>(kh), static_cast<int32_t>(kw)});
        }
        return f;
    }
    lapmask_deform_conv_desc desc() const
    {
        lapmask_deform_conv_desc d;
        lapmask_deform_conv_desc_init(&d);
        d.batch = batch;
        d.channels = channels;
        d.height = height;
        d.width = width;
        d.out_channels = filters;
        d.kernel_h = static_cast<int32_t>(kh);
        d.kernel_w = static_cast<int32_t>(kw);
        d.stride_h = strides[0];
        d.stride_w = strides[1];
        d.pad_top = pads[0];
        d.pad_left = pads[1];
        d.pad_bottom = pads[2];
        d.pad_right = pads[3];
        d.dilation_h = dilations[0];
        d.dilation_w = dilations[1];
        d.group = group;
        d.offset_group = offsetGroup;
        return d;
    }
    //! Shapes of X, W, offset, B, mask (first nbInputs) and Y; Y from the C ABI's output-size rule.
    std::vector<std::vector<int64_t>> shapes() const
    {
        lapmask_deform_conv_desc const d = desc();
        int64_t ho = 0, wo = 0;
        lapmask_deform_conv_output_size(&d, &ho, &wo);
        int64_t const taps = kh * kw;
        std::vector<std::vector<int64_t>> s = {{batch, channels, height, width}, {filters, channels / group, kh, kw},
            {batch, offsetGroup * 2 * taps, ho, wo}, {filters}, {batch, offsetGroup * taps, ho, wo}};
        s.resize(static_cast<size_t>(nbInputs));
        s.push_back({batch, filters, ho, wo});
        return s;
    }
};

nvinfer1::IPluginV3* create(nvinfer1::IPluginCreatorV3One* creator, Fields& f, TensorRTPhase phase)
{
    return creator->createPlugin("harness_deform", f.get(), phase);
}

void checkCreator(nvinfer1::IPluginCreatorV3One* creator)
{
    HARNESS_CHECK(std::strcmp(creator->getPluginNamespace(), "lapmask") == 0, "creator namespace is lapmask");
    auto const* names = creator->getFieldNames();
    std::vector<std::string> const expected{"dilations", "group", "kernel_shape", "offset_group", "pads", "strides"};
    HARNESS_CHECK(names != nullptr && names->nbFields == 6, "six advertised fields");
    for (int32_t i = 0; names != nullptr && i < names->nbFields && i < 6; ++i)
    {
        HARNESS_CHECK(expected[i] == names->fields[i].name, std::string("field ") + expected[i]);
        HARNESS_CHECK(names->fields[i].type == nvinfer1::PluginFieldType::kINT32, "integer fields are kINT32");
    }
    // Bad attributes: nullptr, never a crash or an exception.
    std::vector<Fields> bad(6);
    bad[0].ints("group", {0});
    bad[1].ints("pads", {1, 1, 1});
    bad[2].ints("padding", {1, 1, 1, 1});
    bad[3].real("group", 1.0F);
    bad[4].ints("kernel_shape", {0, 3});
    bad[5].ints("strides", {1, -1});
    char const* const why[6] = {"group must be >= 1", "'pads' must have 4 values", "unknown attribute 'padding'",
        "'group' must be INT32 or INT64", "kernel_shape must be 2 values >= 1", "strides must be 2 values >= 1"};
    for (size_t i = 0; i < bad.size(); ++i)
    {
        size_t const mark = gLog->count();
        nvinfer1::IPluginV3* p = create(creator, bad[i], TensorRTPhase::kBUILD);
        HARNESS_CHECK(p == nullptr, std::string("invalid attributes are refused: ") + why[i]);
        HARNESS_CHECK(gLog->loggedSince(mark, why[i]), std::string("the error names the problem: ") + why[i]);
        delete p;
    }
    Fields wide;
    wide.ints64("pads", {1, 1, 1, 1}).ints64("group", {1});
    std::unique_ptr<nvinfer1::IPluginV3> p(create(creator, wide, TensorRTPhase::kBUILD));
    HARNESS_CHECK(p != nullptr, "INT64 fields are accepted");
}

void checkIdentityAndRoundTrip(nvinfer1::IPluginCreatorV3One* creator, Case const& c)
{
    Fields f = c.fields();
    std::unique_ptr<nvinfer1::IPluginV3> plugin(create(creator, f, TensorRTPhase::kBUILD));
    HARNESS_CHECK(plugin != nullptr, "createPlugin from fields");
    if (!plugin)
    {
        return;
    }
    auto* core = capability<nvinfer1::IPluginV3OneCore>(plugin.get(), PluginCapabilityType::kCORE);
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    auto* runtime = capability<nvinfer1::IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    HARNESS_CHECK(core && build && runtime, "core, build and runtime capabilities");
    if (!core || !build || !runtime)
    {
        return;
    }
    HARNESS_CHECK(std::strcmp(core->getPluginName(), kNAME) == 0 && std::strcmp(core->getPluginVersion(), "1") == 0
            && std::strcmp(core->getPluginNamespace(), "lapmask") == 0,
        "plugin identity matches the creator");
    HARNESS_CHECK(build->getNbOutputs() == 1, "one output");

    // Serialize -> createPlugin(kRUNTIME) -> serialize is a fixed point, including an absent kernel_shape.
    nvinfer1::PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    HARNESS_CHECK(saved != nullptr, "getFieldsToSerialize");
    std::unique_ptr<nvinfer1::IPluginV3> restored(creator->createPlugin("restored", saved, TensorRTPhase::kRUNTIME));
    HARNESS_CHECK(restored != nullptr, "createPlugin(kRUNTIME) from the serialized fields");
    if (restored)
    {
        auto* r = capability<nvinfer1::IPluginV3OneRuntime>(restored.get(), PluginCapabilityType::kRUNTIME);
        HARNESS_CHECK(sameFields(runtime->getFieldsToSerialize(), r->getFieldsToSerialize()),
            "serialized fields survive the round trip");
        bool hasKernelShape = false;
        auto const* fc = r->getFieldsToSerialize();
        for (int32_t i = 0; i < fc->nbFields; ++i)
        {
            hasKernelShape = hasKernelShape || std::strcmp(fc->fields[i].name, "kernel_shape") == 0;
        }
        HARNESS_CHECK(hasKernelShape == c.kernelShapeAttr, "kernel_shape stays present/absent");
    }
    std::unique_ptr<nvinfer1::IPluginV3> cloned(plugin->clone());
    std::unique_ptr<nvinfer1::IPluginV3> attached(runtime->attachToContext(nullptr));
    HARNESS_CHECK(cloned && attached, "clone and attachToContext");
    if (cloned && attached)
    {
        auto* a = capability<nvinfer1::IPluginV3OneRuntime>(attached.get(), PluginCapabilityType::kRUNTIME);
        HARNESS_CHECK(sameFields(runtime->getFieldsToSerialize(), a->getFieldsToSerialize()), "clone keeps attributes");
    }
}

void checkFormats(nvinfer1::IPluginV3OneBuild* build)
{
    HARNESS_CHECK(build != nullptr, "plugin with default attributes");
    if (build == nullptr)
    {
        return;
    }
    for (int32_t nbIn = 3; nbIn <= 5; ++nbIn)
    {
        for (DataType t : {DataType::kFLOAT, DataType::kHALF})
        {
            std::vector<DynamicPluginTensorDesc> io(static_cast<size_t>(nbIn + 1));
            bool all = true;
            for (int32_t pos = 0; pos <= nbIn; ++pos)
            {
                io[pos].desc = tensorDesc({1, 1, 1, 1}, t);
                all = all && build->supportsFormatCombination(pos, io.data(), nbIn, 1);
            }
            HARNESS_CHECK(all, std::string("all-") + (t == DataType::kFLOAT ? "fp32" : "fp16") + " with "
                    + std::to_string(nbIn) + " inputs is supported");
            io[1].desc.type = t == DataType::kFLOAT ? DataType::kHALF : DataType::kFLOAT;
            HARNESS_CHECK(!build->supportsFormatCombination(1, io.data(), nbIn, 1), "mixed types are refused");
            io[0].desc.format = nvinfer1::TensorFormat::kCHW32;
            HARNESS_CHECK(!build->supportsFormatCombination(0, io.data(), nbIn, 1), "non-linear format refused");
        }
    }
    std::vector<DynamicPluginTensorDesc> io(7);
    io[0].desc = tensorDesc({1, 1, 1, 1}, DataType::kINT32);
    HARNESS_CHECK(!build->supportsFormatCombination(0, io.data(), 5, 1), "int32 X is refused");
    io[0].desc = tensorDesc({1, 1, 1, 1}, DataType::kFLOAT);
    HARNESS_CHECK(!build->supportsFormatCombination(0, io.data(), 6, 1), "6 inputs are refused");
    HARNESS_CHECK(!build->supportsFormatCombination(0, io.data(), 2, 1), "2 inputs are refused");
    HARNESS_CHECK(!build->supportsFormatCombination(6, io.data(), 5, 1), "position out of range is refused");

    DataType out[1];
    DataType const f32[5] = {DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
    DataType const f16[5] = {DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF, DataType::kHALF};
    DataType const mixed[5] = {DataType::kHALF, DataType::kFLOAT, DataType::kHALF, DataType::kHALF, DataType::kHALF};
    DataType const ints[3] = {DataType::kINT32, DataType::kINT32, DataType::kINT32};
    HARNESS_CHECK(build->getOutputDataTypes(out, 1, f32, 5) == 0 && out[0] == DataType::kFLOAT, "fp32 -> fp32");
    HARNESS_CHECK(build->getOutputDataTypes(out, 1, f16, 3) == 0 && out[0] == DataType::kHALF, "fp16 -> fp16");
    HARNESS_CHECK(build->getOutputDataTypes(out, 1, mixed, 5) != 0, "mixed input types are an error");
    HARNESS_CHECK(build->getOutputDataTypes(out, 1, ints, 3) != 0, "int32 inputs are an error");
}

void checkShapes(nvinfer1::IPluginCreatorV3One* creator, Case const& c)
{
    Fields f = c.fields();
    std::unique_ptr<nvinfer1::IPluginV3> plugin(create(creator, f, TensorRTPhase::kBUILD));
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    auto* runtime = capability<nvinfer1::IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    HARNESS_CHECK(build && runtime, "plugin for the shape checks");
    if (!build || !runtime)
    {
        return;
    }
    auto const s = c.shapes();
    auto const& y = s.back();
    int32_t const n = c.nbInputs;
    for (bool symbolic : {false, true})
    {
        ExprBuilder eb;
        std::vector<nvinfer1::DimsExprs> in;
        for (int32_t i = 0; i < n; ++i)
        {
            // Symbolic: batch, H and W (X and offset/mask) are runtime dimensions, as in a dynamic-shape engine.
            std::vector<bool> rt(s[i].size(), false);
            if (symbolic && s[i].size() == 4 && i != 1)
            {
                rt = {true, false, true, true};
            }
            in.push_back(eb.shape(s[i], rt));
        }
        nvinfer1::DimsExprs out[1];
        int32_t const status = build->getOutputShapes(in.data(), n, nullptr, 0, out, 1, eb);
        HARNESS_CHECK(status == 0 && out[0].nbDims == 4, "getOutputShapes");
        if (status != 0)
        {
            continue;
        }
        for (int32_t k = 0; k < 4; ++k)
        {
            HARNESS_CHECK(ExprBuilder::value(out[0].d[k]) == y[k], "output dim " + std::to_string(k) + " = "
                    + std::to_string(ExprBuilder::value(out[0].d[k])) + ", C ABI says " + std::to_string(y[k]));
        }
        HARNESS_CHECK(out[0].d[1]->isConstant(), "N (from W) stays a build-time constant");
        HARNESS_CHECK(out[0].d[2]->isConstant() == !symbolic && out[0].d[3]->isConstant() == !symbolic,
            "Ho/Wo are constant exactly when H/W are");
    }

    // configurePlugin with runtime (-1) H/W and batch, then with inconsistent channels.
    std::vector<DynamicPluginTensorDesc> io;
    for (int32_t i = 0; i <= n; ++i)
    {
        std::vector<int64_t> wild = s[i];
        if (wild.size() == 4 && i != 1)
        {
            wild[0] = wild[2] = wild[3] = -1;
        }
        io.push_back(dynamicDesc(wild, s[i], DataType::kFLOAT));
    }
    HARNESS_CHECK(build->configurePlugin(io.data(), n, io.data() + n, 1) == 0, "configurePlugin (runtime dims)");
    // The configured input count is serialized (a runtime plugin knows it before any onShapeChange) ...
    nvinfer1::PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    int32_t savedInputs = -1;
    for (int32_t i = 0; saved != nullptr && i < saved->nbFields; ++i)
    {
        if (std::strcmp(saved->fields[i].name, "lapmask_num_inputs") == 0)
        {
            savedInputs = *static_cast<int32_t const*>(saved->fields[i].data);
        }
    }
    HARNESS_CHECK(savedInputs == n, "the configured input count is serialized");
    std::unique_ptr<nvinfer1::IPluginV3> restored(creator->createPlugin("restored", saved, TensorRTPhase::kRUNTIME));
    // ... but is no build-time attribute.
    std::unique_ptr<nvinfer1::IPluginV3> notBuild(creator->createPlugin("x", saved, TensorRTPhase::kBUILD));
    HARNESS_CHECK(restored != nullptr && notBuild == nullptr, "lapmask_num_inputs is a runtime-phase field only");
    size_t ws = build->getWorkspaceSize(io.data(), n, io.data() + n, 1);
    lapmask_deform_conv_desc const d = c.desc();
    size_t expected = 0;
    lapmask_deform_conv_cuda_workspace_size(&d, LAPMASK_DTYPE_FLOAT32, &expected);
    HARNESS_CHECK(ws == expected && ws > 0, "workspace " + std::to_string(ws) + " = C ABI " + std::to_string(expected));
    auto badIo = io;
    badIo[2].desc.dims.d[1] += 2; // offset channels != offset_group * 2 * kh * kw
    size_t const mark = gLog->count();
    HARNESS_CHECK(build->configurePlugin(badIo.data(), n, badIo.data() + n, 1) != 0, "bad offset channels refused");
    HARNESS_CHECK(gLog->loggedSince(mark, "offset channels vs offset_group*2*kh*kw"), "offset error is explained");
    badIo = io;
    badIo[1].desc.dims.d[1] += 1; // W input channels != C / group
    HARNESS_CHECK(build->configurePlugin(badIo.data(), n, badIo.data() + n, 1) != 0, "bad W channels refused");

    std::vector<PluginTensorDesc> desc;
    for (int32_t i = 0; i <= n; ++i)
    {
        desc.push_back(tensorDesc(s[i], DataType::kFLOAT));
    }
    HARNESS_CHECK(runtime->onShapeChange(desc.data(), n, desc.data() + n, 1) == 0, "onShapeChange");
    auto badDesc = desc;
    badDesc[n].dims.d[2] += 1;
    HARNESS_CHECK(runtime->onShapeChange(badDesc.data(), n, badDesc.data() + n, 1) != 0, "wrong Y shape refused");
    // No CUDA work happens when arguments are wrong: a null workspace for a non-empty problem is an error.
    void const* inputs[5] = {};
    void* outputs[1] = {};
    HARNESS_CHECK(runtime->enqueue(desc.data(), desc.data() + n, inputs, outputs, nullptr, nullptr) != 0,
        "enqueue without workspace fails cleanly");
    auto* restoredRuntime = capability<nvinfer1::IPluginV3OneRuntime>(restored.get(), PluginCapabilityType::kRUNTIME);
    size_t const mark2 = gLog->count();
    HARNESS_CHECK(restoredRuntime && restoredRuntime->enqueue(desc.data(), desc.data() + n, inputs, outputs, nullptr,
                                         nullptr) != 0,
        "restored plugin reaches the kernel launcher (then fails: no workspace)");
    HARNESS_CHECK(gLog->loggedSince(mark2, "kernel launch failed"), "restored plugin knows its input count");
    std::unique_ptr<nvinfer1::IPluginV3> fresh(create(creator, f, TensorRTPhase::kRUNTIME));
    auto* freshRuntime = capability<nvinfer1::IPluginV3OneRuntime>(fresh.get(), PluginCapabilityType::kRUNTIME);
    HARNESS_CHECK(freshRuntime && freshRuntime->enqueue(desc.data(), desc.data() + n, inputs, outputs, nullptr,
                                      nullptr) != 0,
        "enqueue before onShapeChange fails cleanly");
}

//! Run one case on the GPU in `type` and compare with the fp64 CPU kernels on the same (type-rounded) inputs.
void checkEnqueue(nvinfer1::IPluginCreatorV3One* creator, Case const& c, DataType type, uint32_t seed)
{
    std::mt19937 rng(seed);
    auto const s = c.shapes();
    int32_t const n = c.nbInputs;
    bool const half = type == DataType::kHALF;
    std::vector<std::vector<float>> host(static_cast<size_t>(n));
    std::pair<float, float> const ranges[5] = {{-1.F, 1.F}, {-0.5F, 0.5F}, {-2.5F, 2.5F}, {-0.2F, 0.2F}, {0.F, 1.F}};
    for (int32_t i = 0; i < n; ++i)
    {
        host[i] = uniform(static_cast<size_t>(volume(s[i])), ranges[i].first, ranges[i].second, rng);
        if (half)
        {
            host[i] = roundToHalf(host[i]); // the reference sees exactly what the fp16 tensors hold
        }
    }
    size_t const elem = half ? 2 : 4;
    std::vector<std::unique_ptr<DeviceBuffer>> dev;
    std::vector<void const*> inputs;
    for (int32_t i = 0; i < n; ++i)
    {
        dev.push_back(std::make_unique<DeviceBuffer>(host[i].size() * elem));
        void const* src = host[i].data();
        std::vector<uint16_t> h;
        if (half)
        {
            h = toHalf(host[i]);
            src = h.data();
        }
        cudaMemcpy(dev.back()->get(), src, host[i].size() * elem, cudaMemcpyHostToDevice);
        inputs.push_back(dev.back()->get());
    }
    int64_t const outCount = volume(s.back());
    DeviceBuffer out(static_cast<size_t>(outCount) * elem);
    Fields f = c.fields();
    std::unique_ptr<nvinfer1::IPluginV3> plugin(create(creator, f, TensorRTPhase::kRUNTIME));
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    auto* runtime = capability<nvinfer1::IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    std::vector<PluginTensorDesc> desc;
    std::vector<DynamicPluginTensorDesc> dyn;
    for (int32_t i = 0; i <= n; ++i)
    {
        desc.push_back(tensorDesc(s[i], type));
        dyn.push_back(dynamicDesc(s[i], s[i], type));
    }
    DeviceBuffer workspace(build->getWorkspaceSize(dyn.data(), n, dyn.data() + n, 1));
    cudaStream_t stream = nullptr;
    cudaStreamCreate(&stream);
    void* outputs[1] = {out.get()};
    HARNESS_CHECK(runtime->onShapeChange(desc.data(), n, desc.data() + n, 1) == 0, "onShapeChange before enqueue");
    int32_t const status = runtime->enqueue(desc.data(), desc.data() + n, inputs.data(), outputs, workspace.get(),
        stream);
    cudaError_t const err = cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    HARNESS_CHECK(status == 0 && err == cudaSuccess, std::string("enqueue: status ") + std::to_string(status) + ", "
            + cudaGetErrorString(err));

    std::vector<float> got(static_cast<size_t>(outCount));
    if (half)
    {
        std::vector<uint16_t> h(got.size());
        cudaMemcpy(h.data(), out.get(), h.size() * 2, cudaMemcpyDeviceToHost);
        got = fromHalf(h);
    }
    else
    {
        cudaMemcpy(got.data(), out.get(), got.size() * 4, cudaMemcpyDeviceToHost);
    }
    std::vector<std::vector<double>> h64(5);
    for (int32_t i = 0; i < n; ++i)
    {
        h64[i].assign(host[i].begin(), host[i].end());
    }
    std::vector<double> ref(got.size());
    lapmask_deform_conv_desc const d = c.desc();
    lapmask_status const st = lapmask_deform_conv_cpu(&d, LAPMASK_DTYPE_FLOAT64, h64[0].data(), h64[1].data(),
        h64[2].data(), n > 4 ? h64[4].data() : nullptr, n > 3 ? h64[3].data() : nullptr, ref.data());
    HARNESS_CHECK(st == LAPMASK_STATUS_OK, std::string("CPU reference: ") + lapmask_last_error());
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i)
    {
        // fp32: accumulation-order noise; fp16: the output is rounded once, so at most 1 fp16 ulp (2^-10 relative)
        double const tol = half ? std::ldexp(std::max(std::fabs(ref[i]), std::ldexp(1.0, -14)), -10) + 1e-6
                                : 1e-5 * (1.0 + std::fabs(ref[i]));
        worst = std::max(worst, std::fabs(got[i] - ref[i]) / tol);
    }
    HARNESS_CHECK(worst <= 1.0, std::string(half ? "fp16" : "fp32") + " enqueue matches the fp64 CPU kernels "
            "(worst error / tolerance = " + std::to_string(worst) + ", " + std::to_string(n) + " inputs)");
}

std::vector<Case> cases()
{
    std::vector<Case> out(4);
    out[1].nbInputs = 3; // no bias, no mask
    out[2].nbInputs = 4; // bias, no mask
    Case& g = out[3];    // everything non-default: stride, dilation, asymmetric pads, groups, batch, 3x2 kernel
    g.pads = {0, 1, 2, 1};
    g.strides = {2, 1};
    g.dilations = {2, 1};
    g.group = 2;
    g.offsetGroup = 2;
    g.kernelShapeAttr = false;
    g.batch = 2;
    g.channels = 12;
    g.height = 11;
    g.width = 9;
    g.filters = 6;
    g.kh = 3;
    g.kw = 2;
    return out;
}

} // namespace

int main(int argc, char** argv)
{
    bool const hostOnly = hasFlag(argc, argv, "--host-only");
    gLog = &installLogger();
    nvinfer1::IPluginCreatorV3One* creator = findCreator(kNAME, "1");
    HARNESS_CHECK(creator != nullptr, "getCreators lists DynamicDeformConv v1 (IPluginCreatorV3One)");
    if (creator == nullptr)
    {
        return finish(kNAME, "");
    }
    checkCreator(creator);
    Fields defaults;
    std::unique_ptr<nvinfer1::IPluginV3> plain(creator->createPlugin("defaults", defaults.get(), TensorRTPhase::kBUILD));
    checkFormats(capability<nvinfer1::IPluginV3OneBuild>(plain.get(), PluginCapabilityType::kBUILD));
    for (Case const& c : cases())
    {
        checkIdentityAndRoundTrip(creator, c);
        checkShapes(creator, c);
    }
    if (hostOnly)
    {
        return finish(kNAME, "");
    }
    std::string const why = cudaUnavailableReason();
    if (!why.empty())
    {
        return finish(kNAME, why);
    }
    uint32_t seed = 1;
    for (Case const& c : cases())
    {
        checkEnqueue(creator, c, DataType::kFLOAT, seed++);
        checkEnqueue(creator, c, DataType::kHALF, seed++);
    }
    Case empty; // N = 0 instances: a valid, empty output
    empty.filters = 0;
    checkEnqueue(creator, empty, DataType::kFLOAT, seed++);
    return finish(kNAME, "");
}
