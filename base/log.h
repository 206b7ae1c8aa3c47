// Logging for every Symphony program: spdlog's default logger, writing to the
// systemd journal (with priority and structured fields) when stderr is
// connected to it, and to stderr otherwise. Modules log with spdlog::info()
// and friends directly; structured journal fields for the duration of a call
// are attached with a log::Fields scope.
#pragma once

#include <spdlog/spdlog.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace symphony::log {

enum class Target { automatic, console, journal };

struct Options {
  std::string identifier;  // SYSLOG_IDENTIFIER and the stderr prefix
  spdlog::level::level_enum level = spdlog::level::info;
  Target target = Target::automatic;
};

// Installs the default logger. `automatic` picks the journal when stderr is
// the journal stream (systemd's JOURNAL_STREAM) and journal support is built.
// Returns the target actually chosen.
Target init(const Options& options);

// "trace", "debug", "info", "warning"/"warn", "error", "critical", "off".
Result<spdlog::level::level_enum> parse_level(std::string_view name);

// True when systemd connected our stderr to the journal (JOURNAL_STREAM
// names stderr's device and inode).
bool stderr_is_journal();

// Structured fields (journal field names: upper case, digits, underscore)
// attached to every message logged on this thread while the scope lives.
// Scopes nest; inner fields come last.
class Fields {
 public:
  Fields(std::initializer_list<std::pair<std::string_view, std::string>> fields);
  ~Fields();
  Fields(const Fields&) = delete;
  Fields& operator=(const Fields&) = delete;

 private:
  std::size_t previous_size_;
};

// The fields in scope on this thread, as "KEY=value" strings.
const std::vector<std::string>& current_fields();

// The journal record for one message: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER,
// CODE_* when known, then the fields in scope. Exposed for tests.
std::vector<std::string> journal_record(std::string_view identifier,
                                        const spdlog::details::log_msg& msg);

// syslog priority (0..7) for an spdlog level.
int syslog_priority(spdlog::level::level_enum level);

}  // namespace symphony::log
