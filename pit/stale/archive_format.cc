// zstd streaming compression (ZSTD_compressStream2) and decompression with a
// fixed-size buffer each way, so an artifact of any size is archived in
// constant memory.
#include "pit/stale/archive_format.h"

#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "pit/stale/durable_file.h"

namespace symphony::pit::stale {
namespace {

constexpr std::uint32_t kSkippableMagic = 0x184D2A50;  // ZSTD_MAGIC_SKIPPABLE_START
constexpr std::string_view kFormatLine = "symphony-archive 1\n";
constexpr std::size_t kMaxHeader = 4096;

struct CCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

void put_le32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get_le32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
  return v;
}

// read(2) retried on EINTR; 0 at end of file.
Result<std::size_t> read_some(int fd, void* buf, std::size_t len) {
  while (true) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return Error::from_errno("read");
  }
}

// Reads exactly `len` bytes; false at a clean end of file before any byte.
Result<bool> read_exact(int fd, void* buf, std::size_t len) {
  std::size_t got = 0;
  while (got < len) {
    auto n = read_some(fd, static_cast<char*>(buf) + got, len - got);
    if (!n) return std::move(n).error();
    if (*n == 0) {
      if (got == 0) return false;
      return Error::described(EBADMSG, "archive: truncated header");
    }
    got += *n;
  }
  return true;
}

Error zstd_error(std::string_view what, std::size_t code) {
  return Error::described(EBADMSG, std::string(what) + ": " + ZSTD_getErrorName(code));
}

}  // namespace

Result<Digest> write_archive(int in_fd, int out_fd, const ArchiveHeader& header, int level) {
  std::string payload = std::string(kFormatLine) + header.digest.to_string() + "\n" +
                        header.what + "\n";
  if (payload.size() > kMaxHeader) return Error::invalid("archive header too long");
  unsigned char frame_head[8];
  put_le32(frame_head, kSkippableMagic);
  put_le32(frame_head + 4, static_cast<std::uint32_t>(payload.size()));
  if (auto r = write_all(out_fd, frame_head, sizeof frame_head, "archive header"); !r) return r.error();
  if (auto r = write_all(out_fd, payload.data(), payload.size(), "archive header"); !r) return r.error();

  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (!cctx) return Error(ENOMEM, "ZSTD_createCCtx");
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  std::vector<char> in(ZSTD_CStreamInSize()), out(ZSTD_CStreamOutSize());
  Hasher hasher;
  while (true) {
    auto n = read_some(in_fd, in.data(), in.size());
    if (!n) return std::move(n).error().wrap("read artifact");
    bool last = *n == 0;
    hasher.update(std::span<const std::byte>(reinterpret_cast<const std::byte*>(in.data()), *n));
    ZSTD_inBuffer input{in.data(), *n, 0};
    ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    bool done = false;
    while (!done) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      std::size_t remaining = ZSTD_compressStream2(cctx.get(), &output, &input, mode);
      if (ZSTD_isError(remaining)) return zstd_error("compress", remaining);
      if (auto r = write_all(out_fd, out.data(), output.pos, "archive"); !r) return r.error();
      done = last ? remaining == 0 : input.pos == input.size;
    }
    if (last) break;
  }
  return hasher.finish();
}

Result<void> read_archive(int in_fd, const Digest& expected, const ByteSink& sink) {
  unsigned char frame_head[8];
  auto got = read_exact(in_fd, frame_head, sizeof frame_head);
  if (!got) return std::move(got).error();
  if (!*got || get_le32(frame_head) != kSkippableMagic) {
    return Error::described(EBADMSG, "archive: not a Symphony archive (no header frame)");
  }
  std::uint32_t size = get_le32(frame_head + 4);
  if (size > kMaxHeader) return Error::described(EBADMSG, "archive: header too long");
  std::string payload(size, '\0');
  if (auto r = read_exact(in_fd, payload.data(), size); !r || !*r) {
    return r ? Error::described(EBADMSG, "archive: truncated header") : std::move(r).error();
  }
  if (!payload.starts_with(kFormatLine)) {
    return Error::described(EBADMSG, "archive: unknown format");
  }
  std::string_view rest = std::string_view(payload).substr(kFormatLine.size());
  auto digest = Digest::parse(rest.substr(0, rest.find('\n')));
  if (!digest) return Error::described(EBADMSG, "archive: bad digest in header");
  if (*digest != expected) {
    return Error::described(EBADMSG, "archive: holds " + digest->to_string() + ", expected " +
                                         expected.to_string());
  }

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) return Error(ENOMEM, "ZSTD_createDCtx");
  std::vector<char> in(ZSTD_DStreamInSize()), out(ZSTD_DStreamOutSize());
  Hasher hasher;
  std::size_t last_hint = 0;  // 0 once a frame is complete
  bool any = false;
  while (true) {
    auto n = read_some(in_fd, in.data(), in.size());
    if (!n) return std::move(n).error().wrap("read archive");
    if (*n == 0) break;
    any = true;
    ZSTD_inBuffer input{in.data(), *n, 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      std::size_t hint = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(hint)) return zstd_error("decompress", hint);
      last_hint = hint;
      std::span<const std::byte> chunk(reinterpret_cast<const std::byte*>(out.data()), output.pos);
      hasher.update(chunk);
      if (!chunk.empty()) {
        if (auto r = sink(chunk); !r) return r;
      }
    }
  }
  // Flush what the decoder may still hold for the last frame.
  while (last_hint != 0) {
    ZSTD_inBuffer input{nullptr, 0, 0};
    ZSTD_outBuffer output{out.data(), out.size(), 0};
    std::size_t hint = ZSTD_decompressStream(dctx.get(), &output, &input);
    if (ZSTD_isError(hint)) return zstd_error("decompress", hint);
    if (output.pos == 0) return Error::described(EBADMSG, "archive: truncated");
    std::span<const std::byte> chunk(reinterpret_cast<const std::byte*>(out.data()), output.pos);
    hasher.update(chunk);
    if (auto r = sink(chunk); !r) return r;
    last_hint = hint;
  }
  if (!any) return Error::described(EBADMSG, "archive: no data frame");
  if (Digest actual = hasher.finish(); actual != expected) {
    return Error::described(EBADMSG, "archive: bytes hash to " + actual.to_string() +
                                         ", expected " + expected.to_string());
  }
  return ok();
}

}  // namespace symphony::pit::stale
