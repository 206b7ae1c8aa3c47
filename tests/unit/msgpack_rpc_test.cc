// Unit tests of the msgpack-rpc codec (ipc/msgpack_rpc.h): StreamDecoder on
// well-formed, misshapen, malformed and hostile streams (limits on size,
// depth and container elements), and the writers round-tripping through it.
#include "ipc/msgpack_rpc.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace symphony::ipc::rpc {
namespace {

using ::testing::HasSubstr;
using Kind = Decoded::Kind;

// Bytes as the tests write them.
using Bytes = std::vector<std::uint8_t>;

Bytes bytes_of(const WriteBuffer& buf) {
  auto b = buf.bytes();
  return Bytes(reinterpret_cast<const std::uint8_t*>(b.data()),
               reinterpret_cast<const std::uint8_t*>(b.data()) + b.size());
}

// Packs whatever `fill` writes with a Packer.
template <class F>
Bytes packed(F&& fill) {
  WriteBuffer buf;
  Packer pk(buf);
  fill(pk);
  return bytes_of(buf);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void feed(StreamDecoder& decoder, const std::uint8_t* data, std::size_t size) {
  auto buf = decoder.prepare(size);
  ASSERT_GE(buf.size(), size);
  std::memcpy(buf.data(), data, size);
  decoder.commit(size);
}
void feed(StreamDecoder& decoder, const Bytes& bytes) { feed(decoder, bytes.data(), bytes.size()); }

// Decodes one complete chunk that must hold exactly one object.
Decoded decode_one(const Bytes& bytes, const DecodeLimits& limits = {}) {
  StreamDecoder decoder(limits);
  feed(decoder, bytes);
  Decoded d = decoder.next();
  if (d.kind != Kind::fatal) {
    EXPECT_EQ(decoder.next().kind, Kind::need_more) << "trailing bytes after the first object";
  }
  return d;
}

std::string str(const msgpack::object& o) {
  EXPECT_EQ(o.type, msgpack::type::STR);
  return {o.via.str.ptr, o.via.str.size};
}

std::string kind_name(Kind k) {
  switch (k) {
    case Kind::need_more: return "need_more";
    case Kind::message: return "message";
    case Kind::invalid: return "invalid";
    case Kind::fatal: return "fatal";
  }
  return "?";
}

// --- well-formed messages -----------------------------------------------------

TEST(StreamDecoder, DecodesARequest) {
  WriteBuffer buf;
  write_request(buf, 7, "pit.start", std::string("job-1"), 3);
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.type, MessageType::request);
  EXPECT_EQ(d.message.id, 7u);
  EXPECT_EQ(d.message.method, "pit.start");
  ASSERT_EQ(d.message.params.type, msgpack::type::ARRAY);
  ASSERT_EQ(d.message.params.via.array.size, 2u);
  EXPECT_EQ(str(d.message.params.via.array.ptr[0]), "job-1");
  EXPECT_EQ(d.message.params.via.array.ptr[1].as<int>(), 3);
}

TEST(StreamDecoder, DecodesANotification) {
  WriteBuffer buf;
  write_notification(buf, "pit.exited", 3, -9);
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.type, MessageType::notification);
  EXPECT_EQ(d.message.method, "pit.exited");
  ASSERT_EQ(d.message.params.via.array.size, 2u);
  EXPECT_EQ(d.message.params.via.array.ptr[1].as<int>(), -9);
}

TEST(StreamDecoder, DecodesAResponse) {
  WriteBuffer buf;
  write_response(buf, 4294967295u, [](Packer& pk) { pk.pack(std::string("done")); });
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.type, MessageType::response);
  EXPECT_EQ(d.message.id, 4294967295u);
  EXPECT_EQ(d.message.error.type, msgpack::type::NIL);
  EXPECT_EQ(str(d.message.result), "done");
}

