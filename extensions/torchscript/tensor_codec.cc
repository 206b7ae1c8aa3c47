// The two tensor forms of tensor_codec.h. Every element is checked on the way
// in: 300 for a uint8 tensor or 1e39 for float32 is an error, never a silent
// wrap or an undefined conversion; a binary tensor must fill its bytes exactly.
#include "extensions/torchscript/tensor_codec.h"

#include "extensions/torchscript/torch_error.h"

#include <ATen/ops/empty.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace symphony::extensions::torchscript {
namespace {

using nlohmann::json;

struct DTypeRow {
  DType dtype;
  std::string_view name;
  at::ScalarType scalar;
  std::size_t size;
};
constexpr std::array<DTypeRow, 6> kDTypes = {{
    {DType::float32, "float32", at::kFloat, 4},
    {DType::float64, "float64", at::kDouble, 8},
    {DType::int64, "int64", at::kLong, 8},
    {DType::int32, "int32", at::kInt, 4},
    {DType::uint8, "uint8", at::kByte, 1},
    {DType::boolean, "bool", at::kBool, 1},
}};
constexpr std::string_view kDTypeNames = "float32, float64, int64, int32, uint8, bool";

constexpr std::array<char, 4> kMagic = {'S', 'Y', 'M', 'T'};
constexpr std::uint8_t kFormatVersion = 1;
constexpr std::string_view kNaN = "NaN";
constexpr std::string_view kInfinity = "Infinity";
constexpr std::string_view kMinusInfinity = "-Infinity";

const DTypeRow& row(DType dtype) {
  for (const auto& r : kDTypes) {
    if (r.dtype == dtype) return r;
  }
  return kDTypes[0];  // unreachable: every enumerator has a row
}

at::ScalarType scalar_type(DType dtype) { return row(dtype).scalar; }

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// The wire is little-endian; a big-endian host reverses each element.
void swap_to_little_endian(char* data, std::size_t count, std::size_t size) {
  if constexpr (std::endian::native == std::endian::big) {
    for (std::size_t i = 0; i < count; ++i) std::reverse(data + i * size, data + (i + 1) * size);
  } else {
    (void)data, (void)count, (void)size;
  }
}

void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint64_t get_u64(const char* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

// A copy of `tensor` (or `tensor` itself) that is dense, on the CPU and
// contiguous, so that its elements can be read from data_ptr() in order.
Result<at::Tensor> cpu_contiguous(const at::Tensor& tensor) {
  if (!tensor.defined()) return Error::invalid("undefined tensor");
  if (tensor.layout() != at::kStrided) {
    return Error::invalid(fmt::format("{} tensors are not supported; only dense (strided) ones",
                                      c10::toString(tensor.layout())));
  }
  return tensor.cpu().contiguous();
}

std::string element_where(std::string_view where, std::size_t i) {
  return fmt::format("{}.data[{}]", where, i);
}

Result<double> read_float(const json& e, DType dtype, std::string_view where, std::size_t i) {
  if (e.is_number()) {
    double v = e.get<double>();
    if (dtype == DType::float32 && std::abs(v) > std::numeric_limits<float>::max()) {
      return Error::invalid(
          fmt::format("{}: {} is out of range for float32", element_where(where, i), e.dump()));
    }
    return v;
  }
  if (e.is_string()) {
    const auto& s = e.get_ref<const std::string&>();
    if (s == kNaN) return std::numeric_limits<double>::quiet_NaN();
    if (s == kInfinity) return std::numeric_limits<double>::infinity();
    if (s == kMinusInfinity) return -std::numeric_limits<double>::infinity();
  }
  return Error::invalid(
      fmt::format("{}: expected a number (or \"NaN\", \"Infinity\", \"-Infinity\") for {}, got {}",
                  element_where(where, i), to_string(dtype), e.dump()));
}

template <class T>
Result<T> read_integer(const json& e, DType dtype, std::string_view where, std::size_t i) {
  if (e.is_number_unsigned()) {
    auto v = e.get<std::uint64_t>();
    if (v <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
  } else if (e.is_number_integer()) {
    auto v = e.get<std::int64_t>();
    if (v >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
        v <= static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
      return static_cast<T>(v);
    }
  } else {
    return Error::invalid(fmt::format("{}: expected an integer for {}, got {}",
                                      element_where(where, i), to_string(dtype), e.dump()));
  }
  return Error::invalid(fmt::format("{}: {} is out of range for {}", element_where(where, i),
                                    e.dump(), to_string(dtype)));
}

// Fills `out` (numel elements of `dtype`) from the JSON array `data`.
Result<void> fill_from_json(void* out, DType dtype, const json& data, std::string_view where) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    const json& e = data[i];
    switch (dtype) {
      case DType::float32:
      case DType::float64: {
        auto v = read_float(e, dtype, where, i);
        if (!v) return std::move(v).error();
        if (dtype == DType::float32) {
          static_cast<float*>(out)[i] = static_cast<float>(*v);
        } else {
          static_cast<double*>(out)[i] = *v;
        }
        break;
      }
      case DType::int64: {
        auto v = read_integer<std::int64_t>(e, dtype, where, i);
        if (!v) return std::move(v).error();
        static_cast<std::int64_t*>(out)[i] = *v;
        break;
      }
      case DType::int32: {
        auto v = read_integer<std::int32_t>(e, dtype, where, i);
        if (!v) return std::move(v).error();
        static_cast<std::int32_t*>(out)[i] = *v;
        break;
      }
      case DType::uint8: {
        auto v = read_integer<std::uint8_t>(e, dtype, where, i);
        if (!v) return std::move(v).error();
        static_cast<std::uint8_t*>(out)[i] = *v;
        break;
      }
      case DType::boolean:
        if (!e.is_boolean()) {
          return Error::invalid(fmt::format("{}: expected true or false for bool, got {}",
                                            element_where(where, i), e.dump()));
        }
        static_cast<bool*>(out)[i] = e.get<bool>();
        break;
    }
  }
  return ok();
}

json float_to_json(double v) {
  if (std::isnan(v)) return json(kNaN);
  if (std::isinf(v)) return json(v > 0 ? kInfinity : kMinusInfinity);
  return json(v);
}

// A float32 element as the double with the shortest decimal form that still
// reads back (through read_float's double → float) as the same float: 0.1f
// appears as 0.1, not 0.10000000149011612.
json float32_to_json(float f) {
  if (!std::isfinite(f)) return float_to_json(f);
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), f);
  double d = f;
  if (ec == std::errc()) {
    double shortest = 0;
    auto parsed = std::from_chars(buf.data(), end, shortest);
    if (parsed.ec == std::errc() && static_cast<float>(shortest) == f) d = shortest;
  }
  return json(d);
}

