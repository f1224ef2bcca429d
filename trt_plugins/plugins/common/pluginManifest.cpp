// The manifest: what the compiled library really registers, as JSON, for tools and tests that have no TensorRT
// (export/trt_checks.py checks it against lapmask/ops/contract.py; the build writes it next to the library).
// Per creator: name, version, namespace, interface kind, advertised fields, and -- probed through each plugin's
// own supportsFormatCombination / getOutputDataTypes -- every accepted linear-format type combination per input
// count. Host code only: nothing here touches CUDA.
#include "pluginCommon.h"
#include "pluginRegistration.h"

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#define LAPMASK_STRINGIFY_(x) #x
#define LAPMASK_STRINGIFY(x) LAPMASK_STRINGIFY_(x)

using nvinfer1::DataType;

namespace lapmask
{
namespace plugin
{

namespace
{

constexpr DataType kPROBE_TYPES[] = {DataType::kFLOAT, DataType::kHALF, DataType::kINT8, DataType::kINT32,
    DataType::kBOOL, DataType::kUINT8, DataType::kBF16, DataType::kINT64};
constexpr int32_t kMAX_PROBE_IO{8};

std::string quoted(char const* s)
{
    std::string out = "\"";
    for (char const* p = s ? s : ""; *p != '\0'; ++p)
    {
        if (*p == '"' || *p == '\\')
        {
            out += '\\';
        }
        out += (static_cast<unsigned char>(*p) < 0x20) ? ' ' : *p;
    }
    return out + "\"";
}

struct Probe
{
    nvinfer1::IPluginV3OneBuild* build;
    int32_t nbInputs;
    int32_t nbOutputs;
    nvinfer1::DynamicPluginTensorDesc io[kMAX_PROBE_IO];
    std::vector<std::vector<DataType>> accepted;
    bool outputTypesConsistent{true};

    //! Depth-first over positions: position `pos` may only depend on positions < pos (the API's rule).
    void search(int32_t pos)
    {
        if (pos == nbInputs + nbOutputs)
        {
            std::vector<DataType> combo;
            for (int32_t i = 0; i < pos; ++i)
            {
                combo.push_back(io[i].desc.type);
            }
            checkOutputTypes(combo);
            accepted.push_back(combo);
            return;
        }
        if (pos < 0 || pos >= kMAX_PROBE_IO)
        {
            return;
        }
        for (DataType t : kPROBE_TYPES)
        {
            io[pos].desc.type = t;
            io[pos].desc.format = nvinfer1::TensorFormat::kLINEAR;
            if (build->supportsFormatCombination(pos, io, nbInputs, nbOutputs))
            {
                search(pos + 1);
            }
        }
    }

