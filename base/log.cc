// Logger setup, level parsing and the structured-field scope. The journal
// sink itself lives in journal_sink.cc (or its fallback when libsystemd is not
// built in), so this file has no systemd dependency.
#include "base/log.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <spdlog/sinks/stdout_sinks.h>

#include "base/journal_sink.h"

namespace symphony::log {
namespace {
thread_local std::vector<std::string> tls_fields;
}

Fields::Fields(std::initializer_list<std::pair<std::string_view, std::string>> fields)
    : previous_size_(tls_fields.size()) {
  for (const auto& [key, value] : fields) {
    std::string f(key);
    f += '=';
    f += value;
    tls_fields.push_back(std::move(f));
  }
}

Fields::~Fields() { tls_fields.resize(previous_size_); }

const std::vector<std::string>& current_fields() { return tls_fields; }

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

std::vector<std::string> journal_record(std::string_view identifier,
                                        const spdlog::details::log_msg& msg) {
  std::vector<std::string> out;
  out.reserve(6 + tls_fields.size());
  out.push_back("MESSAGE=" + std::string(msg.payload.data(), msg.payload.size()));
  out.push_back("PRIORITY=" + std::to_string(syslog_priority(msg.level)));
  out.push_back("SYSLOG_IDENTIFIER=" + std::string(identifier));
  if (!msg.source.empty()) {
    out.push_back(std::string("CODE_FILE=") + msg.source.filename);
    out.push_back("CODE_LINE=" + std::to_string(msg.source.line));
    out.push_back(std::string("CODE_FUNC=") + msg.source.funcname);
  }
  for (const auto& f : tls_fields) out.push_back(f);
  return out;
}

bool stderr_is_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

Result<spdlog::level::level_enum> parse_level(std::string_view name) {
  if (name == "trace") return spdlog::level::trace;
  if (name == "debug") return spdlog::level::debug;
  if (name == "info") return spdlog::level::info;
  if (name == "warning" || name == "warn") return spdlog::level::warn;
  if (name == "error") return spdlog::level::err;
  if (name == "critical") return spdlog::level::critical;
  if (name == "off") return spdlog::level::off;
  return Error::invalid("unknown log level '" + std::string(name) +
                        "' (expected trace, debug, info, warning, error, critical or off)");
}

Target init(const Options& options) {
  Target target = options.target;
  spdlog::sink_ptr sink;
  if (target != Target::console && (target == Target::journal || stderr_is_journal())) {
    sink = make_journal_sink(options.identifier);
    target = sink ? Target::journal : Target::console;
  } else {
    target = Target::console;
  }
  if (!sink) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    // The journal adds its own timestamps; on a terminal they help.
    sink->set_pattern(options.identifier + "[%P]: %Y-%m-%d %H:%M:%S.%e %^%l%$: %v");
  }
  auto logger = std::make_shared<spdlog::logger>(options.identifier, std::move(sink));
  logger->set_level(options.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return target;
}

}  // namespace symphony::log
