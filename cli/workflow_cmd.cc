// symphonyctl run and symphonyctl workflow …: submit a workflow file, follow
// its events (a progress line on a terminal, one line per event otherwise,
// JSON lines with --json) and exit with what happened to it.
#include "cli/workflow_cmd.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/msgpack_json.h"

namespace symphony::cli {
namespace {

using nlohmann::json;

struct RunArgs {
  std::string file;
  std::string workspace;
  std::vector<std::string> params;
  bool detach = false;
};

std::string clock_time(std::int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

std::string str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::uint64_t num(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
}

// One event as one line of text (no colour: logs and pipes read it).
std::string describe(const json& e) {
  const std::string kind = str(e, "kind");
  const std::string step = str(e, "step");
  const std::string t = clock_time(e.value("time_ms", std::int64_t{0}));
  std::ostringstream out;
  out << t << "  ";
  if (kind == "run_started") {
    out << "started " << str(e, "message");
  } else if (kind == "step_started") {
    out << step << ": started on " << str(e, "provider");
    if (num(e, "attempt") > 1) out << " (attempt " << num(e, "attempt") << ")";
  } else if (kind == "step_progress") {
    out << step << ": " << static_cast<int>(e.value("fraction", 0.0) * 100) << "% " << str(e, "message");
  } else if (kind == "step_log") {
    out << step << ": [" << str(e, "level") << "] " << str(e, "message");
  } else if (kind == "step_succeeded") {
    out << step << ": succeeded";
    auto outputs = e.value("outputs", json::array());
    if (!outputs.empty()) {
      out << " →";
      for (const auto& o : outputs) out << " " << o.get<std::string>();
    }
  } else if (kind == "step_retrying") {
    out << step << ": attempt " << num(e, "attempt") << " failed (" << str(e, "failure") << "): " << str(e, "message")
        << "; retrying in " << num(e, "delay_ms") << " ms";
  } else if (kind == "step_failed") {
    out << step << ": FAILED (" << str(e, "failure") << ") after " << num(e, "attempt") << " attempt"
        << (num(e, "attempt") == 1 ? "" : "s") << ": " << str(e, "message");
  } else if (kind == "step_skipped") {
    out << step << ": skipped (" << str(e, "message") << ")";
  } else if (kind == "step_cancelled") {
    out << step << ": cancelled";
  } else if (kind == "run_finished") {
    out << "run " << str(e, "state");
    if (!str(e, "message").empty()) out << ": " << str(e, "message");
  } else {
    out << kind << " " << step << " " << str(e, "message");
  }
  return out.str();
}

// The live view on a terminal: finished events scroll above one status line
// that is redrawn in place.
class Terminal {
 public:
  void event(const json& e) {
    const std::string kind = str(e, "kind");
    done_ = num(e, "done");
    total_ = num(e, "total");
    if (kind == "step_progress") {
      current_ = str(e, "step") + " " + std::to_string(static_cast<int>(e.value("fraction", 0.0) * 100)) + "% " +
                 str(e, "message");
    } else {
      if (kind == "step_started") current_ = str(e, "step") + " started";
      clear();
      std::fprintf(stderr, "%s\n", describe(e).c_str());
    }
    if (kind != "run_finished") draw();
  }
  void finish() { clear(); }

 private:
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }
  void draw() {
    const int width = 30;
    int filled = total_ ? static_cast<int>(width * done_ / total_) : 0;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::string line = "[" + bar + "] " + std::to_string(done_) + "/" + std::to_string(total_) + " steps  " + current_;
    if (line.size() > 110) line = line.substr(0, 107) + "...";
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  std::uint64_t done_ = 0, total_ = 0;
  std::string current_;
  bool drawn_ = false;
};

void print_final(const json& st) {
  std::printf("run %s: %s (%llu/%llu steps)\n", str(st, "run").c_str(), str(st, "state").c_str(),
              static_cast<unsigned long long>(num(st, "done")), static_cast<unsigned long long>(num(st, "total")));
  if (!str(st, "error").empty()) std::printf("error: %s\n", str(st, "error").c_str());
  auto outputs = st.value("outputs", json::array());
  if (!outputs.empty()) {
    std::printf("artifacts:\n");
    for (const auto& o : outputs) std::printf("  %s\n", o.get<std::string>().c_str());
  }
}

int exit_for(const json& st) {
  std::string state = str(st, "state");
  if (state == "succeeded") return kOk;
  if (state == "cancelled") return kCancelled;
  return kFailure;
}

// Follows `run` until it ends: events as notifications, then the final status.
int follow(ipc::Client& client, const std::string& run, const Globals& g) {
  std::uint32_t id = client.queue("workflow.watch", run, std::uint64_t{0});
  if (auto r = client.flush(); !r) return fail(r.error());
  const bool tty = !g.json && ::isatty(STDERR_FILENO);
  Terminal term;
  for (;;) {
    auto m = client.receive();
    if (!m) {
      if (tty) term.finish();
      return fail(m.error());
    }
    if (m->type == ipc::rpc::MessageType::notification && m->method == "workflow.event") {
      json e = m->params.via.array.size > 0 ? to_json(m->params.via.array.ptr[0]) : json::object();
      if (g.json) {
        std::printf("%s\n", json{{"event", e}}.dump().c_str());
        std::fflush(stdout);
      } else if (tty) {
        term.event(e);
      } else {
        std::fprintf(stderr, "%s\n", describe(e).c_str());
      }
      continue;
    }
    if (m->type == ipc::rpc::MessageType::response && m->id == id) {
      if (tty) term.finish();
      if (m->error.type != msgpack::type::NIL) return fail(ipc::remote_error(m->error));
      json st = to_json(m->result);
      if (g.json) {
        std::printf("%s\n", json{{"result", st}}.dump().c_str());
      } else {
        print_final(st);
      }
      return exit_for(st);
    }
  }
}

int cmd_run(const Globals& g, const RunArgs& a) {
  std::ifstream in(a.file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "symphonyctl: cannot read workflow file %s: %s\n", a.file.c_str(), std::strerror(errno));
    return kUsage;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::error_code ec;
  std::filesystem::path ws = a.workspace.empty() ? std::filesystem::current_path(ec) : std::filesystem::path(a.workspace);
  auto canonical = std::filesystem::canonical(ws, ec);
  if (ec || !std::filesystem::is_directory(canonical)) {
    std::fprintf(stderr, "symphonyctl: workspace %s is not a directory%s\n", ws.string().c_str(),
                 ec ? (": " + ec.message()).c_str() : "");
    return kUsage;
  }
  int exit = 0;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("workflow.submit", text.str(), a.file, canonical.string(), a.params);
  if (!r) {
    // An invalid workflow (parse or plan error) is the user's input: exit 2.
    const std::string msg = r.error().message();
    std::fprintf(stderr, "symphonyctl: %s\n", msg.c_str());
    if (msg.starts_with("invalid_params: ")) return kUsage;
    return msg.starts_with("not_found: ") ? kNotFound : kFailure;
  }
  json sub = to_json(r->get());
  const std::string run = str(sub, "run");
  if (a.detach) {
    if (g.json) {
      std::printf("%s\n", sub.dump().c_str());
    } else {
      std::printf("%s\n", run.c_str());
    }
    return kOk;
  }
  if (!g.json) std::fprintf(stderr, "run %s: %llu steps\n", run.c_str(), static_cast<unsigned long long>(num(sub, "total")));
  return follow(*client, run, g);
}

int cmd_ls(const Globals& g) {
  int exit = 0;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("workflow.ls");
  if (!r) return fail(r.error());
  json runs = to_json(r->get());
  if (g.json) {
    std::printf("%s\n", runs.dump(2).c_str());
    return kOk;
  }
  if (runs.empty()) {
    std::printf("no runs\n");
    return kOk;
  }
  std::printf("%-18s %-20s %-10s %-9s %-8s %s\n", "RUN", "WORKFLOW", "STATE", "STEPS", "STARTED", "SOURCE");
  for (const auto& s : runs) {
    std::string steps = std::to_string(num(s, "done")) + "/" + std::to_string(num(s, "total"));
    std::printf("%-18s %-20s %-10s %-9s %-8s %s\n", str(s, "run").c_str(), str(s, "workflow").c_str(),
                str(s, "state").c_str(), steps.c_str(), clock_time(s.value("started_ms", std::int64_t{0})).c_str(),
                str(s, "source").c_str());
  }
  return kOk;
}

int cmd_show(const Globals& g, const std::string& run) {
  int exit = 0;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("workflow.show", run);
  if (!r) return fail(r.error());
  json st = to_json(r->get());
  if (g.json) {
    std::printf("%s\n", st.dump(2).c_str());
    return kOk;
  }
  std::printf("run:       %s\nworkflow:  %s (%s)\nstate:     %s\nsteps:     %llu/%llu done\nworkspace: %s\nsubmitter: %s\n",
              str(st, "run").c_str(), str(st, "workflow").c_str(), str(st, "source").c_str(), str(st, "state").c_str(),
              static_cast<unsigned long long>(num(st, "done")), static_cast<unsigned long long>(num(st, "total")),
              str(st, "workspace").c_str(), str(st, "submitter").c_str());
  if (!str(st, "error").empty()) std::printf("error:     %s\n", str(st, "error").c_str());
  std::printf("\n%-24s %-18s %-10s %-4s %s\n", "STEP", "CAPABILITY", "STATE", "TRY", "PROVIDER / ERROR / OUTPUTS");
  for (const auto& s : st.value("steps", json::array())) {
    std::printf("%-24s %-18s %-10s %-4llu %s\n", str(s, "id").c_str(), str(s, "capability").c_str(),
                str(s, "state").c_str(), static_cast<unsigned long long>(num(s, "attempts")),
                str(s, "provider").c_str());
    if (!str(s, "error").empty()) std::printf("%60s error: %s\n", "", str(s, "error").c_str());
    for (const auto& o : s.value("outputs", json::array())) std::printf("%60s → %s\n", "", o.get<std::string>().c_str());
  }
  return kOk;
}

int cmd_cancel(const Globals& g, const std::string& run) {
  int exit = 0;
  auto client = open(g, exit);
  if (!client) return exit;
  auto r = client->call("workflow.cancel", run);
  if (!r) return fail(r.error());
  json st = to_json(r->get());
  if (g.json) {
    std::printf("%s\n", st.dump(2).c_str());
  } else {
    std::printf("run %s: %s\n", str(st, "run").c_str(), str(st, "state").c_str());
  }
  return kOk;
}

int cmd_logs(const Globals& g, const std::string& run, bool follow_run) {
  int exit = 0;
  auto client = open(g, exit);
  if (!client) return exit;
  if (follow_run) {
    int rc = follow(*client, run, g);
    return rc == kNotFound ? rc : (rc == kUsage || rc == kUnreachable ? rc : kOk);
  }
  auto r = client->call("workflow.logs", run, std::uint64_t{0});
  if (!r) return fail(r.error());
  json events = to_json(r->get());
  for (const auto& e : events) {
    if (g.json) {
      std::printf("%s\n", e.dump().c_str());
    } else {
      std::printf("%s\n", describe(e).c_str());
    }
  }
  return kOk;
}

}  // namespace

std::function<int()> add_workflow_commands(CLI::App& app, const Globals& g) {
  auto args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Run a workflow file and follow it to the end");
  run->add_option("workflow", args->file, "Workflow file (TOML; docs/workflows.md)")->required();
  run->add_option("-w,--workspace", args->workspace, "The directory steps work on (default: the current one)");
  run->add_option("-p,--param", args->params, "Set workflow parameter K to V (K=V); repeatable");
  run->add_flag("-d,--detach", args->detach, "Print the run id and return at once");
  run->fallthrough();

  auto* wf = app.add_subcommand("workflow", "List, inspect and cancel workflow runs");
  wf->require_subcommand(1);
  auto id = std::make_shared<std::string>();
  auto follow_flag = std::make_shared<bool>(false);
  auto* c_ls = wf->add_subcommand("ls", "List runs, newest first");
  auto* c_show = wf->add_subcommand("show", "Show a run and its steps");
  c_show->add_option("run", *id, "Run id")->required();
  auto* c_cancel = wf->add_subcommand("cancel", "Cancel a running run");
  c_cancel->add_option("run", *id, "Run id")->required();
  auto* c_logs = wf->add_subcommand("logs", "Print a run's events");
  c_logs->add_option("run", *id, "Run id")->required();
  c_logs->add_flag("-f,--follow", *follow_flag, "Keep printing until the run ends");
  for (auto* sub : {wf, c_ls, c_show, c_cancel, c_logs}) sub->fallthrough();

  return [=, &g]() -> int {
    if (run->parsed()) return cmd_run(g, *args);
    if (c_ls->parsed()) return cmd_ls(g);
    if (c_show->parsed()) return cmd_show(g, *id);
    if (c_cancel->parsed()) return cmd_cancel(g, *id);
    if (c_logs->parsed()) return cmd_logs(g, *id, *follow_flag);
    return -1;
  };
}

}  // namespace symphony::cli
