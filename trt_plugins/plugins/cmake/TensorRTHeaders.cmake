# Locate TensorRT's C++ headers for the lapmask plugin library. Headers only: the plugin library resolves
# TensorRT's getPluginRegistry at run time, so building it needs no libnvinfer.
#
#   -DTensorRT_INCLUDE_DIR=<dir containing NvInferRuntime.h>      (takes precedence)
#   -DTensorRT_ROOT=<dir containing include/NvInferRuntime.h>      (a TensorRT tarball, or a header export)
#
# Also searched: $ENV{TensorRT_ROOT}, <repo>/.third_party/tensorrt (git-ignored header export, see
# trt_plugins/plugins/README.md), /usr/include/x86_64-linux-gnu (Debian/Ubuntu packages), /usr/local/tensorrt.
# Sets TensorRT_INCLUDE_DIR (cache), LAPMASK_TENSORRT_HEADERS_FOUND and TensorRT_VERSION_STRING (parent scope).
# Where this file lives (inside the function CMAKE_CURRENT_LIST_DIR is the caller's directory).
set(_LAPMASK_TRT_HEADERS_MODULE_DIR ${CMAKE_CURRENT_LIST_DIR})

function(lapmask_find_tensorrt_headers)
  set(TensorRT_ROOT "${TensorRT_ROOT}" CACHE PATH "TensorRT root (contains include/NvInferRuntime.h)")
  find_path(TensorRT_INCLUDE_DIR NvInferRuntime.h
    HINTS ${TensorRT_ROOT} $ENV{TensorRT_ROOT}
    PATHS ${_LAPMASK_TRT_HEADERS_MODULE_DIR}/../../../.third_party/tensorrt /usr/local/tensorrt /usr/include/x86_64-linux-gnu
    PATH_SUFFIXES include
    DOC "directory with TensorRT's NvInferRuntime.h")
  set(_found OFF)
  set(_version "")
  if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
    file(STRINGS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _lines REGEX "#define (TRT_|NV_TENSORRT_)(MAJOR|MINOR|PATCH)")
    foreach(_part MAJOR MINOR PATCH)
      # TensorRT 11 defines NV_TENSORRT_MAJOR via TRT_MAJOR_ENTERPRISE; TensorRT 10 defines it as a number.
      string(REGEX MATCH "#define TRT_${_part}_ENTERPRISE ([0-9]+)" _m "${_lines}")
      if(NOT _m)
        string(REGEX MATCH "#define NV_TENSORRT_${_part} ([0-9]+)" _m "${_lines}")
      endif()
      set(_v_${_part} "${CMAKE_MATCH_1}")
    endforeach()
    set(_version "${_v_MAJOR}.${_v_MINOR}.${_v_PATCH}")
    if(_v_MAJOR AND _v_MAJOR GREATER_EQUAL 10)
      set(_found ON)
    else()
      message(STATUS "lapmask: TensorRT headers in ${TensorRT_INCLUDE_DIR} are version ${_version}; the plugins "
                     "implement IPluginV3 and need TensorRT >= 10")
    endif()
  endif()
  set(LAPMASK_TENSORRT_HEADERS_FOUND ${_found} PARENT_SCOPE)
  set(TensorRT_VERSION_STRING "${_version}" PARENT_SCOPE)
endfunction()