TEST(StreamDecoder, AMessageOutlivesTheDecoderAndLaterInput) {
  // Message views point into the decoder's buffer; the handle keeps it alive.
  Message kept;
  {
    StreamDecoder decoder({});
    WriteBuffer buf;
    write_request(buf, 1, "symphony.hello", 1, std::string("client"));
    feed(decoder, bytes_of(buf));
    Decoded d = decoder.next();
    ASSERT_EQ(d.kind, Kind::message);
    kept = std::move(d.message);
    // Force the decoder to grow and move its buffer.
    Bytes filler(256 * 1024, 0xc0);  // 256 Ki nils
    feed(decoder, filler);
    for (int i = 0; i < 1000; ++i) ASSERT_EQ(decoder.next().kind, Kind::invalid);
  }
  EXPECT_EQ(kept.method, "symphony.hello");
  EXPECT_EQ(str(kept.params.via.array.ptr[1]), "client");
}

TEST(StreamDecoder, AMovedDecoderStillGrowsItsBuffer) {
  // msgpack's parser refers to its unpacker's buffer hook; a decoder moved
  // (as ipc::Client is when returned) must not leave that reference behind.
  std::optional<StreamDecoder> moved;
  {
    StreamDecoder original({});
    moved.emplace(std::move(original));
  }
  std::vector<Message> kept;
  std::string big(300 * 1024, 'x');
  for (int i = 0; i < 8; ++i) {
    WriteBuffer buf;
    write_response(buf, static_cast<std::uint32_t>(i), [&](Packer& pk) {
      pk.pack_bin(static_cast<std::uint32_t>(big.size()));
      pk.pack_bin_body(big.data(), static_cast<std::uint32_t>(big.size()));
    });
    feed(*moved, bytes_of(buf));
    Decoded d = moved->next();
    ASSERT_EQ(d.kind, Kind::message) << d.problem;
    kept.push_back(std::move(d.message));
  }
  for (const auto& m : kept) EXPECT_EQ(m.result.via.bin.size, big.size());
}

TEST(StreamDecoder, FedOneByteAtATimeYieldsTheMessageOnTheLastByte) {
  WriteBuffer buf;
  write_request(buf, 99, "artifact.put", std::string(300, 'x'), std::vector<int>{1, 2, 3});
  Bytes bytes = bytes_of(buf);
  StreamDecoder decoder({});
  for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
    feed(decoder, &bytes[i], 1);
    Decoded d = decoder.next();
    ASSERT_EQ(d.kind, Kind::need_more) << "at byte " << i << ": " << d.problem;
    EXPECT_EQ(decoder.buffered(), i + 1);
  }
  feed(decoder, &bytes.back(), 1);
  Decoded d = decoder.next();
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.id, 99u);
  EXPECT_EQ(d.message.method, "artifact.put");
  EXPECT_EQ(str(d.message.params.via.array.ptr[0]), std::string(300, 'x'));
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_EQ(decoder.next().kind, Kind::need_more);
}

TEST(StreamDecoder, SeveralMessagesInOneChunkComeOutInOrder) {
  WriteBuffer buf;
  write_request(buf, 1, "a");
  write_notification(buf, "b", 1);
  write_request(buf, 2, "c", 2);
  // And the first half of a fourth.
  WriteBuffer fourth;
  write_request(fourth, 3, "d", std::string("tail"));
  Bytes tail = bytes_of(fourth);
  Bytes chunk = concat({bytes_of(buf), Bytes(tail.begin(), tail.begin() + 5)});

  StreamDecoder decoder({});
  feed(decoder, chunk);
  std::vector<std::string> methods;
  for (;;) {
    Decoded d = decoder.next();
    if (d.kind == Kind::need_more) break;
    ASSERT_EQ(d.kind, Kind::message) << d.problem;
    methods.emplace_back(d.message.method);
  }
  EXPECT_EQ(methods, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(decoder.buffered(), 5u);

  feed(decoder, tail.data() + 5, tail.size() - 5);
  Decoded d = decoder.next();
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.method, "d");
  EXPECT_EQ(d.message.id, 3u);
}

// --- well-formed msgpack of the wrong shape -----------------------------------

struct ShapeCase {
  const char* name;
  Bytes bytes;
  std::optional<std::uint32_t> id;
  const char* problem;
};

