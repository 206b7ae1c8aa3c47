// Record encoding, CRC-32 framing and the file journal's open / replay /
// append / compaction. Integers are little-endian; see docs/pit/dag.md for
// the byte layout.
#include "pit/dag/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

namespace symphony::pit::dag {
namespace {

constexpr std::string_view kMagic = "SYMDAGJ1";
constexpr std::size_t kFrameHeader = 8;                 // u32 length, u32 crc
constexpr std::uint32_t kMaxRecord = 256u * 1024 * 1024;  // a sanity bound, not a design limit

constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

// --- encoding ---------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void str(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void digest(const Digest& d) {
    out_.append(reinterpret_cast<const char*>(d.bytes().data()), d.bytes().size());
  }
  void outputs(const std::vector<OutputRef>& outs) {
    u32(static_cast<std::uint32_t>(outs.size()));
    for (const auto& o : outs) {
      str(o.name);
      u64(o.version);
      digest(o.digest);
    }
  }
  void spec(const StepSpec& s) {
    str(s.id);
    u32(static_cast<std::uint32_t>(s.inputs.size()));
    for (const auto& in : s.inputs) str(in);
    f64(s.cost);
    u32(s.max_attempts);
    u8(s.failure_policy ? static_cast<std::uint8_t>(*s.failure_policy) + 1 : 0);
    u8(s.memo ? 1 : 0);
    if (s.memo) {
      str(s.memo->extension_id);
      str(s.memo->extension_version);
      str(s.memo->capability);
      str(s.memo->canonical_params);
      u32(static_cast<std::uint32_t>(s.memo->external_inputs.size()));
      for (const auto& d : s.memo->external_inputs) digest(d);
    }
  }

 private:
  std::string& out_;
};

// Reads with bounds checks; the first failure is remembered (with the field
// it happened in) and every later read returns zeros.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  bool at_end() const { return pos_ == in_.size(); }
  void fail(std::string what) {
    if (error_.empty()) error_ = std::move(what) + " at payload byte " + std::to_string(pos_);
  }

  std::uint8_t u8(const char* field) {
    if (!need(1, field)) return 0;
    return static_cast<std::uint8_t>(in_[pos_++]);
  }
  std::uint32_t u32(const char* field) {
    if (!need(4, field)) return 0;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<std::uint8_t>(in_[pos_++])} << (8 * i);
    return v;
  }
  std::uint64_t u64(const char* field) {
    if (!need(8, field)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<std::uint8_t>(in_[pos_++])} << (8 * i);
    return v;
  }
  std::string str(const char* field) {
    std::uint32_t n = u32(field);
    if (!need(n, field)) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  Digest digest(const char* field) {
    std::array<std::uint8_t, Digest::kSize> b{};
    if (!need(b.size(), field)) return Digest();
    std::memcpy(b.data(), in_.data() + pos_, b.size());
    pos_ += b.size();
    return Digest(b);
  }
  // A count of elements that take at least `min_size` bytes each: bounded by
  // what is left, so garbage cannot make us allocate gigabytes.
  std::uint32_t count(const char* field, std::size_t min_size) {
    std::uint32_t n = u32(field);
    if (ok() && static_cast<std::uint64_t>(n) * min_size > in_.size() - pos_) {
      fail(std::string("count of ") + field + " exceeds the record");
      return 0;
    }
    return n;
  }
  std::vector<OutputRef> outputs() {
    std::vector<OutputRef> outs(count("outputs", 4 + 8 + Digest::kSize));
    for (auto& o : outs) {
      o.name = str("output name");
      o.version = u64("output version");
      o.digest = digest("output digest");
    }
    return outs;
  }
  StepSpec spec() {
    StepSpec s;
    s.id = str("step id");
    s.inputs.resize(count("inputs", 4));
    for (auto& in : s.inputs) in = str("input id");
    s.cost = std::bit_cast<double>(u64("cost"));
    s.max_attempts = u32("max_attempts");
    std::uint8_t policy = u8("failure policy");
    if (policy > 2) fail("unknown failure policy " + std::to_string(policy));
    if (policy != 0) s.failure_policy = static_cast<FailurePolicy>(policy - 1);
    std::uint8_t has_memo = u8("memo flag");
    if (has_memo > 1) fail("bad memo flag");
    if (has_memo == 1) {
      MemoSpec m;
      m.extension_id = str("extension id");
      m.extension_version = str("extension version");
      m.capability = str("capability");
      m.canonical_params = str("parameters");
      m.external_inputs.resize(count("external inputs", Digest::kSize));
      for (auto& d : m.external_inputs) d = digest("external input");
      s.memo = std::move(m);
    }
    return s;
  }

 private:
  bool need(std::size_t n, const char* field) {
    if (!ok()) return false;
    if (in_.size() - pos_ < n) {
      fail(std::string("truncated ") + field);
      return false;
    }
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  std::string error_;
};

void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::string_view in, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<std::uint8_t>(in[at + i])} << (8 * i);
  return v;
}

