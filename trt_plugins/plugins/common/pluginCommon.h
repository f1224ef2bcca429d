// Shared plumbing of the lapmask TensorRT plugins: the namespace, errors that never cross the TensorRT boundary,
// logging through the ILoggerFinder TensorRT hands to plugin libraries, and typed access to PluginField
// collections (attributes in, attributes out for serialization). Op semantics live in OPS.md and the kernels.
#pragma once

#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if !defined(NV_TENSORRT_MAJOR) || NV_TENSORRT_MAJOR < 10
#error "the lapmask TensorRT plugins implement IPluginV3 and need TensorRT >= 10 headers"
#endif

namespace lapmask
{
namespace plugin
{

//! Plugin namespace of every lapmask plugin (lapmask/ops/contract.py PLUGIN_NAMESPACE).
constexpr char const* kPLUGIN_NAMESPACE{"lapmask"};

//! Thrown by argument checks inside the plugins; every interface method catches it (never crosses into TensorRT).
class PluginError : public std::runtime_error
{
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(std::string const& message);

//! Throw PluginError(message) unless `condition`.
inline void require(bool condition, std::string const& message)
{
    if (!condition)
    {
        fail(message);
    }
}

//! Keep the ILoggerFinder TensorRT gives the library (setLoggerFinder entry point); null = log to stderr.
void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept;

//! Log through TensorRT's logger when one is known, else stderr (errors and warnings only).
void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept;

//! Log the active exception as an error of `where` (call inside a catch block only).
void logCaught(char const* where) noexcept;

char const* dataTypeName(nvinfer1::DataType type) noexcept;
char const* fieldTypeName(nvinfer1::PluginFieldType type) noexcept;

//! Read-only view of a PluginFieldCollection with typed, checked accessors. Unknown field names are rejected so a
//! misspelled attribute fails loudly instead of silently taking the default.
class FieldReader
{
public:
    FieldReader(nvinfer1::PluginFieldCollection const* fc, std::vector<std::string> const& known);

    bool has(char const* name) const;
    //! Integer list of exactly `length` entries (kINT32 or kINT64 fields, as the ONNX parser and Python give).
    std::vector<int32_t> ints(char const* name, int32_t length) const;
    int32_t integer(char const* name) const;
    //! kFLOAT32 or kFLOAT64 scalar.
    float real(char const* name) const;
    //! kCHAR string; trailing NUL bytes (the ONNX parser appends one) are not part of the value.
    std::string string(char const* name) const;

private:
    nvinfer1::PluginField const& get(char const* name) const;
    nvinfer1::PluginFieldCollection const* mFc;
};

//! Owns the storage behind the PluginFieldCollection returned by getFieldsToSerialize() (valid until the next
//! call of clear() or the owner's destruction).
class FieldWriter
{
public:
    void clear();
    void ints(char const* name, std::vector<int32_t> const& values);
    void integer(char const* name, int32_t value);
    void real(char const* name, float value);
    void string(char const* name, std::string const& value);
    nvinfer1::PluginFieldCollection const* collection();

private:
    std::vector<std::vector<char>> mStorage;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

//! The field-name list a creator advertises (getFieldNames): names, types and lengths; data pointers are null.
class FieldNames
{
public:
    void add(char const* name, nvinfer1::PluginFieldType type, int32_t length);
    nvinfer1::PluginFieldCollection const* collection() const noexcept
    {
        return &mCollection;
    }
    std::vector<std::string> names() const;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mCollection{};
};

//! "[a, b, c]" of a Dims (for messages).
std::string dimsString(nvinfer1::Dims const& dims);

} // namespace plugin
} // namespace lapmask