json element_to_json(const void* data, DType dtype, std::size_t i) {
  switch (dtype) {
    case DType::float32:
      return float32_to_json(static_cast<const float*>(data)[i]);
    case DType::float64:
      return float_to_json(static_cast<const double*>(data)[i]);
    case DType::int64:
      return json(static_cast<const std::int64_t*>(data)[i]);
    case DType::int32:
      return json(static_cast<const std::int32_t*>(data)[i]);
    case DType::uint8:
      return json(static_cast<const std::uint8_t*>(data)[i]);
    case DType::boolean:
      return json(static_cast<const bool*>(data)[i]);
  }
  return json();
}

}  // namespace

std::string_view to_string(DType dtype) { return row(dtype).name; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& r : kDTypes) {
    if (r.name == name) return r.dtype;
  }
  return std::nullopt;
}

std::size_t item_size(DType dtype) { return row(dtype).size; }

Result<DType> dtype_of(const at::Tensor& tensor) {
  for (const auto& r : kDTypes) {
    if (r.scalar == tensor.scalar_type()) return r.dtype;
  }
  return Error::invalid(fmt::format("dtype {} cannot be carried (supported: {})",
                                    c10::toString(tensor.scalar_type()), kDTypeNames));
}

namespace {

Result<at::Tensor> from_json_impl(const json& value, std::string_view where) {
  if (!value.is_object()) {
    return Error::invalid(fmt::format(
        R"({}: expected a tensor {{"dtype", "shape", "data"}}, got {})", where, value.type_name()));
  }
  for (const auto& [key, _] : value.items()) {
    if (key != "dtype" && key != "shape" && key != "data") {
      return Error::invalid(
          fmt::format("{}.{}: unknown field (expected dtype, shape, data)", where, key));
    }
  }

  DType dtype = DType::float32;
  if (auto it = value.find("dtype"); it != value.end()) {
    auto parsed = it->is_string() ? parse_dtype(it->get_ref<const std::string&>()) : std::nullopt;
    if (!parsed) {
      return Error::invalid(
          fmt::format("{}.dtype: {} is not one of {}", where, it->dump(), kDTypeNames));
    }
    dtype = *parsed;
  }

  auto data = value.find("data");
  if (data == value.end())
    return Error::invalid(fmt::format("{}.data: missing required field", where));
  if (!data->is_array()) {
    return Error::invalid(fmt::format("{}.data: expected a flat array of elements, got {}", where,
                                      data->type_name()));
  }

  std::vector<std::int64_t> shape;
  if (auto it = value.find("shape"); it != value.end()) {
    if (!it->is_array()) {
      return Error::invalid(
          fmt::format("{}.shape: expected an array of sizes, got {}", where, it->type_name()));
    }
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& d = (*it)[i];
      bool size = d.is_number_unsigned()
                      ? d.get<std::uint64_t>() <=
                            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())
                      : d.is_number_integer() && d.get<std::int64_t>() >= 0;
      if (!size) {
        return Error::invalid(fmt::format("{}.shape[{}]: expected a size (an integer >= 0), got {}",
                                          where, i, d.dump()));
      }
      shape.push_back(d.get<std::int64_t>());
    }
  } else {
    shape.push_back(static_cast<std::int64_t>(data->size()));
  }

  // The element count the shape describes, refusing overflow before comparing.
  std::uint64_t numel = 1;
  for (std::int64_t d : shape) {
    if (__builtin_mul_overflow(numel, static_cast<std::uint64_t>(d), &numel)) {
      return Error::invalid(fmt::format("{}.shape: {} is too large", where, shape_text(shape)));
    }
  }
  if (numel != data->size()) {
    return Error::invalid(fmt::format("{}: shape {} holds {} elements, data has {}", where,
                                      shape_text(shape), numel, data->size()));
  }

  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(scalar_type(dtype)));
  if (auto filled = fill_from_json(tensor.data_ptr(), dtype, *data, where); !filled)
    return std::move(filled).error();
  return tensor;
}