void frame(std::string& out, const JournalRecord& record) {
  std::string payload = encode_record(record);
  put_u32(out, static_cast<std::uint32_t>(payload.size()));
  put_u32(out, crc32(payload));
  out += payload;
}

Result<void> write_all(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("write journal " + path.string());
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return ok();
}

Result<void> sync_dir(const std::filesystem::path& file) {
  auto dir = file.parent_path();
  if (dir.empty()) dir = ".";
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::from_errno("open directory " + dir.string());
  if (::fsync(fd.get()) != 0) return Error::from_errno("fsync directory " + dir.string());
  return ok();
}

Result<std::string> read_all(int fd, const std::filesystem::path& path) {
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::from_errno("read journal " + path.string());
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  return data;
}

bool all_zero(std::string_view s) {
  for (char c : s)
    if (c != 0) return false;
  return true;
}

}  // namespace

std::uint32_t crc32(std::string_view data, std::uint32_t crc) {
  crc = ~crc;
  for (char ch : data) crc = kCrcTable[(crc ^ static_cast<std::uint8_t>(ch)) & 0xff] ^ (crc >> 8);
  return ~crc;
}

std::string encode_record(const JournalRecord& r) {
  std::string out;
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(r.kind));
  w.str(r.workflow);
  switch (r.kind) {
    case RecordKind::create_workflow: w.u8(static_cast<std::uint8_t>(r.policy)); break;
    case RecordKind::add_steps:
      w.u32(static_cast<std::uint32_t>(r.steps.size()));
      for (const auto& s : r.steps) w.spec(s);
      break;
    case RecordKind::start_step:
    case RecordKind::retry_step:
    case RecordKind::cancel_step: w.u32(r.step); break;
    case RecordKind::succeed_step:
    case RecordKind::memo_hit:
      w.u32(r.step);
      w.outputs(r.outputs);
      break;
    case RecordKind::fail_step:
    case RecordKind::fail_step_final:
      w.u32(r.step);
      w.str(r.message);
      break;
    case RecordKind::cancel_workflow:
    case RecordKind::remove_workflow: break;
    case RecordKind::workflow_state:
      w.u8(static_cast<std::uint8_t>((r.cancelled ? 1 : 0) | (r.failed ? 2 : 0)));
      w.u32(static_cast<std::uint32_t>(r.snapshot.size()));
      for (const auto& s : r.snapshot) {
        w.u8(static_cast<std::uint8_t>(s.state));
        w.u8(static_cast<std::uint8_t>(s.reason));
        w.u32(s.attempt);
        w.outputs(s.outputs);
        w.str(s.message);
      }
      break;
  }
  return out;
}

Result<JournalRecord> decode_record(std::string_view payload) {
  Reader in(payload);
  JournalRecord r;
  std::uint8_t kind = in.u8("kind");
  if (in.ok() && (kind < 1 || kind > static_cast<std::uint8_t>(RecordKind::fail_step_final))) {
    return Error::invalid("unknown record kind " + std::to_string(kind));
  }
  r.kind = static_cast<RecordKind>(kind);
  r.workflow = in.str("workflow id");
  switch (r.kind) {
    case RecordKind::create_workflow: {
      std::uint8_t policy = in.u8("policy");
      if (policy > 1) in.fail("unknown failure policy " + std::to_string(policy));
      r.policy = static_cast<FailurePolicy>(policy);
      break;
    }
    case RecordKind::add_steps:
      r.steps.resize(in.count("steps", 4 + 4 + 8 + 4 + 2));
      for (auto& s : r.steps) s = in.spec();
      break;
    case RecordKind::start_step:
    case RecordKind::retry_step:
    case RecordKind::cancel_step: r.step = in.u32("step"); break;
    case RecordKind::succeed_step:
    case RecordKind::memo_hit:
      r.step = in.u32("step");
      r.outputs = in.outputs();
      break;
    case RecordKind::fail_step:
    case RecordKind::fail_step_final:
      r.step = in.u32("step");
      r.message = in.str("message");
      break;
    case RecordKind::cancel_workflow:
    case RecordKind::remove_workflow: break;
    case RecordKind::workflow_state: {
      std::uint8_t flags = in.u8("flags");
      if (flags > 3) in.fail("bad workflow flags");
      r.cancelled = (flags & 1) != 0;
      r.failed = (flags & 2) != 0;
      r.snapshot.resize(in.count("step states", 1 + 1 + 4 + 4 + 4));
      for (auto& s : r.snapshot) {
        std::uint8_t state = in.u8("state");
        std::uint8_t reason = in.u8("skip reason");
        if (state >= kStepStateCount) in.fail("unknown step state " + std::to_string(state));
        if (reason > static_cast<std::uint8_t>(SkipReason::upstream_failed)) in.fail("unknown skip reason");
        s.state = static_cast<StepState>(state);
        s.reason = static_cast<SkipReason>(reason);
        s.attempt = in.u32("attempt");
        s.outputs = in.outputs();
        s.message = in.str("message");
      }
      break;
    }
  }
  if (in.ok() && !in.at_end()) in.fail("trailing bytes");
  if (!in.ok()) return Error::invalid(in.error());
  return r;
}

