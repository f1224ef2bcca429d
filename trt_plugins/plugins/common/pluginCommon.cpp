// Logging, errors and PluginField access for the lapmask plugins (see pluginCommon.h).
#include "pluginCommon.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <sstream>

namespace lapmask
{
namespace plugin
{

namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

template <typename T>
T readScalar(void const* data, int32_t index)
{
    T value;
    std::memcpy(&value, static_cast<char const*>(data) + index * sizeof(T), sizeof(T));
    return value;
}
} // namespace

void fail(std::string const& message)
{
    throw PluginError(message);
}

void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept
{
    gLoggerFinder.store(finder);
}

void log(nvinfer1::ILogger::Severity severity, std::string const& message) noexcept
{
    try
    {
        std::string const text = std::string("[lapmask plugins] ") + message;
        nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
        nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
        if (logger != nullptr)
        {
            logger->log(severity, text.c_str());
        }
        else if (severity <= nvinfer1::ILogger::Severity::kWARNING)
        {
            std::fprintf(stderr, "%s\n", text.c_str());
        }
    }
    catch (...)
    {
        // Logging must never throw out of a noexcept interface method.
    }
}

void logCaught(char const* where) noexcept
{
    try
    {
        throw;
    }
    catch (PluginError const& e)
    {
        log(nvinfer1::ILogger::Severity::kERROR, std::string(where) + ": " + e.what());
    }
    catch (std::bad_alloc const&)
    {
        log(nvinfer1::ILogger::Severity::kERROR, std::string(where) + ": out of host memory");
    }
    catch (std::exception const& e)
    {
        log(nvinfer1::ILogger::Severity::kERROR, std::string(where) + ": internal error: " + e.what());
    }
    catch (...)
    {
        log(nvinfer1::ILogger::Severity::kERROR, std::string(where) + ": unknown exception");
    }
}

char const* dataTypeName(nvinfer1::DataType type) noexcept
{
    switch (type)
    {
    case nvinfer1::DataType::kFLOAT: return "float32";
    case nvinfer1::DataType::kHALF: return "float16";
    case nvinfer1::DataType::kINT8: return "int8";
    case nvinfer1::DataType::kINT32: return "int32";
    case nvinfer1::DataType::kBOOL: return "bool";
    case nvinfer1::DataType::kUINT8: return "uint8";
    case nvinfer1::DataType::kBF16: return "bfloat16";
    case nvinfer1::DataType::kINT64: return "int64";
    default: return "other";
    }
}

char const* fieldTypeName(nvinfer1::PluginFieldType type) noexcept
{
    switch (type)
    {
    case nvinfer1::PluginFieldType::kFLOAT16: return "FLOAT16";
    case nvinfer1::PluginFieldType::kFLOAT32: return "FLOAT32";
    case nvinfer1::PluginFieldType::kFLOAT64: return "FLOAT64";
    case nvinfer1::PluginFieldType::kINT8: return "INT8";
    case nvinfer1::PluginFieldType::kINT16: return "INT16";
    case nvinfer1::PluginFieldType::kINT32: return "INT32";
    case nvinfer1::PluginFieldType::kCHAR: return "CHAR";
    case nvinfer1::PluginFieldType::kINT64: return "INT64";
    default: return "OTHER";
    }
}

std::string dimsString(nvinfer1::Dims const& dims)
{
    std::ostringstream s;
    s << "[";
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        s << (i ? ", " : "") << dims.d[i];
    }
    s << "]";
    return s.str();
}

// ---- FieldReader ----

FieldReader::FieldReader(nvinfer1::PluginFieldCollection const* fc, std::vector<std::string> const& known)
    : mFc(fc)
{
    require(fc != nullptr, "the PluginFieldCollection is null");
    require(fc->nbFields >= 0 && (fc->nbFields == 0 || fc->fields != nullptr), "malformed PluginFieldCollection");
    for (int32_t i = 0; i < fc->nbFields; ++i)
    {
        nvinfer1::PluginField const& f = fc->fields[i];
        require(f.name != nullptr, "a plugin field has no name");
        if (std::find(known.begin(), known.end(), f.name) == known.end())
        {
            std::string list;
            for (auto const& k : known)
            {
                list += (list.empty() ? "" : ", ") + k;
            }
            fail(std::string("unknown attribute '") + f.name + "' (known: " + list + ")");
        }
        require(f.length >= 0 && (f.length == 0 || f.data != nullptr),
            std::string("attribute '") + f.name + "' has no data");
    }
}

bool FieldReader::has(char const* name) const
{
    for (int32_t i = 0; i < mFc->nbFields; ++i)
    {
        if (std::strcmp(mFc->fields[i].name, name) == 0)
        {
            return true;
        }
    }
    return false;
}

