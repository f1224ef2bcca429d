// Shared pieces of the plugin harness: checks and exit codes, a field-collection builder, descriptor helpers, an
// IExprBuilder of our own (TensorRT's is internal to libnvinfer; this one evaluates expressions and tracks which
// are build-time constants), device buffers and the fp16 helpers of the kernels' C ABI.
//
// Needs TensorRT's headers only. Exit codes: 0 pass, 1 failure, 77 = host checks passed but no CUDA device for the
// enqueue checks (ctest SKIP_RETURN_CODE), 2 = bad command line.
#pragma once

#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include "../plugins/common/pluginRegistration.h"
#include "lapmask_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace harness
{

constexpr int kEXIT_PASS = 0;
constexpr int kEXIT_FAIL = 1;
constexpr int kEXIT_SKIP = 77;

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::PluginTensorDesc;

//! Counts checks and failures; every failure is printed with its location.
struct Checker
{
    int checks{0};
    int failures{0};

    void check(bool ok, std::string const& what, char const* file, int line)
    {
        ++checks;
        if (!ok)
        {
            ++failures;
            std::printf("FAIL %s:%d: %s\n", file, line, what.c_str());
        }
    }
};

inline Checker& checker()
{
    static Checker sChecker;
    return sChecker;
}

#define HARNESS_CHECK(cond, what) ::harness::checker().check(static_cast<bool>(cond), what, __FILE__, __LINE__)

//! Owns the storage of a PluginFieldCollection built in a test.
class Fields
{
public:
    Fields& ints(char const* name, std::vector<int32_t> v)
    {
        return add(name, v.data(), v.size() * sizeof(int32_t), nvinfer1::PluginFieldType::kINT32,
            static_cast<int32_t>(v.size()));
    }
    Fields& ints64(char const* name, std::vector<int64_t> v)
    {
        return add(name, v.data(), v.size() * sizeof(int64_t), nvinfer1::PluginFieldType::kINT64,
            static_cast<int32_t>(v.size()));
    }
    Fields& real(char const* name, float v)
    {
        return add(name, &v, sizeof(v), nvinfer1::PluginFieldType::kFLOAT32, 1);
    }
    //! As the ONNX parser passes strings: kCHAR, NUL included in the length.
    Fields& string(char const* name, std::string const& v)
    {
        return add(name, v.c_str(), v.size() + 1, nvinfer1::PluginFieldType::kCHAR, static_cast<int32_t>(v.size() + 1));
    }
    nvinfer1::PluginFieldCollection const* get()
    {
        mFields.clear();
        for (size_t i = 0; i < mNames.size(); ++i)
        {
            mFields.emplace_back(mNames[i].c_str(), mData[i].data(), mTypes[i], mLengths[i]);
        }
        mFc.nbFields = static_cast<int32_t>(mFields.size());
        mFc.fields = mFields.data();
        return &mFc;
    }

private:
    Fields& add(char const* name, void const* data, size_t bytes, nvinfer1::PluginFieldType type, int32_t length)
    {
        mNames.emplace_back(name);
        mData.emplace_back(static_cast<char const*>(data), static_cast<char const*>(data) + bytes);
        mTypes.push_back(type);
        mLengths.push_back(length);
        return *this;
    }
    std::deque<std::string> mNames;
    std::deque<std::vector<char>> mData;
    std::vector<nvinfer1::PluginFieldType> mTypes;
    std::vector<int32_t> mLengths;
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFc{};
};

//! Byte-wise equality of two field collections (serialize -> deserialize -> serialize must be a fixed point).
inline bool sameFields(nvinfer1::PluginFieldCollection const* a, nvinfer1::PluginFieldCollection const* b)
{
    if (a == nullptr || b == nullptr || a->nbFields != b->nbFields)
    {
        return false;
    }
    for (int32_t i = 0; i < a->nbFields; ++i)
    {
        auto const& x = a->fields[i];
        auto const& y = b->fields[i];
        size_t const unit = x.type == nvinfer1::PluginFieldType::kCHAR ? 1 : 4;
        if (std::strcmp(x.name, y.name) != 0 || x.type != y.type || x.length != y.length
            || std::memcmp(x.data, y.data, unit * static_cast<size_t>(x.length)) != 0)
        {
            return false;
        }
    }
    return true;
}

inline Dims dims(std::vector<int64_t> const& v)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(v.size());
    for (size_t i = 0; i < v.size(); ++i)
    {
        d.d[i] = v[i];
    }
    return d;
}

inline PluginTensorDesc tensorDesc(std::vector<int64_t> const& shape, DataType type)
{
    PluginTensorDesc t{};
    t.dims = dims(shape);
    t.type = type;
    t.format = nvinfer1::TensorFormat::kLINEAR;
    t.scale = -1.0F;
    return t;
}

//! Build-time descriptor: `shape` may hold -1 (runtime dimension); min/opt/max are the concrete `concrete`.
inline DynamicPluginTensorDesc dynamicDesc(
    std::vector<int64_t> const& shape, std::vector<int64_t> const& concrete, DataType type)
{
    DynamicPluginTensorDesc t{};
    t.desc = tensorDesc(shape, type);
    t.min = t.opt = t.max = dims(concrete);
    return t;
}

