// Tensors on the wire for org.symphony.torchscript: the JSON form
// ({"dtype", "shape", "data"}) for small tensors in params and outputs, and the
// binary form (media type application/x-symphony-tensor) for artifacts of any
// size. docs/bundled-extensions.md documents both; this file is their codec.
//
// Errors follow base/result.h: a malformed value is Error::invalid (EINVAL)
// with a message that names the value's place (`where`) and what is wrong.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace symphony::extensions::torchscript {

inline constexpr std::string_view kTensorMediaType = "application/x-symphony-tensor";

// The element types both forms carry. The value is the binary header's dtype
// code; never renumber.
enum class DType : std::uint8_t {
  float32 = 1,
  float64 = 2,
  int64 = 3,
  int32 = 4,
  uint8 = 5,
  boolean = 6,  // "bool": one byte, 0 or 1
};

// "float32", "float64", "int64", "int32", "uint8", "bool".
std::string_view to_string(DType dtype);
// The inverse of to_string; nullopt for any other name.
std::optional<DType> parse_dtype(std::string_view name);
// Bytes per element.
std::size_t item_size(DType dtype);
// The wire dtype of `tensor`'s scalar type; an error naming the scalar type
// (Half, ComplexFloat, …) when the wire formats cannot carry it.
Result<DType> dtype_of(const at::Tensor& tensor);

// --- JSON form ----------------------------------------------------------------
//
// {"dtype": "float32", "shape": [2, 3], "data": [1, 2, 3, 4, 5, 6]}: `data`
// flat in row-major order. `dtype` defaults to float32 and `shape` to
// [len(data)]. Floats that JSON cannot hold are the strings "NaN",
// "Infinity" and "-Infinity"; bool elements are true/false.

// A new CPU tensor from `value`. `where` names the value in error messages
// ("params.inputs[1]").
Result<at::Tensor> tensor_from_json(const nlohmann::json& value, std::string_view where);
// The JSON form of `tensor` (any device, layout or stride; copied to a
// contiguous CPU tensor as needed).
Result<nlohmann::json> tensor_to_json(const at::Tensor& tensor);
// The JSON form without "data": {"dtype", "shape"}.
Result<nlohmann::json> tensor_description(const at::Tensor& tensor);

// --- Binary form --------------------------------------------------------------
//
// All integers little-endian:
//   offset 0  4 bytes   magic "SYMT"
//          4  u8        format version, 1
//          5  u8        dtype code (DType)
//          6  u8        ndim (0 for a scalar)
//          7  u8        reserved, 0
//          8  u64[ndim] dims
//   8+8·ndim            the elements, row-major, little-endian, packed
// The elements start 8-byte aligned and fill the rest exactly.

inline constexpr std::size_t kTensorHeaderSize = 8;

// A new CPU tensor from `bytes`, which must hold exactly one encoded tensor.
Result<at::Tensor> decode_tensor(std::string_view bytes, std::string_view where);
// The binary form of `tensor` (copied to a contiguous CPU tensor as needed).
Result<std::string> encode_tensor(const at::Tensor& tensor);

}  // namespace symphony::extensions::torchscript
