// SHA-256 digests (pit/digest.h): the known-answer vectors of FIPS 180-2,
// streaming equal to one shot, and parse errors that say what is wrong.
#include "pit/digest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace symphony::pit {
namespace {

using ::testing::HasSubstr;

TEST(Digest, MatchesTheFipsVectors) {
  EXPECT_EQ(Digest::of(std::string_view("abc")).hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Digest::of(std::string_view("")).to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Digest, StreamingEqualsOneShotAndTheHasherResets) {
  Hasher h;
  h.update(std::string_view("ab"));
  h.update(std::string_view("c"));
  EXPECT_EQ(h.finish(), Digest::of(std::string_view("abc")));
  h.update(std::string_view("abc"));
  EXPECT_EQ(h.finish(), Digest::of(std::string_view("abc")));
}

TEST(Digest, ParsesWithOrWithoutPrefixInEitherCase) {
  Digest d = Digest::of(std::string_view("abc"));
  EXPECT_EQ(*Digest::parse(d.to_string()), d);
  EXPECT_EQ(*Digest::parse(d.hex()), d);
  std::string upper = d.hex();
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(*Digest::parse("sha256:" + upper), d);
}

TEST(Digest, BadInputSaysWhatIsWrong) {
  EXPECT_THAT(Digest::parse("md5:abcd").error().message(), HasSubstr("unsupported algorithm 'md5'"));
  EXPECT_THAT(Digest::parse("sha256:abcd").error().message(), HasSubstr("expected 64 hex digits"));
  std::string bad(64, 'a');
  bad[10] = 'g';
  auto e = Digest::parse("sha256:" + bad);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), EINVAL);
  EXPECT_THAT(e.error().message(), HasSubstr("'g' at hex digit 11"));
}

}  // namespace
}  // namespace symphony::pit