Result<std::unique_ptr<FileJournal>> FileJournal::open(const std::filesystem::path& path,
                                                       const Visitor& visit) {
  const std::string name = "journal " + path.string();
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno("open " + name);
  auto data = read_all(fd.get(), path);
  if (!data) return std::move(data).error();
  std::unique_ptr<FileJournal> journal(new FileJournal(path, std::move(fd)));
  const int raw = journal->fd_.get();

  // A file shorter than the header whose bytes are a prefix of it: created,
  // then cut off by a crash before the header was flushed. Start over.
  if (data->size() < kMagic.size() && kMagic.substr(0, data->size()) == *data) {
    if (::ftruncate(raw, 0) != 0) return Error::from_errno("truncate " + name);
    if (auto r = write_all(raw, kMagic, path); !r) return std::move(r).error();
    if (::fdatasync(raw) != 0) return Error::from_errno("fdatasync " + name);
    if (auto r = sync_dir(path); !r) return std::move(r).error();
    return journal;
  }
  if (data->compare(0, kMagic.size(), kMagic) != 0) {
    return Error::invalid(name + ": offset 0: not a DAG journal (bad magic)");
  }

  std::string_view all(*data);
  std::size_t off = kMagic.size();
  while (off < all.size()) {
    std::size_t left = all.size() - off;
    bool frame_ok = left >= kFrameHeader;
    std::uint32_t len = 0;
    std::size_t end = all.size();
    if (frame_ok) {
      len = get_u32(all, off);
      frame_ok = len > 0 && len <= kMaxRecord && left - kFrameHeader >= len;
      if (frame_ok) {
        end = off + kFrameHeader + len;
        frame_ok = crc32(all.substr(off + kFrameHeader, len)) == get_u32(all, off + 4);
      } else if (len > 0 && len <= kMaxRecord) {
        end = all.size();  // cut short by the end of the file
      } else {
        end = std::min(all.size(), off + kFrameHeader);
      }
    }
    if (!frame_ok) {
      // Torn tail: the frame runs past the end of the file, or it is bad and
      // only zeros follow (a crash after the size grew, before data landed).
      if (end >= all.size() || all_zero(all.substr(end))) {
        journal->torn_dropped_ = all.size() - off;
        if (::ftruncate(raw, static_cast<off_t>(off)) != 0) return Error::from_errno("truncate " + name);
        if (::fdatasync(raw) != 0) return Error::from_errno("fdatasync " + name);
        break;
      }
      return Error::invalid(name + ": offset " + std::to_string(off) +
                            ": corrupt record (bad length or CRC) followed by more data");
    }
    auto record = decode_record(all.substr(off + kFrameHeader, len));
    if (!record) {
      return Error::invalid(name + ": offset " + std::to_string(off) + ": " + record.error().message());
    }
    if (auto r = visit(*record, off); !r) {
      return Error::invalid(name + ": offset " + std::to_string(off) + ": " + r.error().message());
    }
    off = end;
  }
  return journal;
}

void FileJournal::append(const JournalRecord& record) {
  std::size_t before = pending_.size();
  frame(pending_, record);
  appended_ += pending_.size() - before;
}

Result<void> FileJournal::sync() {
  if (broken_) return Error(EIO, "journal " + path_.string() + " failed earlier; state not durable");
  if (pending_.empty()) return ok();
  auto r = write_all(fd_.get(), pending_, path_);
  if (r && ::fdatasync(fd_.get()) != 0) r = Error::from_errno("fdatasync journal " + path_.string());
  if (!r) {
    broken_ = true;
    return r;
  }
  pending_.clear();
  return ok();
}

Result<void> FileJournal::rewrite(std::span<const JournalRecord> records) {
  if (broken_) return Error(EIO, "journal " + path_.string() + " failed earlier; not compacting");
  std::filesystem::path tmp = path_;
  tmp += ".compact";
  std::string bytes(kMagic);
  for (const auto& r : records) frame(bytes, r);
  {
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!out) return Error::from_errno("open " + tmp.string());
    if (auto r = write_all(out.get(), bytes, tmp); !r) return r;
    if (::fdatasync(out.get()) != 0) return Error::from_errno("fdatasync " + tmp.string());
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return Error::from_errno("rename " + tmp.string() + " to " + path_.string());
  }
  if (auto r = sync_dir(path_); !r) return r;
  UniqueFd fd(::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC));
  if (!fd) {
    broken_ = true;
    return Error::from_errno("reopen journal " + path_.string());
  }
  fd_ = std::move(fd);
  // Queued records describe changes the snapshot already holds.
  pending_.clear();
  appended_ = 0;
  return ok();
}

}  // namespace symphony::pit::dag
