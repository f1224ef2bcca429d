// Creator list, load-time (static) registration and the C entry points (see pluginRegistration.h).
#include "pluginRegistration.h"

#include "../dynamicDeformConvPlugin/dynamicDeformConvPlugin.h"
#include "../matrixNMSPlugin/matrixNMSPlugin.h"
#include "pluginCommon.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#define LAPMASK_STRINGIFY_(x) #x
#define LAPMASK_STRINGIFY(x) LAPMASK_STRINGIFY_(x)

namespace lapmask
{
namespace plugin
{

nvinfer1::IPluginCreatorInterface* const* allCreators() noexcept
{
    // Function-local statics: constructed on first use, so the load-time registrar never sees them half-built.
    static DynamicDeformConvPluginCreator sDeformCreator;
    static MatrixNMSPluginCreator sNmsCreator;
    static nvinfer1::IPluginCreatorInterface* const sCreators[kNB_CREATORS] = {&sDeformCreator, &sNmsCreator};
    return sCreators;
}

namespace
{

struct RegistrationState
{
    std::mutex mutex;
    bool registeredStatically[kNB_CREATORS]{};
    //! What getCreators hands out (never a null array, even when everything was registered statically).
    nvinfer1::IPluginCreatorInterface* forLoadLibrary[kNB_CREATORS]{};
};

RegistrationState& state()
{
    static RegistrationState sState;
    return sState;
}

bool staticRegistrationDisabled()
{
    char const* v = std::getenv("LAPMASK_TRT_STATIC_REGISTRATION");
    if (v == nullptr)
    {
        return false;
    }
    std::string const s(v);
    return s == "0" || s == "off" || s == "OFF" || s == "false" || s == "no";
}

using GetRegistryFn = nvinfer1::IPluginRegistry* (*) ();

//! TensorRT's process-wide registry, or null when libnvinfer is not loaded. Looked up at run time: first in the
//! global scope (libnvinfer linked by the application), then in an already loaded libnvinfer even when it was
//! loaded with RTLD_LOCAL (the tensorrt Python module); RTLD_NOLOAD never loads anything new.
nvinfer1::IPluginRegistry* findProcessRegistry()
{
    void* symbol = dlsym(RTLD_DEFAULT, "getPluginRegistry");
    char const* const names[] = {"libnvinfer.so." LAPMASK_STRINGIFY(NV_TENSORRT_MAJOR), "libnvinfer.so"};
    for (char const* name : names)
    {
        if (symbol != nullptr)
        {
            break;
        }
        void* handle = dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
        if (handle != nullptr)
        {
            symbol = dlsym(handle, "getPluginRegistry");
            dlclose(handle); // drops the reference NOLOAD took; the library stays loaded by its owner
        }
    }
    return symbol != nullptr ? reinterpret_cast<GetRegistryFn>(symbol)() : nullptr;
}

void registerStatically() noexcept
{
    try
    {
        if (staticRegistrationDisabled())
        {
            return;
        }
        nvinfer1::IPluginRegistry* registry = findProcessRegistry();
        if (registry == nullptr)
        {
            return; // no TensorRT in this process (yet): getCreators / loadLibrary is the way in
        }
        RegistrationState& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        nvinfer1::IPluginCreatorInterface* const* creators = allCreators();
        for (int32_t i = 0; i < kNB_CREATORS; ++i)
        {
            s.registeredStatically[i] = registry->registerCreator(*creators[i], kPLUGIN_NAMESPACE);
        }
    }
    catch (...)
    {
        logCaught("lapmask plugins static registration");
    }
}

//! The REGISTER_TENSORRT_PLUGIN equivalent: runs when the library is loaded.
struct StaticRegistrar
{
    StaticRegistrar() noexcept
    {
        registerStatically();
    }
};

StaticRegistrar const gStaticRegistrar{};

} // namespace

} // namespace plugin
} // namespace lapmask

extern "C"
{

    nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
    {
        using namespace lapmask::plugin;
        try
        {
            RegistrationState& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            nvinfer1::IPluginCreatorInterface* const* creators = allCreators();
            int32_t n = 0;
            for (int32_t i = 0; i < kNB_CREATORS; ++i)
            {
                if (!s.registeredStatically[i])
                {
                    s.forLoadLibrary[n++] = creators[i];
                }
            }
            nbCreators = n;
            return s.forLoadLibrary;
        }
        catch (...)
        {
            logCaught("getCreators");
        }
        nbCreators = 0;
        return nullptr;
    }

    void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
    {
        lapmask::plugin::setLoggerFinder(finder);
    }

    char const* lapmaskTrtPluginsManifest()
    {
        return lapmask::plugin::manifestJson();
    }

    int32_t lapmaskTrtPluginsStaticallyRegistered()
    {
        using namespace lapmask::plugin;
        RegistrationState& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        int32_t n = 0;
        for (bool registered : s.registeredStatically)
        {
            n += registered ? 1 : 0;
        }
        return n;
    }
}