nvinfer1::PluginField const& FieldReader::get(char const* name) const
{
    for (int32_t i = 0; i < mFc->nbFields; ++i)
    {
        if (std::strcmp(mFc->fields[i].name, name) == 0)
        {
            return mFc->fields[i];
        }
    }
    fail(std::string("attribute '") + name + "' is missing");
}

std::vector<int32_t> FieldReader::ints(char const* name, int32_t length) const
{
    nvinfer1::PluginField const& f = get(name);
    require(f.length == length,
        std::string("attribute '") + name + "' must have " + std::to_string(length) + " values, got "
            + std::to_string(f.length));
    std::vector<int32_t> out(static_cast<size_t>(length));
    for (int32_t i = 0; i < length; ++i)
    {
        if (f.type == nvinfer1::PluginFieldType::kINT32)
        {
            out[i] = readScalar<int32_t>(f.data, i);
        }
        else if (f.type == nvinfer1::PluginFieldType::kINT64)
        {
            int64_t const v = readScalar<int64_t>(f.data, i);
            require(v >= INT32_MIN && v <= INT32_MAX, std::string("attribute '") + name + "' is out of int32 range");
            out[i] = static_cast<int32_t>(v);
        }
        else
        {
            fail(std::string("attribute '") + name + "' must be INT32 or INT64, got " + fieldTypeName(f.type));
        }
    }
    return out;
}

int32_t FieldReader::integer(char const* name) const
{
    return ints(name, 1)[0];
}

float FieldReader::real(char const* name) const
{
    nvinfer1::PluginField const& f = get(name);
    require(f.length == 1, std::string("attribute '") + name + "' must be one value, got " + std::to_string(f.length));
    if (f.type == nvinfer1::PluginFieldType::kFLOAT32)
    {
        return readScalar<float>(f.data, 0);
    }
    if (f.type == nvinfer1::PluginFieldType::kFLOAT64)
    {
        return static_cast<float>(readScalar<double>(f.data, 0));
    }
    fail(std::string("attribute '") + name + "' must be FLOAT32 or FLOAT64, got " + fieldTypeName(f.type));
}

std::string FieldReader::string(char const* name) const
{
    nvinfer1::PluginField const& f = get(name);
    require(f.type == nvinfer1::PluginFieldType::kCHAR,
        std::string("attribute '") + name + "' must be CHAR (a string), got " + fieldTypeName(f.type));
    std::string value(static_cast<char const*>(f.data), static_cast<size_t>(f.length));
    while (!value.empty() && value.back() == '\0')
    {
        value.pop_back();
    }
    require(value.find('\0') == std::string::npos, std::string("attribute '") + name + "' contains a NUL byte");
    return value;
}

// ---- FieldWriter ----

void FieldWriter::clear()
{
    mStorage.clear();
    mFields.clear();
    mCollection = nvinfer1::PluginFieldCollection{};
}

void FieldWriter::ints(char const* name, std::vector<int32_t> const& values)
{
    std::vector<char> bytes(values.size() * sizeof(int32_t));
    std::memcpy(bytes.data(), values.data(), bytes.size());
    mStorage.push_back(std::move(bytes));
    mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kINT32, static_cast<int32_t>(values.size()));
}

void FieldWriter::integer(char const* name, int32_t value)
{
    ints(name, {value});
}

void FieldWriter::real(char const* name, float value)
{
    std::vector<char> bytes(sizeof(float));
    std::memcpy(bytes.data(), &value, sizeof(float));
    mStorage.push_back(std::move(bytes));
    mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kFLOAT32, 1);
}

void FieldWriter::string(char const* name, std::string const& value)
{
    std::vector<char> bytes(value.begin(), value.end());
    bytes.push_back('\0'); // same layout as the ONNX parser gives (length counts the terminator)
    mStorage.push_back(std::move(bytes));
    mFields.emplace_back(name, nullptr, nvinfer1::PluginFieldType::kCHAR, static_cast<int32_t>(value.size() + 1));
}

nvinfer1::PluginFieldCollection const* FieldWriter::collection()
{
    // Data pointers are bound here, after all pushes, because the storage vector may have reallocated.
    for (size_t i = 0; i < mFields.size(); ++i)
    {
        mFields[i].data = mStorage[i].data();
    }
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

// ---- FieldNames ----

void FieldNames::add(char const* name, nvinfer1::PluginFieldType type, int32_t length)
{
    mFields.emplace_back(name, nullptr, type, length);
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
}

std::vector<std::string> FieldNames::names() const
{
    std::vector<std::string> out;
    for (auto const& f : mFields)
    {
        out.emplace_back(f.name);
    }
    return out;
}

} // namespace plugin
} // namespace lapmask