std::ostream& operator<<(std::ostream& out, const ShapeCase& c) { return out << c.name; }

class WrongShape : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(WrongShape, IsInvalidWithAHelpfulProblemAndTheStreamGoesOn) {
  const ShapeCase& c = GetParam();
  WriteBuffer next;
  write_request(next, 77, "after");
  StreamDecoder decoder({});
  feed(decoder, concat({c.bytes, bytes_of(next)}));

  Decoded d = decoder.next();
  ASSERT_EQ(kind_name(d.kind), "invalid") << d.problem;
  EXPECT_EQ(d.code, ErrorCode::invalid_message);
  EXPECT_EQ(d.id, c.id);
  EXPECT_EQ(d.problem, c.problem);

  // Valid msgpack keeps the stream in sync: the next message decodes.
  Decoded after = decoder.next();
  ASSERT_EQ(after.kind, Kind::message) << after.problem;
  EXPECT_EQ(after.message.id, 77u);
}

const ShapeCase kShapes[] = {
    {"NotAnArray", packed([](Packer& pk) { pk.pack(5); }), std::nullopt,
     "a message must be an array, got integer"},
    {"MapInsteadOfArray", packed([](Packer& pk) { pk.pack_map(0); }), std::nullopt,
     "a message must be an array, got map"},
    {"EmptyArray", packed([](Packer& pk) { pk.pack_array(0); }), std::nullopt,
     "message type (element 0) must be 0 (request), 1 (response) or 2 (notification)"},
    {"TypeThree",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(3);
       pk.pack(1);
       pk.pack(std::string("m"));
       pk.pack_array(0);
     }),
     std::nullopt,
     "message type (element 0) must be 0 (request), 1 (response) or 2 (notification)"},
    {"TypeIsAString",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(std::string("0"));
       pk.pack(1);
       pk.pack(std::string("m"));
       pk.pack_array(0);
     }),
     std::nullopt,
     "message type (element 0) must be 0 (request), 1 (response) or 2 (notification)"},
    {"RequestWithThreeElementsKeepsItsId",
     packed([](Packer& pk) {
       pk.pack_array(3);
       pk.pack(0);
       pk.pack(9);
       pk.pack(std::string("m"));
     }),
     9u, "a request has 4 elements, got 3"},
    {"RequestWithFiveElementsKeepsItsId",
     packed([](Packer& pk) {
       pk.pack_array(5);
       pk.pack(0);
       pk.pack(10);
       pk.pack(std::string("m"));
       pk.pack_array(0);
       pk.pack_nil();
     }),
     10u, "a request has 4 elements, got 5"},
    {"ResponseWithTwoElements",
     packed([](Packer& pk) {
       pk.pack_array(2);
       pk.pack(1);
       pk.pack(11);
     }),
     11u, "a response has 4 elements, got 2"},
    {"MethodNotAString",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(0);
       pk.pack(12);
       pk.pack(5);
       pk.pack_array(0);
     }),
     12u, "method (element 2) must be a string, got integer"},
    {"ParamsNotAnArray",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(0);
       pk.pack(13);
       pk.pack(std::string("m"));
       pk.pack_map(0);
     }),
     13u, "params (element 3) must be an array, got map"},
    {"MsgidAbove32Bits",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(0);
       pk.pack(std::uint64_t{4294967296});
       pk.pack(std::string("m"));
       pk.pack_array(0);
     }),
     std::nullopt, "msgid (element 1) must be an unsigned 32-bit integer"},
    {"NegativeMsgid",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(0);
       pk.pack(-1);
       pk.pack(std::string("m"));
       pk.pack_array(0);
     }),
     std::nullopt, "msgid (element 1) must be an unsigned 32-bit integer"},
    {"NotificationMethodNotAString",
     packed([](Packer& pk) {
       pk.pack_array(3);
       pk.pack(2);
       pk.pack(5);
       pk.pack_array(0);
     }),
     std::nullopt, "method (element 1) must be a string, got integer"},
    {"NotificationParamsNotAnArray",
     packed([](Packer& pk) {
       pk.pack_array(3);
       pk.pack(2);
       pk.pack(std::string("m"));
       pk.pack_nil();
     }),
     std::nullopt, "params (element 2) must be an array, got nil"},
    {"NotificationWithFourElements",
     packed([](Packer& pk) {
       pk.pack_array(4);
       pk.pack(2);
       pk.pack(std::string("m"));
       pk.pack_array(0);
       pk.pack_nil();
     }),
     std::nullopt, "a notification has 3 elements, got 4"},
};

