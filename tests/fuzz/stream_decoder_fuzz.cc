// libFuzzer target for rpc::StreamDecoder, the parser every byte from a
// client goes through. The input's first byte says how many chunk-size bytes
// follow (0..7); those sizes, used in turn, split the rest of the input into
// the chunks the decoder is fed, so the fuzzer explores message boundaries
// as well as contents. After each chunk, next() is drained until need_more or
// fatal, the way the server does. Limits are small so that the size, depth
// and element checks are reachable with short inputs.
//
// The last message decoded is kept while later chunks are fed (the decoder
// may move its buffer) and read again, as a Responder or a method may hold a
// message's views: a dangling view shows up under AddressSanitizer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "ipc/msgpack_rpc.h"

namespace {

using symphony::ipc::rpc::Decoded;
using symphony::ipc::rpc::DecodeLimits;
using symphony::ipc::rpc::Message;
using symphony::ipc::rpc::MessageType;
using symphony::ipc::rpc::StreamDecoder;

// Reads every byte a message's views point at, and checks the shape
// classify() promises.
std::size_t touch(const Message& m) {
  std::size_t sum = 0;
  for (char c : m.method) sum += static_cast<unsigned char>(c);
  switch (m.type) {
    case MessageType::request:
    case MessageType::notification:
      if (m.params.type != msgpack::type::ARRAY) __builtin_trap();
      for (std::uint32_t i = 0; i < m.params.via.array.size; ++i) {
        sum += symphony::ipc::rpc::type_name(m.params.via.array.ptr[i]).size();
      }
      break;
    case MessageType::response:
      sum += symphony::ipc::rpc::describe_error(m.error).size();
      break;
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t n_sizes = data[0] & 0x07;
  if (size < 1 + n_sizes) return 0;
  const std::uint8_t* sizes = data + 1;
  const std::uint8_t* payload = data + 1 + n_sizes;
  std::size_t remaining = size - 1 - n_sizes;

  DecodeLimits limits;
  limits.max_message_size = 4096;
  limits.max_depth = 8;
  limits.max_container_elements = 64;
  StreamDecoder decoder(limits);

  std::optional<Message> kept;
  volatile std::size_t sink = 0;
  std::size_t turn = 0;
  while (remaining > 0) {
    // Chunk sizes 1..256 from the size bytes; with none, everything at once.
    std::size_t chunk = n_sizes == 0 ? remaining : std::size_t{sizes[turn++ % n_sizes]} + 1;
    if (chunk > remaining) chunk = remaining;
    auto buf = decoder.prepare(chunk);
    if (buf.size() < chunk) __builtin_trap();
    std::memcpy(buf.data(), payload, chunk);
    decoder.commit(chunk);
    payload += chunk;
    remaining -= chunk;

    if (kept) sink = sink + touch(*kept);
    for (;;) {
      Decoded d = decoder.next();
      if (d.kind == Decoded::Kind::need_more) break;
      if (d.kind == Decoded::Kind::fatal) {
        if (d.problem.empty()) __builtin_trap();
        return 0;
      }
      if (d.kind == Decoded::Kind::invalid) {
        if (d.problem.empty()) __builtin_trap();
        continue;
      }
      sink = sink + touch(d.message);
      kept = std::move(d.message);
    }
    // An incomplete message is never held past the limit.
    if (decoder.buffered() > limits.max_message_size) __builtin_trap();
  }
  if (kept) sink = sink + touch(*kept);
  return 0;
}