Result<json> describe_impl(const at::Tensor& tensor) {
  if (!tensor.defined()) return Error::invalid("undefined tensor");
  auto dtype = dtype_of(tensor);
  if (!dtype) return std::move(dtype).error();
  return json{{"dtype", to_string(*dtype)}, {"shape", tensor.sizes().vec()}};
}

Result<json> to_json_impl(const at::Tensor& tensor) {
  auto out = describe_impl(tensor);
  if (!out) return out;
  auto dense = cpu_contiguous(tensor);
  if (!dense) return std::move(dense).error();
  DType dtype = *dtype_of(*dense);
  const void* data = dense->data_ptr();
  auto n = static_cast<std::size_t>(dense->numel());
  json elements = json::array();
  elements.get_ref<json::array_t&>().reserve(n);
  for (std::size_t i = 0; i < n; ++i) elements.push_back(element_to_json(data, dtype, i));
  (*out)["data"] = std::move(elements);
  return out;
}

Result<std::string> encode_impl(const at::Tensor& tensor) {
  if (!tensor.defined()) return Error::invalid("undefined tensor");
  auto dtype = dtype_of(tensor);
  if (!dtype) return std::move(dtype).error();
  if (tensor.dim() > std::numeric_limits<std::uint8_t>::max()) {
    return Error::invalid(
        fmt::format("{} dimensions cannot be carried (at most 255)", tensor.dim()));
  }
  auto dense = cpu_contiguous(tensor);
  if (!dense) return std::move(dense).error();

  std::string out(kMagic.data(), kMagic.size());
  out.push_back(static_cast<char>(kFormatVersion));
  out.push_back(static_cast<char>(*dtype));
  out.push_back(static_cast<char>(dense->dim()));
  out.push_back('\0');
  for (std::int64_t d : dense->sizes()) put_u64(out, static_cast<std::uint64_t>(d));
  std::size_t header = out.size();
  std::size_t size = item_size(*dtype);
  auto count = static_cast<std::size_t>(dense->numel());
  out.resize(header + count * size);
  if (count > 0) std::memcpy(out.data() + header, dense->data_ptr(), count * size);
  swap_to_little_endian(out.data() + header, count, size);
  return out;
}

