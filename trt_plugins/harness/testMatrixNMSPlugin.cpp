// Harness for lapmask::MatrixNMS v1 without TensorRT's library: creator -> createPlugin from fields -> serialize /
// deserialize round trip -> supportsFormatCombination -> output shapes (our IExprBuilder) -> configure / workspace /
// onShapeChange -> enqueue on device buffers, compared with the CPU build of the kernels (C ABI).
//
//   lapmask_harness_matrix_nms [--host-only]      exit 0 pass, 1 fail, 77 no CUDA device (host checks passed)
#include "harnessCommon.h"

using namespace harness;
using nvinfer1::PluginCapabilityType;
using nvinfer1::TensorRTPhase;

namespace
{

char const* const kNAME = "MatrixNMS";
RecordingLogger* gLog = nullptr;

nvinfer1::IPluginV3* create(nvinfer1::IPluginCreatorV3One* creator, Fields& f, TensorRTPhase phase)
{
    return creator->createPlugin("harness_nms", f.get(), phase);
}

void checkCreator(nvinfer1::IPluginCreatorV3One* creator)
{
    HARNESS_CHECK(std::strcmp(creator->getPluginNamespace(), "lapmask") == 0, "creator namespace is lapmask");
    auto const* names = creator->getFieldNames();
    HARNESS_CHECK(names != nullptr && names->nbFields == 2, "two advertised fields");
    if (names != nullptr && names->nbFields == 2)
    {
        HARNESS_CHECK(std::strcmp(names->fields[0].name, "kernel") == 0
                && names->fields[0].type == nvinfer1::PluginFieldType::kCHAR,
            "field kernel (kCHAR)");
        HARNESS_CHECK(std::strcmp(names->fields[1].name, "sigma") == 0
                && names->fields[1].type == nvinfer1::PluginFieldType::kFLOAT32,
            "field sigma (kFLOAT32)");
    }
    std::vector<Fields> bad(5);
    bad[0].string("kernel", "box");
    bad[1].real("sigma", -1.0F);
    bad[2].real("sigma", std::numeric_limits<float>::infinity());
    bad[3].ints("sigma", {2});
    bad[4].string("kernal", "linear");
    char const* const why[5] = {"kernel must be 'gaussian' or 'linear'", "sigma must be finite and >= 0",
        "sigma must be finite and >= 0", "'sigma' must be FLOAT32 or FLOAT64", "unknown attribute 'kernal'"};
    for (size_t i = 0; i < bad.size(); ++i)
    {
        size_t const mark = gLog->count();
        nvinfer1::IPluginV3* p = create(creator, bad[i], TensorRTPhase::kBUILD);
        HARNESS_CHECK(p == nullptr, std::string("invalid attributes are refused: ") + why[i]);
        HARNESS_CHECK(gLog->loggedSince(mark, why[i]), std::string("the error names the problem: ") + why[i]);
        delete p;
    }
    // A string without the terminating NUL (Python callers) is accepted as well.
    nvinfer1::PluginField field("kernel", "linear", nvinfer1::PluginFieldType::kCHAR, 6);
    nvinfer1::PluginFieldCollection fc{1, &field};
    std::unique_ptr<nvinfer1::IPluginV3> p(creator->createPlugin("raw", &fc, TensorRTPhase::kBUILD));
    HARNESS_CHECK(p != nullptr, "kCHAR without NUL accepted");
}

void checkPlugin(nvinfer1::IPluginCreatorV3One* creator, Fields& f)
{
    std::unique_ptr<nvinfer1::IPluginV3> plugin(create(creator, f, TensorRTPhase::kBUILD));
    HARNESS_CHECK(plugin != nullptr, "createPlugin from fields");
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

    nvinfer1::PluginFieldCollection const* saved = runtime->getFieldsToSerialize();
    std::unique_ptr<nvinfer1::IPluginV3> restored(creator->createPlugin("restored", saved, TensorRTPhase::kRUNTIME));
    HARNESS_CHECK(restored != nullptr, "createPlugin(kRUNTIME) from the serialized fields");
    if (restored)
    {
        auto* r = capability<nvinfer1::IPluginV3OneRuntime>(restored.get(), PluginCapabilityType::kRUNTIME);
        HARNESS_CHECK(sameFields(runtime->getFieldsToSerialize(), r->getFieldsToSerialize()), "round trip");
    }
    std::unique_ptr<nvinfer1::IPluginV3> attached(runtime->attachToContext(nullptr));
    HARNESS_CHECK(attached != nullptr, "attachToContext");

    // Formats: masks fp32 or fp16, scores fp32, labels int32, output fp32; nothing else.
    for (DataType maskType : {DataType::kFLOAT, DataType::kHALF})
    {
        DynamicPluginTensorDesc io[4]{};
        io[0].desc = tensorDesc({4, 2, 2}, maskType);
        io[1].desc = tensorDesc({4}, DataType::kFLOAT);
        io[2].desc = tensorDesc({4}, DataType::kINT32);
        io[3].desc = tensorDesc({4}, DataType::kFLOAT);
        bool all = true;
        for (int32_t pos = 0; pos < 4; ++pos)
        {
            all = all && build->supportsFormatCombination(pos, io, 3, 1);
        }
        HARNESS_CHECK(all, "masks fp32/fp16 + scores fp32 + labels int32 -> fp32 supported");
        DataType out[1];
        DataType const in[3] = {maskType, DataType::kFLOAT, DataType::kINT32};
        HARNESS_CHECK(build->getOutputDataTypes(out, 1, in, 3) == 0 && out[0] == DataType::kFLOAT, "output fp32");
    }
    DynamicPluginTensorDesc io[4]{};
    io[0].desc = tensorDesc({4, 2, 2}, DataType::kUINT8);
    HARNESS_CHECK(!build->supportsFormatCombination(0, io, 3, 1), "uint8 masks refused (TensorRT plugin I/O)");
    io[0].desc.type = DataType::kFLOAT;
    io[1].desc = tensorDesc({4}, DataType::kHALF);
    HARNESS_CHECK(!build->supportsFormatCombination(1, io, 3, 1), "fp16 scores refused");
    io[1].desc.type = DataType::kFLOAT;
    io[2].desc = tensorDesc({4}, DataType::kINT64);
    HARNESS_CHECK(!build->supportsFormatCombination(2, io, 3, 1), "int64 labels refused");
    io[2].desc.type = DataType::kINT32;
    io[3].desc = tensorDesc({4}, DataType::kHALF);
    HARNESS_CHECK(!build->supportsFormatCombination(3, io, 3, 1), "fp16 output refused");
    io[0].desc.format = nvinfer1::TensorFormat::kCHW32;
    HARNESS_CHECK(!build->supportsFormatCombination(0, io, 3, 1), "non-linear format refused");
    HARNESS_CHECK(!build->supportsFormatCombination(0, io, 2, 1), "2 inputs refused");

    // Output shape [K] from scores, constant or not with K.
    for (bool symbolic : {false, true})
    {
        ExprBuilder eb;
        nvinfer1::DimsExprs in[3] = {eb.shape({200, 56, 76}, {symbolic, true, true}), eb.shape({200}, {symbolic}),
            eb.shape({200}, {symbolic})};
        nvinfer1::DimsExprs out[1];
        HARNESS_CHECK(build->getOutputShapes(in, 3, nullptr, 0, out, 1, eb) == 0 && out[0].nbDims == 1
                && ExprBuilder::value(out[0].d[0]) == 200 && out[0].d[0]->isConstant() == !symbolic,
            "output shape [K]");
    }
    DynamicPluginTensorDesc d[4] = {dynamicDesc({200, -1, -1}, {200, 80, 100}, DataType::kHALF),
        dynamicDesc({200}, {200}, DataType::kFLOAT), dynamicDesc({200}, {200}, DataType::kINT32),
        dynamicDesc({200}, {200}, DataType::kFLOAT)};
    HARNESS_CHECK(build->configurePlugin(d, 3, d + 3, 1) == 0, "configurePlugin");
    size_t expected = 0;
    lapmask_matrix_nms_cuda_workspace_size(200, 80 * 100, &expected);
    size_t const ws = build->getWorkspaceSize(d, 3, d + 3, 1);
    HARNESS_CHECK(ws == expected && ws > 0, "workspace " + std::to_string(ws) + " = C ABI " + std::to_string(expected));
    d[2].desc.dims.d[0] = 199;
    HARNESS_CHECK(build->configurePlugin(d, 3, d + 3, 1) != 0, "labels K != scores K refused");

    PluginTensorDesc t[4] = {tensorDesc({5, 3, 3}, DataType::kFLOAT), tensorDesc({5}, DataType::kFLOAT),
        tensorDesc({5}, DataType::kINT32), tensorDesc({5}, DataType::kFLOAT)};
    HARNESS_CHECK(runtime->onShapeChange(t, 3, t + 3, 1) == 0, "onShapeChange");
    t[3].dims.d[0] = 4;
    HARNESS_CHECK(runtime->onShapeChange(t, 3, t + 3, 1) != 0, "wrong output shape refused");
    t[3].dims.d[0] = 5;
    void const* inputs[3] = {};
    void* outputs[1] = {};
    HARNESS_CHECK(runtime->enqueue(t, t + 3, inputs, outputs, nullptr, nullptr) != 0,
        "enqueue without workspace fails cleanly");
}

//! One GPU run against lapmask_matrix_nms_cpu (same fp32 arithmetic; exp may differ by an ulp on device).
void checkEnqueue(nvinfer1::IPluginCreatorV3One* creator, int64_t k, int64_t h, int64_t w, DataType maskType,
    char const* kernel, float sigma, uint32_t seed)
{
    std::mt19937 rng(seed);
    int64_t const pixels = h * w;
    std::vector<float> masks(static_cast<size_t>(k * pixels));
    std::vector<float> scores(static_cast<size_t>(k));
    std::vector<int32_t> labels(static_cast<size_t>(k));
    std::uniform_real_distribution<float> u(0.F, 1.F);
    for (int64_t i = 0; i < k; ++i)
    {
        float const density = i % 7 == 3 ? 0.F : 0.1F + 0.8F * u(rng); // some empty masks
        for (int64_t p = 0; p < pixels; ++p)
        {
            masks[i * pixels + p] = u(rng) < density ? 1.F : 0.F;
        }
        if (i % 5 == 4 && i > 0) // duplicates of the previous mask (IoU 1)
        {
            std::copy(masks.begin() + (i - 1) * pixels, masks.begin() + i * pixels, masks.begin() + i * pixels);
        }
        labels[i] = static_cast<int32_t>(rng() % 3);
        scores[i] = 0.95F - 0.02F * static_cast<float>(i);
    }
    for (int64_t i = k - std::min<int64_t>(k, 4); i < k; ++i)
    {
        scores[i] = -1.F; // invalid candidates sorted last
    }
    bool const half = maskType == DataType::kHALF;
    DeviceBuffer dMasks(masks.size() * (half ? 2 : 4));
    DeviceBuffer dScores(scores.size() * 4);
    DeviceBuffer dLabels(labels.size() * 4);
    DeviceBuffer dOut(scores.size() * 4);
    std::vector<uint16_t> masks16 = toHalf(masks);
    cudaMemcpy(dMasks.get(), half ? static_cast<void const*>(masks16.data()) : masks.data(),
        masks.size() * (half ? 2 : 4), cudaMemcpyHostToDevice);
    cudaMemcpy(dScores.get(), scores.data(), scores.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dLabels.get(), labels.data(), labels.size() * 4, cudaMemcpyHostToDevice);

    Fields f;
    f.string("kernel", kernel).real("sigma", sigma);
    std::unique_ptr<nvinfer1::IPluginV3> plugin(create(creator, f, TensorRTPhase::kRUNTIME));
    auto* build = capability<nvinfer1::IPluginV3OneBuild>(plugin.get(), PluginCapabilityType::kBUILD);
    auto* runtime = capability<nvinfer1::IPluginV3OneRuntime>(plugin.get(), PluginCapabilityType::kRUNTIME);
    PluginTensorDesc t[4] = {tensorDesc({k, h, w}, maskType), tensorDesc({k}, DataType::kFLOAT),
        tensorDesc({k}, DataType::kINT32), tensorDesc({k}, DataType::kFLOAT)};
    DynamicPluginTensorDesc d[4] = {dynamicDesc({k, h, w}, {k, h, w}, maskType),
        dynamicDesc({k}, {k}, DataType::kFLOAT), dynamicDesc({k}, {k}, DataType::kINT32),
        dynamicDesc({k}, {k}, DataType::kFLOAT)};
    DeviceBuffer workspace(build->getWorkspaceSize(d, 3, d + 3, 1));
    HARNESS_CHECK(runtime->onShapeChange(t, 3, t + 3, 1) == 0, "onShapeChange before enqueue");
    cudaStream_t stream = nullptr;
    cudaStreamCreate(&stream);
    void const* inputs[3] = {dMasks.get(), dScores.get(), dLabels.get()};
    void* outputs[1] = {dOut.get()};
    int32_t const status = runtime->enqueue(t, t + 3, inputs, outputs, workspace.get(), stream);
    cudaError_t const err = cudaStreamSynchronize(stream);
    cudaStreamDestroy(stream);
    HARNESS_CHECK(status == 0 && err == cudaSuccess, std::string("enqueue: ") + cudaGetErrorString(err));

    std::vector<float> got(scores.size());
    cudaMemcpy(got.data(), dOut.get(), got.size() * 4, cudaMemcpyDeviceToHost);
    std::vector<float> ref(scores.size());
    int32_t code = 0;
    lapmask_matrix_nms_kernel_from_name(kernel, &code);
    lapmask_status const st = lapmask_matrix_nms_cpu(k, pixels, half ? LAPMASK_DTYPE_FLOAT16 : LAPMASK_DTYPE_FLOAT32,
        half ? static_cast<void const*>(masks16.data()) : masks.data(), scores.data(), labels.data(), code, sigma,
        ref.data());
    HARNESS_CHECK(st == LAPMASK_STATUS_OK, std::string("CPU reference: ") + lapmask_last_error());
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); ++i)
    {
        worst = std::max(worst, std::fabs(double(got[i]) - double(ref[i])) / (1e-6 * (1.0 + std::fabs(ref[i]))));
        if (scores[i] < 0.F)
        {
            HARNESS_CHECK(got[i] == -1.F, "invalid candidates come back unchanged");
        }
    }
    HARNESS_CHECK(worst <= 1.0, std::string("enqueue matches the CPU kernels (") + kernel + ", K "
            + std::to_string(k) + ", " + (half ? "fp16" : "fp32") + " masks; worst error / tol " + std::to_string(worst)
            + ")");
}

} // namespace

