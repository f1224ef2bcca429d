// lapmask::MatrixNMS version 1 (OPS.md): Matrix NMS score decay on candidates sorted by descending score
// (spec 6 step 7). IPluginV3 (OneCore, OneBuild, OneRuntime); enqueue unpacks the tensor descriptors and calls
// lapmask::kernels::launchMatrixNms.
#pragma once

#include "../common/pluginCommon.h"

#include "matrix_nms_math.h"

#include <string>

namespace lapmask
{
namespace plugin
{

//! Attributes with the contract's defaults (lapmask/ops/contract.py MATRIX_NMS): kernel "gaussian", sigma 2.
struct MatrixNmsAttributes
{
    int32_t kernel{kernels::kMatrixNmsGaussian};
    float sigma{2.0F};

    static MatrixNmsAttributes fromFields(nvinfer1::PluginFieldCollection const* fc);
    void validate() const;
    void serialize(FieldWriter& writer) const;
    std::string kernelName() const;
    std::string describe() const;
};

class MatrixNMSPlugin : public nvinfer1::IPluginV3,
                        public nvinfer1::IPluginV3OneCore,
                        public nvinfer1::IPluginV3OneBuild,
                        public nvinfer1::IPluginV3OneRuntime
{
public:
    static constexpr int32_t kMASKS{0};
    static constexpr int32_t kSCORES{1};
    static constexpr int32_t kLABELS{2};
    static constexpr int32_t kNB_INPUTS{3};

    explicit MatrixNMSPlugin(MatrixNmsAttributes attributes);
    ~MatrixNMSPlugin() override = default;

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
    kernels::MatrixNmsParams makeParams(nvinfer1::Dims const* dims) const;

private:
    void checkShapes(nvinfer1::Dims const* dims) const;

    MatrixNmsAttributes mAttributes;
    FieldWriter mSerialized;
    std::string mDescription;
};

class MatrixNMSPluginCreator : public nvinfer1::IPluginCreatorV3One
{
public:
    MatrixNMSPluginCreator();
    ~MatrixNMSPluginCreator() override = default;

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
