// Registration of the lapmask plugin creators and the library's C entry points.
//
// Two ways in, one set of creators:
//  * static: when the library is loaded into a process where TensorRT (libnvinfer) is already loaded -- linked by
//    an application, `trtexec --staticPlugins`, ctypes.CDLL after `import tensorrt` -- a load-time registrar (the
//    REGISTER_TENSORRT_PLUGIN equivalent) registers both creators in TensorRT's global registry under the plugin
//    namespace "lapmask". getPluginRegistry is looked up at run time (dlsym), so the library needs no libnvinfer
//    at link time and loads anywhere (the harness and the manifest tool load it without TensorRT).
//    Opt out with LAPMASK_TRT_STATIC_REGISTRATION=0.
//  * dynamic: getCreators() for IPluginRegistry::loadLibrary / `trtexec --dynamicPlugins` / tensorrt's
//    `registry.load_library(path)`. It returns the creators that were NOT registered statically, so loading the
//    library both ways never registers a creator twice (loadLibrary fails on duplicates).
#pragma once

#include <NvInferRuntime.h>

#include <cstdint>

#if defined(_WIN32)
#define LAPMASK_TRT_API __declspec(dllexport)
#else
#define LAPMASK_TRT_API __attribute__((visibility("default")))
#endif

namespace lapmask
{
namespace plugin
{

constexpr int32_t kNB_CREATORS{2};

//! Every creator of the library (DynamicDeformConv, MatrixNMS), whatever was registered where.
nvinfer1::IPluginCreatorInterface* const* allCreators() noexcept;

//! Manifest JSON of the compiled creators (names, versions, fields, accepted I/O type combinations).
char const* manifestJson() noexcept;

} // namespace plugin
} // namespace lapmask

extern "C"
{
    //! TensorRT's dynamic-loading entry point (IPluginRegistry::loadLibrary, trtexec --dynamicPlugins).
    LAPMASK_TRT_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

    //! TensorRT hands plugin libraries a logger finder before getCreators.
    LAPMASK_TRT_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder);

    //! JSON manifest (see manifestJson); owned by the library, valid while it is loaded.
    LAPMASK_TRT_API char const* lapmaskTrtPluginsManifest();

    //! How many creators the load-time registrar put into TensorRT's registry (0 when TensorRT was not loaded).
    LAPMASK_TRT_API int32_t lapmaskTrtPluginsStaticallyRegistered();
}