INSTANTIATE_TEST_SUITE_P(Messages, WrongShape, ::testing::ValuesIn(kShapes),
                         [](const ::testing::TestParamInfo<ShapeCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(StreamDecoder, AcceptsTheLargestMsgid) {
  Decoded d = decode_one(packed([](Packer& pk) {
    pk.pack_array(4);
    pk.pack(0);
    pk.pack(std::uint64_t{4294967295});
    pk.pack(std::string("m"));
    pk.pack_array(0);
  }));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.id, 4294967295u);
}

// --- malformed and hostile input ----------------------------------------------

TEST(StreamDecoder, NeverUsedByteIsAFatalParseError) {
  WriteBuffer good;
  write_request(good, 1, "ok");
  StreamDecoder decoder({});
  feed(decoder, concat({bytes_of(good), Bytes{0xc1}, bytes_of(good)}));
  ASSERT_EQ(decoder.next().kind, Kind::message);
  Decoded d = decoder.next();
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::parse_error);
  EXPECT_THAT(d.problem, HasSubstr("malformed msgpack"));
  // The stream cannot be trusted any more: no message after it, ever.
  Decoded again = decoder.next();
  EXPECT_EQ(again.kind, Kind::fatal);
  EXPECT_EQ(again.code, ErrorCode::internal_error);
}

// A request whose params hold `levels` arrays nested inside each other.
Bytes request_with_nesting(int levels) {
  return packed([&](Packer& pk) {
    pk.pack_array(4);
    pk.pack(0);
    pk.pack(1);
    pk.pack(std::string("m"));
    pk.pack_array(1);  // params
    for (int i = 0; i < levels; ++i) pk.pack_array(1);
    pk.pack(42);
  });
}

TEST(StreamDecoder, NestingUpToTheLimitDecodes) {
  DecodeLimits limits;
  limits.max_depth = 8;
  // message + params + 6 = 8 nested arrays.
  Decoded d = decode_one(request_with_nesting(6), limits);
  EXPECT_EQ(kind_name(d.kind), "message") << d.problem;
}

TEST(StreamDecoder, NestingDeeperThanTheLimitIsFatal) {
  DecodeLimits limits;
  limits.max_depth = 8;
  Decoded d = decode_one(request_with_nesting(7), limits);
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::limit_exceeded);
  EXPECT_EQ(d.problem, "nesting deeper than 8 levels");
}

TEST(StreamDecoder, DeepNestingIsRejectedBeforeTheMessageIsComplete) {
  // 10,000 open arrays and no end: the limit trips on the headers alone.
  StreamDecoder decoder({});
  feed(decoder, Bytes(10'000, 0x91));
  Decoded d = decoder.next();
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::limit_exceeded);
  EXPECT_EQ(d.problem, "nesting deeper than 32 levels");
}

// [0, 1, "m", [<str32 header claiming `claimed` bytes>
Bytes request_with_str32_header(std::uint32_t claimed) {
  Bytes head = {0x94, 0x00, 0x01, 0xa1, 'm', 0x91, 0xdb};
  for (int shift = 24; shift >= 0; shift -= 8) head.push_back(static_cast<std::uint8_t>(claimed >> shift));
  return head;
}

TEST(StreamDecoder, LyingStringHeaderIsFatalOnceTheBufferPassesTheLimit) {
  DecodeLimits limits;
  limits.max_message_size = 1024 * 1024;
  StreamDecoder decoder(limits);
  feed(decoder, request_with_str32_header(100 * 1024 * 1024));
  ASSERT_EQ(decoder.next().kind, Kind::need_more);

  Bytes chunk(64 * 1024, 'a');
  Decoded d;
  while (decoder.buffered() <= limits.max_message_size) {
    feed(decoder, chunk);
    d = decoder.next();
    if (decoder.buffered() <= limits.max_message_size) {
      ASSERT_EQ(kind_name(d.kind), "need_more") << "at " << decoder.buffered() << " bytes";
    }
  }
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::message_too_large);
  EXPECT_EQ(d.problem, "message exceeds the limit of 1048576 bytes");
}