    void checkOutputTypes(std::vector<DataType> const& combo)
    {
        DataType out[kMAX_PROBE_IO];
        if (build->getOutputDataTypes(out, nbOutputs, combo.data(), nbInputs) != 0)
        {
            outputTypesConsistent = false;
            return;
        }
        for (int32_t o = 0; o < nbOutputs; ++o)
        {
            outputTypesConsistent = outputTypesConsistent && out[o] == combo[nbInputs + o];
        }
    }
};

std::string creatorJson(nvinfer1::IPluginCreatorV3One& creator)
{
    std::ostringstream s;
    s << "{\"name\": " << quoted(creator.getPluginName()) << ", \"version\": " << quoted(creator.getPluginVersion())
      << ", \"namespace\": " << quoted(creator.getPluginNamespace())
      << ", \"interface\": " << quoted(creator.getInterfaceInfo().kind) << ", \"fields\": [";
    nvinfer1::PluginFieldCollection const* names = creator.getFieldNames();
    for (int32_t i = 0; names != nullptr && i < names->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = names->fields[i];
        s << (i ? ", " : "") << "{\"name\": " << quoted(f.name) << ", \"type\": " << quoted(fieldTypeName(f.type))
          << ", \"length\": " << f.length << "}";
    }
    s << "]";

    // Defaults only (an empty field collection): the contract gives every attribute a default or infers it.
    nvinfer1::PluginFieldCollection empty{};
    std::unique_ptr<nvinfer1::IPluginV3> plugin(
        creator.createPlugin("manifest_probe", &empty, nvinfer1::TensorRTPhase::kBUILD));
    s << ", \"creates_with_defaults\": " << (plugin ? "true" : "false");
    if (plugin)
    {
        auto* build = static_cast<nvinfer1::IPluginV3OneBuild*>(
            plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
        auto* core = static_cast<nvinfer1::IPluginV3OneCore*>(
            plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
        bool const runtime = plugin->getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME) != nullptr;
        int32_t const nbOutputs = build != nullptr ? build->getNbOutputs() : 0;
        s << ", \"capabilities\": {\"core\": " << (core ? "true" : "false") << ", \"build\": "
          << (build ? "true" : "false") << ", \"runtime\": " << (runtime ? "true" : "false") << "}";
        s << ", \"plugin_identity\": [" << quoted(core ? core->getPluginName() : "") << ", "
          << quoted(core ? core->getPluginVersion() : "") << ", " << quoted(core ? core->getPluginNamespace() : "")
          << "], \"nb_outputs\": " << nbOutputs << ", \"combinations\": {";
        bool consistent = true;
        bool first = true;
        for (int32_t nbInputs = 1; build != nullptr && nbInputs + nbOutputs <= kMAX_PROBE_IO; ++nbInputs)
        {
            Probe probe{build, nbInputs, nbOutputs, {}, {}, true};
            probe.search(0);
            consistent = consistent && probe.outputTypesConsistent;
            if (probe.accepted.empty())
            {
                continue;
            }
            s << (first ? "" : ", ") << "\"" << nbInputs << "\": [";
            first = false;
            for (size_t c = 0; c < probe.accepted.size(); ++c)
            {
                s << (c ? ", " : "") << "[";
                for (size_t k = 0; k < probe.accepted[c].size(); ++k)
                {
                    s << (k ? ", " : "") << quoted(dataTypeName(probe.accepted[c][k]));
                }
                s << "]";
            }
            s << "]";
        }
        s << "}, \"output_types_consistent\": " << (consistent ? "true" : "false");
        // Non-linear layouts must be refused (the kernels index dense row-major tensors).
        nvinfer1::DynamicPluginTensorDesc io[kMAX_PROBE_IO]{};
        io[0].desc.type = DataType::kFLOAT;
        io[0].desc.format = nvinfer1::TensorFormat::kCHW32;
        bool const nonLinear = build != nullptr && build->supportsFormatCombination(0, io, 3, nbOutputs);
        s << ", \"non_linear_rejected\": " << (nonLinear ? "false" : "true");
    }
    s << "}";
    return s.str();
}

std::string buildManifest()
{
    std::ostringstream s;
    s << "{\"library\": \"lapmask_trt_plugins\", \"plugin_namespace\": " << quoted(kPLUGIN_NAMESPACE)
      << ", \"tensorrt_headers\": \"" << NV_TENSORRT_MAJOR << "." << NV_TENSORRT_MINOR << "." << NV_TENSORRT_PATCH
      << "\", \"statically_registered\": " << lapmaskTrtPluginsStaticallyRegistered() << ", \"creators\": [";
    nvinfer1::IPluginCreatorInterface* const* creators = allCreators();
    for (int32_t i = 0; i < kNB_CREATORS; ++i)
    {
        // Every creator of this library is an IPluginCreatorV3One (checked by its interface kind in the JSON).
        s << (i ? ", " : "") << creatorJson(*static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]));
    }
    s << "]}";
    return s.str();
}

} // namespace

char const* manifestJson() noexcept
{
    try
    {
        static std::string const sManifest = buildManifest();
        return sManifest.c_str();
    }
    catch (...)
    {
        logCaught("lapmaskTrtPluginsManifest");
    }
    return "{}";
}

} // namespace plugin
} // namespace lapmask
