// lapmask::DynamicDeformConv version 1 (OPS.md): modulated deformable convolution whose weights are a runtime
// tensor, with ONNX DeformConv-19 inputs (X, W, offset, B?, mask?) and attributes. IPluginV3 (OneCore, OneBuild,
// OneRuntime); enqueue unpacks the tensor descriptors and calls lapmask::kernels::launchDeformConv.
#pragma once

#include "../common/pluginCommon.h"

#include "deform_sampling.h"

#include <string>
#include <vector>

namespace lapmask
{
namespace plugin
{

//! DeformConv-19 attributes with the contract's defaults (lapmask/ops/contract.py DYNAMIC_DEFORM_CONV).
struct DeformConvAttributes
{
    std::vector<int32_t> dilations{1, 1};
    int32_t group{1};
    std::vector<int32_t> kernelShape{}; //!< empty = inferred from W (the attribute is optional)
    int32_t offsetGroup{1};
    std::vector<int32_t> pads{0, 0, 0, 0}; //!< (top, left, bottom, right)
    std::vector<int32_t> strides{1, 1};

    //! Parse and validate (throws PluginError with the offending attribute named). With `numInputs` (runtime phase
    //! only) the serialized input count "lapmask_num_inputs" is accepted and returned there (-1 when absent).
    static DeformConvAttributes fromFields(nvinfer1::PluginFieldCollection const* fc, int32_t* numInputs = nullptr);
    void validate() const;
    void serialize(FieldWriter& writer) const;
    //! "dilations=[1,1] group=1 ..." (metadata string and timing-cache id).
    std::string describe() const;
};

class DynamicDeformConvPlugin : public nvinfer1::IPluginV3,
                                public nvinfer1::IPluginV3OneCore,
                                public nvinfer1::IPluginV3OneBuild,
                                public nvinfer1::IPluginV3OneRuntime
{
public:
    // Input positions (ONNX DeformConv-19 order); B and mask are optional trailing inputs.
    static constexpr int32_t kX{0};
    static constexpr int32_t kW{1};
    static constexpr int32_t kOFFSET{2};
    static constexpr int32_t kBIAS{3};
    static constexpr int32_t kMASK{4};
    static constexpr int32_t kMIN_INPUTS{3};
    static constexpr int32_t kMAX_INPUTS{5};

    explicit DynamicDeformConvPlugin(DeformConvAttributes attributes, int32_t nbInputs = -1);
    ~DynamicDeformConvPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

    //! Kernel parameters for concrete shapes (validated; throws PluginError on inconsistent shapes).
    kernels::DeformConvParams makeParams(nvinfer1::Dims const* dims, int32_t nbInputs) const;
    //! Kernel parameters from X and W alone (no cross-checks; used for the workspace bound).
    kernels::DeformConvParams paramsFrom(nvinfer1::Dims const& x, nvinfer1::Dims const& w, int32_t nbInputs) const;

private:
    //! Shape consistency; dimensions < 0 (unknown at build time) are skipped.
    void checkShapes(nvinfer1::Dims const* dims, int32_t nbInputs) const;

    DeformConvAttributes mAttributes;
    //! 3, 4 or 5: set by configurePlugin / onShapeChange and serialized with the engine (enqueue is not told).
    int32_t mNbInputs{-1};
    FieldWriter mSerialized;
    std::string mDescription;
};

class DynamicDeformConvPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    DynamicDeformConvPluginCreator();
    ~DynamicDeformConvPluginCreator() override = default;

    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;

private:
    FieldNames mFieldNames;
};

} // namespace plugin
} // namespace lapmask