inline int64_t volume(std::vector<int64_t> const& shape)
{
    int64_t v = 1;
    for (int64_t s : shape)
    {
        v *= s;
    }
    return v;
}

//! Collects what the plugins log; installed through the library's setLoggerFinder entry point (as TensorRT does),
//! so error paths can be checked for a message instead of printing to stderr.
class RecordingLogger : public nvinfer1::ILogger
{
public:
    void log(Severity severity, char const* msg) noexcept override
    {
        if (severity <= Severity::kWARNING)
        {
            mMessages.emplace_back(msg != nullptr ? msg : "");
        }
    }
    size_t count() const
    {
        return mMessages.size();
    }
    //! True when a message logged after `mark` contains `text`.
    bool loggedSince(size_t mark, char const* text) const
    {
        for (size_t i = mark; i < mMessages.size(); ++i)
        {
            if (mMessages[i].find(text) != std::string::npos)
            {
                return true;
            }
        }
        return false;
    }

private:
    std::vector<std::string> mMessages;
};

class LoggerFinder : public nvinfer1::ILoggerFinder
{
public:
    nvinfer1::ILogger* findLogger() override
    {
        return &mLogger;
    }
    RecordingLogger mLogger;
};

inline RecordingLogger& installLogger()
{
    static LoggerFinder sFinder;
    setLoggerFinder(&sFinder);
    return sFinder.mLogger;
}

// ---------------------------------------------------------------------------------------------------------------
// IExprBuilder of our own. TensorRT's IDimensionExpr / IExprBuilder forward to apiv::VDimensionExpr /
// apiv::VExprBuilder objects (NvInferImpl.h); implementing those gives plugins a builder outside libnvinfer.

class ExprImpl : public nvinfer1::apiv::VDimensionExpr
{
public:
    ExprImpl(int64_t value, bool constant)
        : mValue(value)
        , mConstant(constant)
    {
    }
    bool isConstant() const override
    {
        return mConstant;
    }
    int64_t getConstantValue() const override
    {
        return mConstant ? mValue : std::numeric_limits<int64_t>::min();
    }
    bool isSizeTensor() const override
    {
        return false;
    }
    int64_t value() const
    {
        return mValue;
    }

private:
    int64_t mValue;
    bool mConstant;
};

class Expr : public nvinfer1::IDimensionExpr
{
public:
    explicit Expr(ExprImpl* impl)
        : mOwn(impl)
    {
        mImpl = impl;
    }
    ExprImpl const* impl() const
    {
        return mOwn;
    }

private:
    ExprImpl* mOwn;
};

class ExprBuilder;

class ExprBuilderImpl : public nvinfer1::apiv::VExprBuilder
{
public:
    explicit ExprBuilderImpl(ExprBuilder& owner)
        : mOwner(owner)
    {
    }
    nvinfer1::IDimensionExpr const* constant(int64_t value) override;
    nvinfer1::IDimensionExpr const* operation(nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first,
        nvinfer1::IDimensionExpr const& second) override;
    nvinfer1::IDimensionExpr const* declareSizeTensor(
        int32_t, nvinfer1::IDimensionExpr const&, nvinfer1::IDimensionExpr const&) override
    {
        return nullptr; // the lapmask plugins declare no size tensors
    }

private:
    ExprBuilder& mOwner;
};

class ExprBuilder : public nvinfer1::IExprBuilder
{
public:
    ExprBuilder()
        : mBuilderImpl(*this)
    {
        mImpl = &mBuilderImpl;
    }

    //! A dimension known only at run time (value used for evaluation; isConstant() is false).
    nvinfer1::IDimensionExpr const* runtime(int64_t value)
    {
        return make(value, false);
    }
    nvinfer1::IDimensionExpr const* make(int64_t value, bool constant)
    {
        mImpls.push_back(std::make_unique<ExprImpl>(value, constant));
        mExprs.push_back(std::make_unique<Expr>(mImpls.back().get()));
        return mExprs.back().get();
    }
    //! Shape of one tensor; `runtimeAxes[i]` marks axis i as a runtime dimension.
    nvinfer1::DimsExprs shape(std::vector<int64_t> const& values, std::vector<bool> const& runtimeAxes = {})
    {
        nvinfer1::DimsExprs e{};
        e.nbDims = static_cast<int32_t>(values.size());
        for (size_t i = 0; i < values.size(); ++i)
        {
            bool const rt = i < runtimeAxes.size() && runtimeAxes[i];
            e.d[i] = make(values[i], !rt);
        }
        return e;
    }
    static int64_t value(nvinfer1::IDimensionExpr const* e)
    {
        auto const* x = dynamic_cast<Expr const*>(e);
        return x != nullptr ? x->impl()->value() : std::numeric_limits<int64_t>::min();
    }

private:
    ExprBuilderImpl mBuilderImpl;
    std::vector<std::unique_ptr<ExprImpl>> mImpls;
    std::vector<std::unique_ptr<Expr>> mExprs;
};

