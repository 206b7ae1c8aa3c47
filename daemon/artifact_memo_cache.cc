// Memo entries as artifacts: parse and format of the "memo/<key>" records.
#include "daemon/artifact_memo_cache.h"

#include <spdlog/spdlog.h>

#include <sstream>

namespace symphony::daemon {

std::optional<std::vector<pit::dag::OutputRef>> ArtifactMemoCache::lookup(const pit::Digest& key) {
  auto latest = store_->find_latest(name_for(key));
  if (!latest || latest->tier != pit::Tier::active) return std::nullopt;
  auto view = store_->map_blob(latest->digest);
  if (!view) return std::nullopt;
  std::string text(reinterpret_cast<const char*>(view->bytes().data()), view->bytes().size());
  std::vector<pit::dag::OutputRef> out;
  std::istringstream lines(text);
  std::string ref_text, digest_text;
  while (lines >> ref_text >> digest_text) {
    auto ref = pit::ArtifactRef::parse(ref_text);
    auto digest = pit::Digest::parse(digest_text);
    if (!ref || !digest || ref->version == 0) {
      spdlog::warn("memo entry {} is malformed; treated as a miss", name_for(key));
      return std::nullopt;
    }
    // An output that is gone (removed by the stale manager) makes the entry
    // useless: the step runs again.
    auto v = store_->get(*ref);
    if (!v || v->digest != *digest) return std::nullopt;
    out.push_back({ref->name, ref->version, *digest});
  }
  return out;
}

void ArtifactMemoCache::store(const pit::Digest& key, std::span<const pit::dag::OutputRef> outputs) {
  std::string text;
  pit::PutOptions options;
  options.name = name_for(key);
  options.media_type = "text/plain";
  options.kind = "memo";
  options.producer.extension = "symphonyd";
  for (const auto& o : outputs) {
    text += o.name + "@" + std::to_string(o.version) + " " + o.digest.to_string() + "\n";
    options.inputs.push_back({o.name, o.version});
  }
  workers_.submit([store = store_, text = std::move(text), options = std::move(options)]() -> ipc::Task {
    auto v = store->put(std::as_bytes(std::span(text.data(), text.size())), options);
    if (!v) spdlog::warn("memo entry {}: {} (the step will run again next time)", options.name, v.error().message());
    return {};
  });
}

}  // namespace symphony::daemon
