// lapmask_trt_plugins_info LIB [OUT.json]: load a lapmask plugin library WITHOUT TensorRT and print (or write) its
// manifest -- the creators it registers, their fields and accepted type combinations. The build runs it to write
// liblapmask_trt_plugins.manifest.json next to the library; export/trt_checks.py reads that file.
#include <dlfcn.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv)
{
    if (argc < 2 || argc > 3 || std::strcmp(argv[1], "--help") == 0)
    {
        std::fprintf(stderr, "usage: %s liblapmask_trt_plugins.so [manifest.json]\n", argv[0]);
        return 2;
    }
    void* lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
    {
        std::fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    using ManifestFn = char const* (*) ();
    auto manifest = reinterpret_cast<ManifestFn>(dlsym(lib, "lapmaskTrtPluginsManifest"));
    if (manifest == nullptr || dlsym(lib, "getCreators") == nullptr)
    {
        std::fprintf(stderr, "%s is not a lapmask plugin library (no lapmaskTrtPluginsManifest/getCreators)\n", argv[1]);
        return 1;
    }
    char const* json = manifest();
    FILE* out = argc == 3 ? std::fopen(argv[2], "w") : stdout;
    if (out == nullptr)
    {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 1;
    }
    std::fprintf(out, "%s\n", json);
    if (out != stdout)
    {
        std::fclose(out);
    }
    return 0;
}
