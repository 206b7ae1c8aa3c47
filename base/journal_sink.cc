// spdlog sink writing native journal records through sd_journal_sendv, so the
// journal gets the priority and our structured fields (PEER_UID, …) instead
// of a flat line on stderr.
#include "base/journal_sink.h"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <mutex>
#include <spdlog/sinks/base_sink.h>
#include <vector>

#include "base/log.h"

namespace symphony::log {
namespace {

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string identifier) : identifier_(std::move(identifier)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::vector<std::string> record = journal_record(identifier_, msg);
    std::vector<iovec> iov;
    iov.reserve(record.size());
    for (auto& line : record) iov.push_back({line.data(), line.size()});
    ::sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  }
  void flush_() override {}

 private:
  std::string identifier_;
};

}  // namespace

spdlog::sink_ptr make_journal_sink(std::string identifier) {
  return std::make_shared<JournalSink>(std::move(identifier));
}

}  // namespace symphony::log
