// The spdlog sink that writes to the systemd journal. Returns null when
// journal support is not built in (journal_sink_fallback.cc).
#pragma once

#include <spdlog/common.h>

#include <string>

namespace symphony::log {

spdlog::sink_ptr make_journal_sink(std::string identifier);

}  // namespace symphony::log