TEST(StreamDecoder, IncompleteStringUnderTheLimitWaitsForMore) {
  DecodeLimits limits;
  limits.max_message_size = 1024 * 1024;
  StreamDecoder decoder(limits);
  // Claims 512 KiB, delivers 300 KiB and then nothing.
  feed(decoder, request_with_str32_header(512 * 1024));
  Bytes chunk(100 * 1024, 'a');
  for (int i = 0; i < 3; ++i) {
    feed(decoder, chunk);
    ASSERT_EQ(kind_name(decoder.next().kind), "need_more");
  }
  EXPECT_EQ(decoder.buffered(), 11u + 300 * 1024);
}

TEST(StreamDecoder, CompleteMessageOverTheLimitIsFatal) {
  DecodeLimits limits;
  limits.max_message_size = 4096;
  // Many small strings: no single string is over the limit, the message is.
  std::vector<std::string> parts(500, std::string(20, 'p'));
  WriteBuffer buf;
  write_request(buf, 5, "big", parts);
  ASSERT_GT(buf.size(), limits.max_message_size);
  Decoded d = decode_one(bytes_of(buf), limits);
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::message_too_large);
  EXPECT_EQ(d.problem, "message of " + std::to_string(buf.size()) +
                           " bytes exceeds the limit of 4096 bytes");
}

TEST(StreamDecoder, MessageExactlyAtTheLimitDecodes) {
  WriteBuffer buf;
  write_request(buf, 5, "fits", std::string(100, 'x'));
  DecodeLimits limits;
  limits.max_message_size = buf.size();
  Decoded d = decode_one(bytes_of(buf), limits);
  EXPECT_EQ(kind_name(d.kind), "message") << d.problem;
}

TEST(StreamDecoder, ArrayHeaderClaimingTooManyElementsIsFatal) {
  DecodeLimits limits;
  limits.max_container_elements = 1000;
  // [0, 1, "m", <array32 header claiming 1001 elements>
  Bytes bytes = {0x94, 0x00, 0x01, 0xa1, 'm', 0xdd, 0x00, 0x00, 0x03, 0xe9};
  StreamDecoder decoder(limits);
  feed(decoder, bytes);
  Decoded d = decoder.next();
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::limit_exceeded);
  EXPECT_THAT(d.problem, HasSubstr("1000 container elements"));
}

TEST(StreamDecoder, MapHeaderClaimingTooManyEntriesIsFatal) {
  DecodeLimits limits;
  limits.max_container_elements = 1000;
  Bytes bytes = {0xdf, 0x00, 0x01, 0x00, 0x00};  // map32 with 65536 entries
  Decoded d = decode_one(bytes, limits);
  ASSERT_EQ(kind_name(d.kind), "fatal");
  EXPECT_EQ(d.code, ErrorCode::limit_exceeded);
}

TEST(StreamDecoder, ContainerAtTheElementLimitDecodes) {
  DecodeLimits limits;
  limits.max_container_elements = 1000;
  WriteBuffer buf;
  write_request(buf, 1, "m", std::vector<int>(999, 1));  // params: 1 array of 999
  Decoded d = decode_one(bytes_of(buf), limits);
  EXPECT_EQ(kind_name(d.kind), "message") << d.problem;
}

// --- writers and error objects ------------------------------------------------