inline nvinfer1::IDimensionExpr const* ExprBuilderImpl::constant(int64_t value)
{
    return mOwner.make(value, true);
}

inline nvinfer1::IDimensionExpr const* ExprBuilderImpl::operation(
    nvinfer1::DimensionOperation op, nvinfer1::IDimensionExpr const& first, nvinfer1::IDimensionExpr const& second)
{
    using Op = nvinfer1::DimensionOperation;
    int64_t const a = ExprBuilder::value(&first);
    int64_t const b = ExprBuilder::value(&second);
    int64_t r = 0;
    switch (op)
    {
    case Op::kSUM: r = a + b; break;
    case Op::kPROD: r = a * b; break;
    case Op::kMAX: r = a > b ? a : b; break;
    case Op::kMIN: r = a < b ? a : b; break;
    case Op::kSUB: r = a - b; break;
    case Op::kEQUAL: r = a == b; break;
    case Op::kLESS: r = a < b; break;
    case Op::kFLOOR_DIV:
        if (b == 0)
        {
            return nullptr;
        }
        r = a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
        break;
    case Op::kCEIL_DIV:
        if (b == 0)
        {
            return nullptr;
        }
        r = a / b + ((a % b != 0) && ((a < 0) == (b < 0)) ? 1 : 0);
        break;
    default: return nullptr;
    }
    return mOwner.make(r, first.isConstant() && second.isConstant());
}

// ---------------------------------------------------------------------------------------------------------------

//! The creator `name` / `version` from the library's getCreators() (what loadLibrary would register).
inline nvinfer1::IPluginCreatorV3One* findCreator(char const* name, char const* version)
{
    int32_t n = 0;
    nvinfer1::IPluginCreatorInterface* const* list = getCreators(n);
    HARNESS_CHECK(list != nullptr && n == lapmask::plugin::kNB_CREATORS,
        "getCreators returns both creators (got " + std::to_string(n) + ")");
    for (int32_t i = 0; list != nullptr && i < n; ++i)
    {
        if (std::strcmp(list[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
        {
            continue;
        }
        auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(list[i]);
        if (std::strcmp(c->getPluginName(), name) == 0 && std::strcmp(c->getPluginVersion(), version) == 0)
        {
            return c;
        }
    }
    return nullptr;
}

template <typename T>
T* capability(nvinfer1::IPluginV3* plugin, nvinfer1::PluginCapabilityType type)
{
    return plugin == nullptr ? nullptr : static_cast<T*>(plugin->getCapabilityInterface(type));
}

//! Empty string when a CUDA device is usable, else why not.
inline std::string cudaUnavailableReason()
{
    int count = 0;
    cudaError_t const err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess)
    {
        return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
    }
    return count > 0 ? std::string() : std::string("no CUDA device");
}

//! Device memory of `bytes` (at least 1), freed on scope exit.
class DeviceBuffer
{
public:
    explicit DeviceBuffer(size_t bytes)
    {
        if (cudaMalloc(&mPtr, bytes > 0 ? bytes : 1) != cudaSuccess)
        {
            mPtr = nullptr;
        }
    }
    ~DeviceBuffer()
    {
        if (mPtr != nullptr)
        {
            cudaFree(mPtr);
        }
    }
    DeviceBuffer(DeviceBuffer const&) = delete;
    DeviceBuffer& operator=(DeviceBuffer const&) = delete;
    void* get() const
    {
        return mPtr;
    }

private:
    void* mPtr{nullptr};
};

inline std::vector<uint16_t> toHalf(std::vector<float> const& v)
{
    std::vector<uint16_t> out(v.size());
    lapmask_float_to_half_bits(v.data(), out.data(), static_cast<int64_t>(v.size()));
    return out;
}

inline std::vector<float> fromHalf(std::vector<uint16_t> const& v)
{
    std::vector<float> out(v.size());
    lapmask_half_bits_to_float(v.data(), out.data(), static_cast<int64_t>(v.size()));
    return out;
}

//! Round every value to the nearest fp16 (what an fp16 tensor holds).
inline std::vector<float> roundToHalf(std::vector<float> const& v)
{
    return fromHalf(toHalf(v));
}

inline std::vector<float> uniform(size_t n, float lo, float hi, std::mt19937& rng)
{
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v)
    {
        x = dist(rng);
    }
    return v;
}

inline bool hasFlag(int argc, char** argv, char const* flag)
{
    for (int i = 1; i < argc; ++i)
    {
        if (std::strcmp(argv[i], flag) == 0)
        {
            return true;
        }
    }
    return false;
}

//! Print the summary and turn the counts into the exit code (77 when the device part was skipped).
inline int finish(char const* name, std::string const& skippedBecause)
{
    Checker const& c = checker();
    std::printf("%s: %d checks, %d failures\n", name, c.checks, c.failures);
    if (c.failures > 0)
    {
        return kEXIT_FAIL;
    }
    if (!skippedBecause.empty())
    {
        std::printf("SKIP %s enqueue checks: %s (host checks passed)\n", name, skippedBecause.c_str());
        return kEXIT_SKIP;
    }
    return kEXIT_PASS;
}

} // namespace harness