int main(int argc, char** argv)
{
    bool const hostOnly = hasFlag(argc, argv, "--host-only");
    gLog = &installLogger();
    nvinfer1::IPluginCreatorV3One* creator = findCreator(kNAME, "1");
    HARNESS_CHECK(creator != nullptr, "getCreators lists MatrixNMS v1 (IPluginCreatorV3One)");
    if (creator == nullptr)
    {
        return finish(kNAME, "");
    }
    checkCreator(creator);
    Fields defaults;
    checkPlugin(creator, defaults);
    Fields linear;
    linear.string("kernel", "linear").real("sigma", 0.5F);
    checkPlugin(creator, linear);
    if (hostOnly)
    {
        return finish(kNAME, "");
    }
    std::string const why = cudaUnavailableReason();
    if (!why.empty())
    {
        return finish(kNAME, why);
    }
    uint32_t seed = 7;
    for (DataType maskType : {DataType::kFLOAT, DataType::kHALF})
    {
        checkEnqueue(creator, 37, 13, 21, maskType, "gaussian", 2.0F, seed++); // 273 px: crosses 64-bit words
        checkEnqueue(creator, 37, 13, 21, maskType, "linear", 2.0F, seed++);
        checkEnqueue(creator, 200, 24, 32, maskType, "gaussian", 2.0F, seed++); // K_pre-sized
        checkEnqueue(creator, 1, 5, 5, maskType, "gaussian", 2.0F, seed++);
        checkEnqueue(creator, 0, 5, 5, maskType, "gaussian", 2.0F, seed++); // no candidates
    }
    return finish(kNAME, "");
}
