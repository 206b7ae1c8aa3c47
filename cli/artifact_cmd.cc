// The artifact commands: puts stream the file in chunks (several in flight)
// and print only once the daemon has answered the commit, which it does only
// after the artifact is durable; gets stream it back and check its digest.
#include "cli/artifact_cmd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/msgpack_json.h"
#include "pit/artifacts/artifact_store.h"
#include "pit/digest.h"

namespace symphony::cli {
namespace {

using nlohmann::json;

constexpr std::size_t kChunk = 1024 * 1024;
constexpr std::size_t kInFlight = 4;

struct PutArgs {
  std::string file;
  std::string name;
  std::string media_type;
  std::string kind;
  std::optional<double> quality;
  std::string scorer;
  std::vector<std::string> inputs;
  std::optional<std::uint64_t> base;
};

std::string human_size(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

void print_version_line(const json& v) {
  char qbuf[16] = "-";
  if (!v["quality"].is_null()) std::snprintf(qbuf, sizeof(qbuf), "%.2f", v["quality"].get<double>());
  std::string quality = qbuf;
  std::printf("%-40s %-12s %10s  %-8s q=%-4s %s%s\n", v["ref"].get<std::string>().c_str(),
              v["created"].get<std::string>().substr(0, 10).c_str(), human_size(v["size"].get<std::uint64_t>()).c_str(),
              v["tier"].get<std::string>().c_str(), quality.c_str(), v["digest"].get<std::string>().substr(0, 19).c_str(),
              v["pinned"].get<bool>() ? "  pinned" : "");
}

void print_version(const json& v) {
  std::printf("%s\n", v["ref"].get<std::string>().c_str());
  std::printf("  digest:     %s\n", v["digest"].get<std::string>().c_str());
  std::printf("  size:       %s (%llu bytes)\n", human_size(v["size"].get<std::uint64_t>()).c_str(),
              static_cast<unsigned long long>(v["size"].get<std::uint64_t>()));
  std::printf("  media type: %s\n", v["media_type"].get<std::string>().c_str());
  std::printf("  kind:       %s\n", v["kind"].get<std::string>().c_str());
  std::printf("  created:    %s\n", v["created"].get<std::string>().c_str());
  const auto& p = v["producer"];
  std::string producer = p["extension"].get<std::string>();
  if (!p["workflow"].get<std::string>().empty()) {
    producer += " (workflow " + p["workflow"].get<std::string>() + ", step " + p["step"].get<std::string>() + ")";
  }
  std::printf("  producer:   %s\n", producer.empty() ? "-" : producer.c_str());
  if (!v["quality"].is_null()) {
    std::string scorer = v["scorer"].get<std::string>();
    std::printf("  quality:    %.3f%s\n", v["quality"].get<double>(), scorer.empty() ? "" : (" (" + scorer + ")").c_str());
  }
  for (const auto& in : v["inputs"]) std::printf("  input:      %s\n", in.get<std::string>().c_str());
  std::printf("  tier:       %s%s\n", v["tier"].get<std::string>().c_str(), v["pinned"].get<bool>() ? ", pinned" : "");
}

// The options map of a commit (docs/protocol.md, "Artifacts").
struct Options {
  const PutArgs& a;
  template <class Packer>
  void msgpack_pack(Packer& pk) const {
    std::uint32_t n = 1 + !a.media_type.empty() + !a.kind.empty() + a.quality.has_value() + !a.scorer.empty() +
                      !a.inputs.empty() + a.base.has_value() + 1;
    pk.pack_map(n);
    pk.pack(std::string_view("name"));
    pk.pack(a.name);
    if (!a.media_type.empty()) {
      pk.pack(std::string_view("media_type"));
      pk.pack(a.media_type);
    }
    if (!a.kind.empty()) {
      pk.pack(std::string_view("kind"));
      pk.pack(a.kind);
    }
    if (a.quality) {
      pk.pack(std::string_view("quality"));
      pk.pack(*a.quality);
    }
    if (!a.scorer.empty()) {
      pk.pack(std::string_view("scorer"));
      pk.pack(a.scorer);
    }
    if (!a.inputs.empty()) {
      pk.pack(std::string_view("inputs"));
      pk.pack(a.inputs);
    }
    if (a.base) {
      pk.pack(std::string_view("base"));
      pk.pack(*a.base);
    }
    pk.pack(std::string_view("producer"));
    pk.pack_map(1);
    pk.pack(std::string_view("extension"));
    pk.pack(std::string_view("symphonyctl"));
  }
};

int cmd_put(const Globals& g, const PutArgs& a) {
  // Checked here too, so a bad name fails before the file is sent.
  if (auto r = pit::validate_artifact_name(a.name); !r) return fail(r.error());
  for (const auto& in : a.inputs) {
    if (auto r = pit::ArtifactRef::parse(in); !r) return fail(std::move(r).error().wrap("--input " + in));
  }
  int fd = STDIN_FILENO;
  if (a.file != "-") {
    fd = ::open(a.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(Error::from_errno("open " + a.file));
  }
  struct Closer {
    int fd;
    ~Closer() {
      if (fd != STDIN_FILENO) ::close(fd);
    }
  } closer{fd};
  const std::string source = a.file == "-" ? std::string("stdin") : a.file;
  // Fills `buf` from the input; how many bytes (fewer only at the end).
  auto read_full = [&](std::vector<char>& buf) -> Result<std::size_t> {
    std::size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::from_errno("read " + source);
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    return got;
  };
  std::vector<char> first(kChunk);
  auto first_size = read_full(first);
  if (!first_size) return fail(first_size.error());
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  Result<msgpack::object_handle> v = Error(0, "");
  if (*first_size < first.size()) {
    // It all fit in one read: one call (which also lets a three-way merge
    // see the bytes when --base meets a conflict).
    v = client->call("artifact.put", msgpack::type::raw_ref(first.data(), static_cast<std::uint32_t>(*first_size)),
                     Options{a});
    if (!v) return fail(v.error());
  } else {
    auto begin = client->call("artifact.upload_begin");
    if (!begin) return fail(begin.error());
    const auto* id_obj = ipc::map_get(begin->get(), "upload");
    if (id_obj == nullptr || id_obj->type != msgpack::type::POSITIVE_INTEGER) {
      return fail(Error(EPROTO, "artifact.upload_begin: no upload id in the answer"));
    }
    std::uint64_t id = id_obj->via.u64;
    std::size_t chunk = kChunk;
    if (const auto* max = ipc::map_get(begin->get(), "max_chunk");
        max != nullptr && max->type == msgpack::type::POSITIVE_INTEGER && max->via.u64 > 0) {
      chunk = std::min<std::size_t>(chunk, max->via.u64);
    }
    std::deque<std::uint32_t> in_flight;
    auto abort_upload = [&](const Error& e) {
      // Best effort: the daemon discards the upload when we hang up anyway.
      (void)client->call("artifact.upload_abort", id);
      return fail(e);
    };
    // Sends `n` bytes of `data` as chunks, keeping up to kInFlight unanswered.
    auto send = [&](const char* data, std::size_t n) -> Result<void> {
      for (std::size_t off = 0; off < n; off += chunk) {
        std::size_t len = std::min(chunk, n - off);
        in_flight.push_back(client->queue("artifact.upload_chunk", id,
                                          msgpack::type::raw_ref(data + off, static_cast<std::uint32_t>(len))));
        if (auto r = client->flush(); !r) return std::move(r).error();
        if (in_flight.size() >= kInFlight) {
          auto r = client->wait_for(in_flight.front());
          in_flight.pop_front();
          if (!r) return std::move(r).error();
        }
      }
      return ok();
    };
    if (auto r = send(first.data(), *first_size); !r) return abort_upload(r.error());
    std::vector<char> buf(kChunk);
    for (;;) {
      auto got = read_full(buf);
      if (!got) return abort_upload(got.error());
      if (*got == 0) break;
      if (auto r = send(buf.data(), *got); !r) return abort_upload(r.error());
      if (*got < buf.size()) break;
    }
    while (!in_flight.empty()) {
      auto r = client->wait_for(in_flight.front());
      in_flight.pop_front();
      if (!r) return abort_upload(r.error());
    }
    v = client->call("artifact.upload_commit", id, Options{a});
    if (!v) return fail(v.error());  // the daemon has discarded the upload
  }
  json j = to_json(v->get());
  if (a.base) {
    // {"stored", "version", "conflict"}: the conflict policy may have kept
    // the other version instead (docs/protocol.md, "Write conflicts").
    if (g.json) {
      std::cout << j.dump() << "\n";
      return kOk;
    }
    if (!j["conflict"].is_null()) {
      const auto& c = j["conflict"];
      std::printf("write conflict with %s: %s (%s)\n", c["other"].get<std::string>().c_str(),
                  c["outcome"].get<std::string>().c_str(), c["reason"].get<std::string>().c_str());
    }
    if (!j["stored"].get<bool>()) {
      std::printf("not stored: %s stays the latest version\n", j["conflict"]["winner"].get<std::string>().c_str());
      return kOk;
    }
    j = j["version"];
  } else if (g.json) {
    std::cout << j.dump() << "\n";
    return kOk;
  }
  std::printf("stored %s %s (%s)\n", j["ref"].get<std::string>().c_str(), j["digest"].get<std::string>().c_str(),
              human_size(j["size"].get<std::uint64_t>()).c_str());
  return kOk;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t k = ::write(fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return false;
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

int cmd_get(const Globals& g, const std::string& ref, const std::string& out) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto info = client->call("artifact.get", ref);
  if (!info) return fail(info.error());
  json v = to_json(info->get());
  std::string exact = v["ref"].get<std::string>();  // pins the version for every read
  std::uint64_t size = v["size"].get<std::uint64_t>();
  // Written to a temporary name and renamed at the end, so a failed get
  // never leaves a truncated file under the requested name.
  std::string tmp = out.empty() ? std::string() : out + ".symphonyctl-tmp";
  int fd = STDOUT_FILENO;
  if (!out.empty()) {
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return fail(Error::from_errno("create " + tmp));
  }
  auto bail = [&](const Error& e) {
    if (!out.empty()) {
      ::close(fd);
      ::unlink(tmp.c_str());
    }
    return fail(e);
  };
  pit::Hasher hasher;
  std::uint64_t offset = 0;
  std::deque<std::uint32_t> in_flight;
  std::uint64_t requested = 0;
  // The daemon may cut reads shorter than asked (its chunk limit): the first
  // read, alone, tells the chunk size the pipelined ones then use.
  std::uint64_t chunk = kChunk;
  bool probed = false;
  while (offset < size) {
    while (requested < size && in_flight.size() < (probed ? kInFlight : 1)) {
      in_flight.push_back(client->queue("artifact.read", exact, requested, chunk));
      requested += chunk;
    }
    if (auto r = client->flush(); !r) return bail(r.error());
    auto r = client->wait_for(in_flight.front());
    in_flight.pop_front();
    if (!r) return bail(r.error());
    const auto* data = ipc::map_get(r->get(), "data");
    if (data == nullptr || data->type != msgpack::type::BIN || data->via.bin.size == 0) {
      return bail(Error(EPROTO, "artifact.read: no data in the answer"));
    }
    if (!probed) {
      probed = true;
      if (data->via.bin.size < std::min<std::uint64_t>(chunk, size)) {
        chunk = data->via.bin.size;
        requested = data->via.bin.size;
      }
    }
    hasher.update(std::as_bytes(std::span(data->via.bin.ptr, data->via.bin.size)));
    if (!write_all(fd, data->via.bin.ptr, data->via.bin.size)) {
      return bail(Error::from_errno(out.empty() ? std::string("write to stdout") : "write " + tmp));
    }
    offset += data->via.bin.size;
  }
  std::string digest = hasher.finish().to_string();
  if (digest != v["digest"].get<std::string>()) {
    return bail(Error(EIO, exact + ": received bytes hash to " + digest + ", expected " +
                               v["digest"].get<std::string>()));
  }
  if (!out.empty()) {
    if (::fsync(fd) != 0) return bail(Error::from_errno("fsync " + tmp));
    ::close(fd);
    if (::rename(tmp.c_str(), out.c_str()) != 0) {
      Error e = Error::from_errno("rename " + tmp + " to " + out);
      ::unlink(tmp.c_str());
      return fail(e);
    }
    // The new name is durable once its directory is.
    std::string parent = std::filesystem::path(out).parent_path().string();
    if (int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
    if (g.json) {
      std::cout << v.dump() << "\n";
    } else {
      std::fprintf(stderr, "wrote %s (%s) to %s\n", exact.c_str(), human_size(size).c_str(), out.c_str());
    }
  }
  return kOk;
}

template <class... Args>
int show(const Globals& g, bool list, std::string_view method, const Args&... args) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call(method, args...);
  if (!r) return fail(r.error());
  json j = to_json(r->get());
  if (g.json) {
    std::cout << j.dump() << "\n";
  } else if (list) {
    if (j.empty()) std::printf("(none)\n");
    for (const auto& v : j) print_version_line(v);
  } else {
    print_version(j);
  }
  return kOk;
}

int cmd_gc(const Globals& g, bool dry_run) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("artifact.gc", dry_run);
  if (!r) return fail(r.error());
  json j = to_json(r->get());
  if (g.json) {
    std::cout << j.dump() << "\n";
    return kOk;
  }
  std::printf("%s %llu unreferenced blobs (%s)\n", dry_run ? "would remove" : "removed",
              static_cast<unsigned long long>(j["blobs_removed"].get<std::uint64_t>()),
              human_size(j["bytes_removed"].get<std::uint64_t>()).c_str());
  std::printf("kept: %llu pinned, %llu held by running workflows, %llu within the grace window\n",
              static_cast<unsigned long long>(j["kept_pinned"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["kept_held"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["kept_grace"].get<std::uint64_t>()));
  for (const auto& d : j["removed"]) std::printf("  %s\n", d.get<std::string>().c_str());
  return kOk;
}

int cmd_stale(const Globals& g, bool dry_run) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("pit.stale", dry_run);
  if (!r) return fail(r.error());
  json j = to_json(r->get());
  if (g.json) {
    std::cout << j.dump() << "\n";
    return kOk;
  }
  const auto& moves = j["moves"];
  std::printf("%s %zu version(s)\n", dry_run ? "would move" : "moved", moves.size());
  for (const auto& m : moves) {
    std::printf("  %-40s %-8s %s -> %s (%s)\n", m["ref"].get<std::string>().c_str(), m["kind"].get<std::string>().c_str(),
                m["from"].get<std::string>().c_str(), m["to"].get<std::string>().c_str(),
                human_size(m["bytes"].get<std::uint64_t>()).c_str());
  }
  for (const auto& f : j["failed"]) std::printf("  failed: %s\n", f.get<std::string>().c_str());
  if (j.contains("more") && j["more"].get<bool>()) std::printf("more are due; run it again or let the daemon go on\n");
  return kOk;
}

void print_stats(const json& j, int indent) {
  for (const auto& [k, v] : j.items()) {
    if (v.is_object()) {
      std::printf("%*s%s:\n", indent, "", k.c_str());
      print_stats(v, indent + 2);
    } else if (k == "dir") {
      std::printf("%*s%s: %s\n", indent, "", k.c_str(), v.get<std::string>().c_str());
    } else {
      std::printf("%*s%-24s %s\n", indent, "", (k + ":").c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
    }
  }
}

int cmd_stats(const Globals& g) {
  int exit = kOk;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("pit.stats");
  if (!r) return fail(r.error());
  json j = to_json(r->get());
  if (g.json) {
    std::cout << j.dump() << "\n";
  } else {
    print_stats(j, 0);
  }
  return kOk;
}

}  // namespace

std::function<int()> add_artifact_commands(CLI::App& app, const Globals& g) {
  auto* artifact = app.add_subcommand("artifact", "Store and fetch artifacts (the Pit's artifact store)");
  artifact->require_subcommand(1);
  auto put = std::make_shared<PutArgs>();
  auto* c_put = artifact->add_subcommand("put", "Store FILE (or - for stdin) as a new version of --name");
  c_put->add_option("file", put->file, "File to store, or - for stdin")->required();
  c_put->add_option("-n,--name", put->name, "Artifact name")->required();
  c_put->add_option("--media-type", put->media_type, "Media type (default application/octet-stream)");
  c_put->add_option("--kind", put->kind, "Retention kind (default: default)");
  c_put->add_option("--quality", put->quality, "Quality score in [0, 1]")->check(CLI::Range(0.0, 1.0));
  c_put->add_option("--scorer", put->scorer, "Who gave the quality score");
  c_put->add_option("--input", put->inputs, "A version this one was made from (NAME@VERSION); repeatable");
  c_put->add_option("--base", put->base,
                    "The version this one was derived from (0: a new name); if another version landed "
                    "since, the write-conflict policy decides");

  auto ref = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto* c_get = artifact->add_subcommand("get", "Write NAME[@VERSION] to stdout or -o FILE");
  c_get->add_option("ref", *ref, "NAME or NAME@VERSION")->required();
  c_get->add_option("-o,--output", *out, "Write to FILE instead of stdout");
  auto* c_info = artifact->add_subcommand("info", "Show one version's metadata");
  c_info->add_option("ref", *ref, "NAME or NAME@VERSION")->required();
  auto* c_best = artifact->add_subcommand("best", "Show the version of NAME with the highest quality");
  c_best->add_option("name", *ref, "Artifact name")->required();
  auto* c_ls = artifact->add_subcommand("ls", "List artifacts (latest version of each)");
  c_ls->add_option("prefix", *ref, "Only names starting with PREFIX");
  auto* c_versions = artifact->add_subcommand("versions", "List every version of NAME");
  c_versions->add_option("name", *ref, "Artifact name")->required();
  auto* c_lineage = artifact->add_subcommand("lineage", "List what NAME[@VERSION] was made from, transitively");
  c_lineage->add_option("ref", *ref, "NAME or NAME@VERSION")->required();
  auto* c_pin = artifact->add_subcommand("pin", "Protect NAME[@VERSION] from gc and the stale manager");
  c_pin->add_option("ref", *ref, "NAME or NAME@VERSION")->required();
  auto* c_unpin = artifact->add_subcommand("unpin", "Remove the pin of NAME[@VERSION]");
  c_unpin->add_option("ref", *ref, "NAME or NAME@VERSION")->required();
  auto dry_run = std::make_shared<bool>(false);
  auto* c_gc = artifact->add_subcommand("gc", "Remove blobs no version refers to");
  c_gc->add_flag("--dry-run", *dry_run, "Only report what would be removed");

  auto* c_restore = artifact->add_subcommand("restore", "Bring an archived or remote version back to the active tier");
  c_restore->add_option("ref", *ref, "NAME or NAME@VERSION")->required();

  auto* pit = app.add_subcommand("pit", "The Pit's state");
  pit->require_subcommand(1);
  auto* c_stats = pit->add_subcommand("stats", "Counts, sizes, hit rates and queue lengths of every component");
  auto* c_stale = pit->add_subcommand("stale", "Run one slice of the stale manager now (tier moves by retention policy)");
  c_stale->add_flag("--dry-run", *dry_run, "Only list what would move");

  for (auto* sub : {artifact, c_put, c_get, c_info, c_best, c_ls, c_versions, c_lineage, c_pin, c_unpin, c_gc,
                    c_restore, pit, c_stats, c_stale}) {
    sub->fallthrough();
  }

  return [=, &g]() -> int {
    if (c_put->parsed()) return cmd_put(g, *put);
    if (c_get->parsed()) return cmd_get(g, *ref, *out);
    if (c_info->parsed()) return show(g, false, "artifact.get", *ref);
    if (c_best->parsed()) return show(g, false, "artifact.best", *ref);
    if (c_ls->parsed()) return show(g, true, "artifact.ls", *ref);
    if (c_versions->parsed()) return show(g, true, "artifact.versions", *ref);
    if (c_lineage->parsed()) return show(g, true, "artifact.lineage", *ref);
    if (c_pin->parsed()) return show(g, false, "artifact.pin", *ref);
    if (c_unpin->parsed()) return show(g, false, "artifact.unpin", *ref);
    if (c_gc->parsed()) return cmd_gc(g, *dry_run);
    if (c_stats->parsed()) return cmd_stats(g);
    if (c_restore->parsed()) return show(g, false, "artifact.restore", *ref);
    if (c_stale->parsed()) return cmd_stale(g, *dry_run);
    return -1;
  };
}

}  // namespace symphony::cli
