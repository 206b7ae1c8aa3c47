// msgpack → JSON conversion for symphonyctl.
#include "cli/msgpack_json.h"

#include <string>

namespace symphony::cli {
namespace {

std::string hex(const char* data, std::size_t size) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    auto b = static_cast<unsigned char>(data[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

nlohmann::json to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR: return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: return hex(o.via.bin.ptr, o.via.bin.size);
    case msgpack::type::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      nlohmann::json m = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        std::string key = kv.key.type == msgpack::type::STR
                              ? std::string(kv.key.via.str.ptr, kv.key.via.str.size)
                              : to_json(kv.key).dump();
        m[key] = to_json(kv.val);
      }
      return m;
    }
    case msgpack::type::EXT:
      return {{"ext_type", o.via.ext.type()}, {"hex", hex(o.via.ext.data(), o.via.ext.size)}};
  }
  return nullptr;
}

}  // namespace symphony::cli