Result<at::Tensor> decode_impl(std::string_view bytes, std::string_view where) {
  if (bytes.size() < kTensorHeaderSize) {
    return Error::invalid(fmt::format("{}: {} bytes is too short for a tensor header ({} bytes)",
                                      where, bytes.size(), kTensorHeaderSize));
  }
  if (!std::equal(kMagic.begin(), kMagic.end(), bytes.begin())) {
    return Error::invalid(
        fmt::format("{}: not a Symphony tensor (the first bytes are not \"SYMT\")", where));
  }
  auto version = static_cast<std::uint8_t>(bytes[4]);
  auto code = static_cast<std::uint8_t>(bytes[5]);
  auto ndim = static_cast<std::uint8_t>(bytes[6]);
  if (version != kFormatVersion) {
    return Error::invalid(
        fmt::format("{}: tensor format version {}; this extension reads version {}", where, version,
                    kFormatVersion));
  }
  auto found = std::find_if(kDTypes.begin(), kDTypes.end(), [&](const DTypeRow& r) {
    return static_cast<std::uint8_t>(r.dtype) == code;
  });
  if (found == kDTypes.end())
    return Error::invalid(fmt::format("{}: unknown dtype code {}", where, code));
  DType dtype = found->dtype;
  if (bytes[7] != '\0')
    return Error::invalid(fmt::format("{}: reserved header byte 7 is not 0", where));

  std::size_t header = kTensorHeaderSize + 8 * std::size_t{ndim};
  if (bytes.size() < header) {
    return Error::invalid(
        fmt::format("{}: header of {} dimensions needs {} bytes, the tensor has {}", where, ndim,
                    header, bytes.size()));
  }
  std::vector<std::int64_t> shape;
  std::uint64_t count = 1;
  for (std::size_t i = 0; i < ndim; ++i) {
    std::uint64_t d = get_u64(bytes.data() + kTensorHeaderSize + 8 * i);
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
        __builtin_mul_overflow(count, d, &count)) {
      return Error::invalid(fmt::format("{}: dimension {} ({}) is too large", where, i, d));
    }
    shape.push_back(static_cast<std::int64_t>(d));
  }
  std::uint64_t expected = 0;
  if (__builtin_mul_overflow(count, std::uint64_t{item_size(dtype)}, &expected)) {
    return Error::invalid(fmt::format("{}: shape {} is too large", where, shape_text(shape)));
  }
  if (expected != bytes.size() - header) {
    return Error::invalid(
        fmt::format("{}: shape {} of {} needs {} bytes of data, the tensor has {}", where,
                    shape_text(shape), to_string(dtype), expected, bytes.size() - header));
  }
  if (dtype == DType::boolean) {
    // A bool byte other than 0 or 1 is undefined behaviour once torch reads it.
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data() + header);
    for (std::uint64_t i = 0; i < count; ++i) {
      if (b[i] > 1)
        return Error::invalid(
            fmt::format("{}: bool element {} is {}, not 0 or 1", where, i, unsigned{b[i]}));
    }
  }

  at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(scalar_type(dtype)));
  auto* out = static_cast<char*>(tensor.data_ptr());
  if (expected > 0) std::memcpy(out, bytes.data() + header, expected);
  swap_to_little_endian(out, count, item_size(dtype));
  return tensor;
}

}  // namespace

Result<at::Tensor> tensor_from_json(const json& value, std::string_view where) {
  return catch_torch(where, [&] { return from_json_impl(value, where); });
}

Result<json> tensor_description(const at::Tensor& tensor) {
  return catch_torch("tensor", [&] { return describe_impl(tensor); });
}

Result<json> tensor_to_json(const at::Tensor& tensor) {
  return catch_torch("tensor", [&] { return to_json_impl(tensor); });
}

Result<std::string> encode_tensor(const at::Tensor& tensor) {
  return catch_torch("tensor", [&] { return encode_impl(tensor); });
}

Result<at::Tensor> decode_tensor(std::string_view bytes, std::string_view where) {
  return catch_torch(where, [&] { return decode_impl(bytes, where); });
}

}  // namespace symphony::extensions::torchscript
