// Built instead of journal_sink.cc when libsystemd is not available: there is
// no journal to write to, so logging stays on stderr.
#include "base/journal_sink.h"

namespace symphony::log {

spdlog::sink_ptr make_journal_sink(std::string) { return nullptr; }

}  // namespace symphony::log
