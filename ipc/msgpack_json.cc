// msgpack ⇄ JSON conversion.
#include "ipc/msgpack_json.h"

#include <string>

namespace symphony::ipc {
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

void pack_json(rpc::Packer& pk, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded: pk.pack_nil(); return;
    case nlohmann::json::value_t::boolean: pk.pack(j.get<bool>()); return;
    case nlohmann::json::value_t::number_integer: pk.pack(j.get<std::int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: pk.pack(j.get<std::uint64_t>()); return;
    // Always a float64, even for integral values (pack_exact's rule).
    case nlohmann::json::value_t::number_float: pk.pack_double(j.get<double>()); return;
    case nlohmann::json::value_t::string: pk.pack(j.get_ref<const std::string&>()); return;
    case nlohmann::json::value_t::binary: {
      const auto& b = j.get_binary();
      pk.pack_bin(static_cast<std::uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
      return;
    }
    case nlohmann::json::value_t::array:
      pk.pack_array(static_cast<std::uint32_t>(j.size()));
      for (const auto& e : j) pack_json(pk, e);
      return;
    case nlohmann::json::value_t::object:
      pk.pack_map(static_cast<std::uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        pk.pack(k);
        pack_json(pk, v);
      }
      return;
  }
}

}  // namespace symphony::ipc