TEST(Writers, ErrorResponseRoundTrips) {
  WriteBuffer buf;
  write_error_response(buf, 12, ErrorCode::unknown_method, "unknown method 'pit.frobnicate'");
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.type, MessageType::response);
  EXPECT_EQ(d.message.id, 12u);
  EXPECT_EQ(d.message.result.type, msgpack::type::NIL);
  ASSERT_EQ(d.message.error.type, msgpack::type::MAP);
  EXPECT_EQ(describe_error(d.message.error), "unknown_method: unknown method 'pit.frobnicate'");
}

TEST(Writers, ErrorNotificationRoundTrips) {
  WriteBuffer buf;
  write_error_notification(buf, ErrorCode::access_denied, "uid 1000 is not allowed");
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.type, MessageType::notification);
  EXPECT_EQ(d.message.method, kErrorNotification);
  ASSERT_EQ(d.message.params.via.array.size, 1u);
  EXPECT_EQ(describe_error(d.message.params.via.array.ptr[0]),
            "access_denied: uid 1000 is not allowed");
}

TEST(Writers, ResponseWithAStructuredResultRoundTrips) {
  WriteBuffer buf;
  write_response(buf, 3, [](Packer& pk) {
    pk.pack_map(2);
    pk.pack(std::string("pits"));
    pk.pack(std::vector<int>{1, 2});
    pk.pack(std::string("ok"));
    pk.pack(true);
  });
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  ASSERT_EQ(d.message.result.type, msgpack::type::MAP);
  auto m = d.message.result.as<std::map<std::string, msgpack::object>>();
  EXPECT_EQ(m.at("pits").as<std::vector<int>>(), (std::vector<int>{1, 2}));
  EXPECT_TRUE(m.at("ok").as<bool>());
}

TEST(Writers, RequestWithoutArgumentsHasEmptyParams) {
  WriteBuffer buf;
  write_request(buf, 8, "daemon.status");
  Decoded d = decode_one(bytes_of(buf));
  ASSERT_EQ(d.kind, Kind::message) << d.problem;
  EXPECT_EQ(d.message.params.type, msgpack::type::ARRAY);
  EXPECT_EQ(d.message.params.via.array.size, 0u);
}

TEST(DescribeError, ReadsAnyShapeAPeerMaySend) {
  msgpack::zone zone;
  EXPECT_EQ(describe_error(msgpack::object(std::string_view("plain text"), zone)), "plain text");
  EXPECT_EQ(describe_error(msgpack::object(42, zone)), "42");

  std::map<std::string, std::string> only_code{{"code", "failed"}};
  EXPECT_EQ(describe_error(msgpack::object(only_code, zone)), "failed: ");

  std::map<std::string, int> odd{{"errno", 5}};
  EXPECT_EQ(describe_error(msgpack::object(odd, zone)), "{\"errno\":5}");
}

TEST(ErrorCodes, NamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::not_found); ++i) {
    auto code = static_cast<ErrorCode>(i);
    std::string_view name = to_string(code);
    EXPECT_FALSE(name.empty());
    EXPECT_EQ(error_code_from_string(name), code) << name;
  }
  EXPECT_EQ(to_string(ErrorCode::handshake_required), "handshake_required");
  EXPECT_EQ(to_string(ErrorCode::failed), "failed");
  EXPECT_EQ(error_code_from_string("no_such_code"), std::nullopt);
  EXPECT_EQ(error_code_from_string(""), std::nullopt);
}

TEST(TypeName, NamesEveryMsgpackType) {
  msgpack::zone zone;
  EXPECT_EQ(type_name(msgpack::object()), "nil");
  EXPECT_EQ(type_name(msgpack::object(true)), "boolean");
  EXPECT_EQ(type_name(msgpack::object(-3)), "integer");
  EXPECT_EQ(type_name(msgpack::object(3u)), "integer");
  EXPECT_EQ(type_name(msgpack::object(1.5)), "float");
  EXPECT_EQ(type_name(msgpack::object(std::string_view("s"), zone)), "string");
  EXPECT_EQ(type_name(msgpack::object(std::vector<int>{}, zone)), "array");
}

}  // namespace
}  // namespace symphony::ipc::rpc
