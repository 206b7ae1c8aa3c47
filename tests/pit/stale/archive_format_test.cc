// The archive format (zstd with a digest header) and the directory-backed
// remote tier.
#include "pit/stale/archive_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>

#include "base/unique_fd.h"
#include "pit/stale/durable_file.h"
#include "pit/stale/remote_tier.h"
#include "tests/pit/stale/test_support.h"

namespace symphony::pit::stale {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;
using ::testing::HasSubstr;

std::string random_text(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string s(n, '\0');
  // Half compressible, half noise.
  for (std::size_t i = 0; i < n; ++i) s[i] = i % 2 ? static_cast<char>(gen()) : 'a';
  return s;
}

Result<std::string> archive_then_read(const TempDir& dir, const std::string& data, const Digest& expect) {
  write_file(dir.path() / "in", data);
  UniqueFd in(::open((dir.path() / "in").c_str(), O_RDONLY));
  auto written = write_file_durably(dir.path() / "a.zst", [&](int fd) -> Result<void> {
    auto d = write_archive(in.get(), fd, {Digest::of(data), "x@1"}, 3);
    if (!d) return d.error();
    EXPECT_EQ(*d, Digest::of(data));
    return ok();
  });
  if (!written) return written.error();
  UniqueFd arc(::open((dir.path() / "a.zst").c_str(), O_RDONLY));
  std::string out;
  auto r = read_archive(arc.get(), expect, [&](std::span<const std::byte> c) {
    out.append(reinterpret_cast<const char*>(c.data()), c.size());
    return ok();
  });
  if (!r) return r.error();
  return out;
}

TEST(ArchiveFormat, RoundTripGivesTheSameBytesAndDigest) {
  TempDir dir;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{3 << 20}}) {
    std::string data = random_text(size, 7);
    auto back = archive_then_read(dir, data, Digest::of(data));
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(Digest::of(*back), Digest::of(data)) << size;
    EXPECT_EQ(back->size(), size);
  }
}

TEST(ArchiveFormat, StartsWithASkippableFrameNamingTheDigest) {
  TempDir dir;
  std::string data(100000, 'z');
  ASSERT_TRUE(archive_then_read(dir, data, Digest::of(data)));
  std::string file = read_file(dir.path() / "a.zst");
  EXPECT_EQ(static_cast<unsigned char>(file[0]), 0x50);  // 0x184D2A50, little endian
  EXPECT_THAT(file, HasSubstr(Digest::of(data).to_string()));
  EXPECT_LT(file.size(), data.size() / 10);  // actually compressed
}

TEST(ArchiveFormat, WrongDigestOrCorruptionIsEbadmsg) {
  TempDir dir;
  std::string data = random_text(200000, 3);
  auto wrong = archive_then_read(dir, data, Digest::of("other"));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), EBADMSG);

  // Flip a byte in the compressed data: zstd's checksum or ours catches it.
  std::string file = read_file(dir.path() / "a.zst");
  file[file.size() / 2] ^= 0x40;
  write_file(dir.path() / "bad.zst", file);
  UniqueFd fd(::open((dir.path() / "bad.zst").c_str(), O_RDONLY));
  auto r = read_archive(fd.get(), Digest::of(data), [](auto) { return ok(); });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EBADMSG);

  // Truncated.
  write_file(dir.path() / "short.zst", file.substr(0, file.size() - 20));
  UniqueFd sfd(::open((dir.path() / "short.zst").c_str(), O_RDONLY));
  EXPECT_FALSE(read_archive(sfd.get(), Digest::of(data), [](auto) { return ok(); }));

  write_file(dir.path() / "plain", "not an archive");
  UniqueFd pfd(::open((dir.path() / "plain").c_str(), O_RDONLY));
  auto p = read_archive(pfd.get(), Digest::of(data), [](auto) { return ok(); });
  ASSERT_FALSE(p);
  EXPECT_THAT(p.error().message(), HasSubstr("not a Symphony archive"));
}

TEST(DurableFile, FailedFillLeavesNothingBehind) {
  TempDir dir;
  write_file(dir.path() / "dest", "old");
  auto r = write_file_durably(dir.path() / "dest", [](int fd) -> Result<void> {
    (void)!::write(fd, "partial", 7);
    return Error(EIO, "injected");
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(read_file(dir.path() / "dest"), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(DurableFile, TempNamesCarryTheWritersPid) {
  std::string name = temp_file_name();
  EXPECT_THAT(name, ::testing::StartsWith(".symphony-tmp-"));
  EXPECT_EQ(temp_file_owner(name), ::getpid());
  EXPECT_EQ(temp_file_owner(".symphony-tmp-12-3"), 12);
  EXPECT_FALSE(temp_file_owner(".symphony-tmp-12"));
  EXPECT_FALSE(temp_file_owner(".symphony-tmp-x-1"));
  EXPECT_FALSE(temp_file_owner("symphony-tmp-12-1"));
}

TEST(DirectoryTier, PutGetRemoveRoundTrip) {
  TempDir dir;
  auto tier = open_directory_tier(dir.path() / "remote" / "nested");
  ASSERT_TRUE(tier) << tier.error().message();
  write_file(dir.path() / "src", "payload bytes");
  ASSERT_TRUE((*tier)->put("a%b@1.zst", dir.path() / "src"));
  EXPECT_EQ(read_file(dir.path() / "remote" / "nested" / "a%b@1.zst"), "payload bytes");
  ASSERT_TRUE((*tier)->get("a%b@1.zst", dir.path() / "back"));
  EXPECT_EQ(read_file(dir.path() / "back"), "payload bytes");
  auto usage = (*tier)->usage();
  ASSERT_TRUE(usage);
  EXPECT_EQ(usage->objects, 1u);
  EXPECT_EQ(usage->bytes, 13u);
  // Replacing is fine; removing twice is fine.
  write_file(dir.path() / "src", "v2");
  ASSERT_TRUE((*tier)->put("a%b@1.zst", dir.path() / "src"));
  ASSERT_TRUE((*tier)->get("a%b@1.zst", dir.path() / "back"));
  EXPECT_EQ(read_file(dir.path() / "back"), "v2");
  ASSERT_TRUE((*tier)->remove("a%b@1.zst"));
  ASSERT_TRUE((*tier)->remove("a%b@1.zst"));
  auto missing = (*tier)->get("a%b@1.zst", dir.path() / "back2");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_FALSE(fs::exists(dir.path() / "back2"));
  EXPECT_THAT((*tier)->describe(), HasSubstr("nested"));
}

TEST(DirectoryTier, RefusesKeysThatCouldEscapeOrCollide) {
  TempDir dir;
  auto tier = open_directory_tier(dir.path());
  ASSERT_TRUE(tier);
  write_file(dir.path() / "src", "x");
  for (const char* bad : {"", "../x", "a/b", ".hidden", "sp ace"}) {
    auto r = (*tier)->put(bad, dir.path() / "src");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), EINVAL) << bad;
  }
}

}  // namespace
}  // namespace symphony::pit::stale
