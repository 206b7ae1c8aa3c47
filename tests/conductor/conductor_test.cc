// The Conductor's run loop against an in-process executor: data flows from
// outputs to inputs (fan-out included), retries follow the policy with
// backoff, errors that must not be retried are not, a failed provider is
// routed around, the circuit breaker opens, strategies bound parallelism,
// and cancellation stops a run.
#include "conductor/conductor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

namespace symphony::conductor {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

stage::Manifest manifest(const std::string& id, const std::vector<std::string>& caps) {
  std::string text = "id = \"" + id + "\"\nversion = \"1.0.0\"\nkind = \"operator\"\nsymphony = \">=0.1\"\n"
                     "[entry]\ncommand = [\"./x\"]\n";
  for (const auto& c : caps) {
    text += "[[capabilities]]\nname = \"" + c + "\"\noutputs = [{name = \"out\", media_type = \"text/plain\"}]\n"
            "[capabilities.params]\nn = {type = \"integer\", default = 0}\nword = {type = \"string\", default = \"\"}\n"
            "parts = {type = \"artifact\"}\n";
  }
  auto m = stage::parse_manifest(text, id + ".toml");
  EXPECT_TRUE(m.has_value()) << m.error().message();
  return *m;
}

class Providers : public ProviderSource {
 public:
  void add(stage::Manifest m) { all_.push_back(std::make_shared<const stage::Manifest>(std::move(m))); }
  std::vector<std::shared_ptr<const stage::Manifest>> providers(std::string_view cap, std::uint32_t) override {
    std::vector<std::shared_ptr<const stage::Manifest>> out;
    for (const auto& m : all_) {
      if (m->find_capability(cap)) out.push_back(m);
    }
    return out;
  }

 private:
  std::vector<std::shared_ptr<const stage::Manifest>> all_;
};

class MemoryIo : public ArtifactIo {
 public:
  Result<stage::InputData> read(const pit::ArtifactRef& ref) override {
    std::lock_guard lock(mu_);
    auto it = data_.find(ref.name);
    if (it == data_.end()) return Error::described(ENOENT, "no artifact " + ref.name);
    return stage::InputData{ref.to_string(), "", "text/plain", it->second};
  }
  Result<pit::VersionInfo> write(const stage::StepOutputData& o, const pit::PutOptions& options) override {
    std::lock_guard lock(mu_);
    data_[options.name] = o.data;
    pit::VersionInfo v;
    v.name = options.name;
    v.version = 1;
    v.digest = pit::Digest::of(o.data);
    return v;
  }
  void put(const std::string& name, std::string data) { data_[name] = std::move(data); }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> data_;
};

// Runs steps in process: the step's behaviour is a function of the
// capability, the provider and the attempt.
class Executor : public StepExecutor {
 public:
  using Behaviour = std::function<stage::StepOutcome(const stage::Manifest&, const stage::StepCall&, int attempt)>;
  Behaviour behaviour = [](const stage::Manifest&, const stage::StepCall& call, int) -> stage::StepOutcome {
    std::string text = call.params.value("word", std::string());
    for (const auto& in : call.inputs) {
      for (const auto& item : in.items) text += "+" + item.data;
    }
    stage::StepResult r;
    r.outputs.push_back({"out", "text/plain", text});
    return r;
  };
  stage::StepOutcome execute(const stage::Manifest& provider, const stage::RunAs&, const stage::StepCall& call,
                             const stage::StepEvents& events, const stage::CancelToken& cancel) override {
    int now = ++running_;
    int seen = max_running_.load();
    while (now > seen && !max_running_.compare_exchange_weak(seen, now)) {
    }
    int attempt = std::stoi(call.step.substr(call.step.rfind('#') + 1));
    {
      std::lock_guard lock(mu_);
      calls.push_back(provider.id + ":" + call.step);
    }
    if (events.progress) events.progress(0.5, "half");
    stage::StepOutcome out;
    if (call.capability == "slow.run") {
      for (int i = 0; i < 300 && !cancel.cancelled(); ++i) std::this_thread::sleep_for(10ms);
      out = cancel.cancelled() ? stage::StepOutcome(stage::StepFailure{stage::FailureKind::cancelled, "cancelled", false})
                               : behaviour(provider, call, attempt);
    } else {
      if (call.capability == "text.make") std::this_thread::sleep_for(20ms);  // long enough to overlap
      out = behaviour(provider, call, attempt);
    }
    --running_;
    return out;
  }
  int max_running() const { return max_running_.load(); }
  std::vector<std::string> calls;

 private:
  std::mutex mu_;
  std::atomic<int> running_{0};
  std::atomic<int> max_running_{0};
};

class ConductorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = ipc::make_epoll_loop();
    ASSERT_TRUE(loop.has_value());
    loop_ = std::move(*loop);
    providers_.add(manifest("org.test.a", {"text.make", "text.join", "flaky.run", "slow.run"}));
  }

  std::unique_ptr<Conductor> conductor(std::string strategy = "parallel", ConductorOptions o = {}) {
    auto s = make_strategy(strategy);
    EXPECT_TRUE(s.has_value());
    auto c = Conductor::create(*loop_, dag_, providers_, exec_, io_, std::move(*s), o);
    EXPECT_TRUE(c.has_value()) << c.error().message();
    return std::move(*c);
  }

  Plan plan(const std::string& toml, std::vector<std::string> overrides = {}) {
    auto def = parse_workflow(toml, "wf.toml");
    EXPECT_TRUE(def.has_value()) << def.error().message();
    auto p = plan_workflow(*def, overrides);
    EXPECT_TRUE(p.has_value()) << p.error().message();
    return *p;
  }

  // Submits and runs the loop until the run has finished; returns its status.
  RunStatus run(Conductor& c, Plan p, std::vector<Event>* events = nullptr) {
    RunOptions o;
    o.source = "wf.toml";
    auto id = c.submit(std::move(p), o);
    EXPECT_TRUE(id.has_value()) << id.error().message();
    if (!id) return {};
    auto past = c.events(*id);
    if (events) *events = *past;
    bool done = false;
    for (const auto& e : *past) done = done || e.kind == EventKind::run_finished;
    if (!done) {
      auto h = c.watch(*id, [&](const Event& e) {
        if (events) events->push_back(e);
        if (e.kind == EventKind::run_finished) loop_->stop();
      });
      EXPECT_TRUE(h.has_value());
      auto guard = loop_->add_timer(20s, [&] { ADD_FAILURE() << "run did not finish"; loop_->stop(); });
      (void)loop_->run();
      loop_->cancel_timer(guard);
    }
    return *c.status(*id);
  }

  std::unique_ptr<ipc::EventLoop> loop_;
  pit::dag::DagTracker dag_;
  Providers providers_;
  MemoryIo io_;
  Executor exec_;
};

TEST_F(ConductorTest, OutputsFlowIntoInputsAcrossAFanOut) {
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[params]
words = ["a", "b", "c"]
[[steps]]
id = "make"
capability = "text.make"
for_each = "${params.words}"
params = {word = "${item}"}
[[steps]]
id = "join"
capability = "text.join"
inputs = {parts = "steps.make.out"}
params = {word = "J"}
)"));
  EXPECT_EQ(st.state, RunState::succeeded) << st.error;
  ASSERT_EQ(st.outputs.size(), 1u) << "only the sink's outputs are the run's";
  auto joined = io_.read({st.outputs.front().substr(0, st.outputs.front().find('@')), 0});
  ASSERT_TRUE(joined.has_value());
  EXPECT_EQ(joined->data, "J+a+b+c") << "fan-out items arrive in item order";
  EXPECT_EQ(st.done, 4u);
}

TEST_F(ConductorTest, RetriesWithBackoffUntilSuccess) {
  exec_.behaviour = [](const stage::Manifest&, const stage::StepCall&, int attempt) -> stage::StepOutcome {
    if (attempt < 3) return stage::StepFailure{stage::FailureKind::crash, "crashed", true};
    return stage::StepResult{};
  };
  auto c = conductor();
  std::vector<Event> events;
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 3, backoff = "20ms", jitter = 0.0}
)"),
                &events);
  EXPECT_EQ(st.state, RunState::succeeded) << st.error;
  std::vector<std::uint64_t> delays;
  for (const auto& e : events) {
    if (e.kind == EventKind::step_retrying) {
      delays.push_back(e.delay_ms);
      EXPECT_EQ(e.failure, "crash");
    }
  }
  EXPECT_EQ(delays, (std::vector<std::uint64_t>{20, 40})) << "exponential backoff";
  EXPECT_EQ(c->stats().retries, 2u);
}

TEST_F(ConductorTest, ExhaustedRetriesFailTheRunWithTheReason) {
  exec_.behaviour = [](const stage::Manifest&, const stage::StepCall&, int) -> stage::StepOutcome {
    return stage::StepFailure{stage::FailureKind::oom, "instance ran out of memory (limit 64 MiB)", true};
  };
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 2, backoff = "1ms"}
[[steps]]
id = "after"
capability = "text.make"
after = ["f"]
)"));
  EXPECT_EQ(st.state, RunState::failed);
  EXPECT_THAT(st.error, HasSubstr("step 'f' failed after 2 attempts: instance ran out of memory"));
  EXPECT_EQ(st.steps[1].state, "skipped");
}

TEST_F(ConductorTest, ErrorsThatMustNotBeRetriedAreNot) {
  exec_.behaviour = [](const stage::Manifest&, const stage::StepCall&, int) -> stage::StepOutcome {
    return stage::StepFailure{stage::FailureKind::failed, "bad input", false};
  };
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 5, backoff = "1ms"}
)"));
  EXPECT_EQ(st.state, RunState::failed);
  EXPECT_EQ(st.steps[0].attempts, 1u);
}

TEST_F(ConductorTest, RetryClassesOutsideThePolicyAreNotRetried) {
  exec_.behaviour = [](const stage::Manifest&, const stage::StepCall&, int) -> stage::StepOutcome {
    return stage::StepFailure{stage::FailureKind::syscall, "forbidden system call: ptrace", true};
  };
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 5, backoff = "1ms", on = ["crash", "hang"]}
)"));
  EXPECT_EQ(st.steps[0].attempts, 1u);
  EXPECT_THAT(st.error, HasSubstr("ptrace"));
}

TEST_F(ConductorTest, AFailedProviderIsRoutedAround) {
  providers_.add(manifest("org.test.b", {"flaky.run"}));
  exec_.behaviour = [](const stage::Manifest& m, const stage::StepCall&, int) -> stage::StepOutcome {
    if (m.id == "org.test.a") return stage::StepFailure{stage::FailureKind::crash, "a crashed", true};
    return stage::StepResult{};
  };
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 2, backoff = "1ms"}
)"));
  EXPECT_EQ(st.state, RunState::succeeded) << st.error;
  ASSERT_EQ(exec_.calls.size(), 2u);
  EXPECT_THAT(exec_.calls[0], HasSubstr("org.test.a"));
  EXPECT_THAT(exec_.calls[1], HasSubstr("org.test.b"));
  EXPECT_EQ(c->stats().reroutes, 1u);
}

TEST_F(ConductorTest, TheCircuitBreakerStopsSendingStepsToAFailingExtension) {
  exec_.behaviour = [](const stage::Manifest&, const stage::StepCall&, int) -> stage::StepOutcome {
    return stage::StepFailure{stage::FailureKind::crash, "crashed", true};
  };
  ConductorOptions o;
  o.breaker_threshold = 2;
  o.breaker_cooldown = 60s;
  auto c = conductor("parallel", o);
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "f"
capability = "flaky.run"
retry = {attempts = 4, backoff = "1ms"}
)"));
  EXPECT_EQ(st.state, RunState::failed);
  EXPECT_EQ(exec_.calls.size(), 2u) << "after two crashes the breaker opens: no third call";
  EXPECT_THAT(st.error, HasSubstr("circuit breaker open for org.test.a"));
  EXPECT_EQ(c->stats().breaker_trips, 1u);
}

TEST_F(ConductorTest, StrategiesBoundParallelism) {
  const char* wide = R"(
name = "t"
[params]
items = [1, 2, 3, 4, 5, 6]
[[steps]]
id = "s"
capability = "text.make"
for_each = "${params.items}"
)";
  ConductorOptions o;
  o.max_parallel = 3;
  auto c = conductor("parallel", o);
  auto st = run(*c, plan(wide));
  EXPECT_EQ(st.state, RunState::succeeded) << st.error;
  EXPECT_EQ(exec_.max_running(), 3);
}

TEST_F(ConductorTest, SequentialRunsOneStepAtATime) {
  auto c = conductor("sequential");
  auto st = run(*c, plan(R"(
name = "t"
[params]
words = ["a", "b", "c", "d"]
[[steps]]
id = "make"
capability = "text.make"
for_each = "${params.words}"
params = {word = "${item}"}
)"));
  EXPECT_EQ(st.state, RunState::succeeded) << st.error;
  EXPECT_EQ(exec_.max_running(), 1);
}

TEST_F(ConductorTest, CancelStopsRunningSteps) {
  auto c = conductor();
  RunOptions o;
  o.source = "wf.toml";
  auto id = c->submit(plan(R"(
name = "t"
[[steps]]
id = "s"
capability = "slow.run"
[[steps]]
id = "after"
capability = "text.make"
after = ["s"]
)"),
                      o);
  ASSERT_TRUE(id.has_value());
  bool finished = false;
  ASSERT_TRUE(c->watch(*id, [&](const Event& e) {
                  if (e.kind == EventKind::run_finished) finished = true;
                }).has_value());
  loop_->add_timer(100ms, [&] { ASSERT_TRUE(c->cancel(*id).has_value()); });
  loop_->add_timer(1500ms, [&] { loop_->stop(); });
  (void)loop_->run();
  EXPECT_TRUE(finished);
  auto st = c->status(*id);
  EXPECT_EQ(st->state, RunState::cancelled);
  EXPECT_EQ(exec_.calls.size(), 1u) << "nothing after the cancel started";
}

TEST_F(ConductorTest, AMissingProviderIsRefusedAtSubmitNamingTheStep) {
  auto c = conductor();
  RunOptions o;
  o.source = "wf.toml";
  auto id = c->submit(plan(R"(
name = "t"
[[steps]]
id = "x"
capability = "nobody.does"
)"),
                      o);
  ASSERT_FALSE(id.has_value());
  EXPECT_THAT(id.error().message(), HasSubstr("wf.toml:3: step 'x': no enabled extension provides capability 'nobody.does'"));
}

TEST_F(ConductorTest, ParametersAreCheckedAgainstTheProvidersSchema) {
  auto c = conductor();
  auto st = run(*c, plan(R"(
name = "t"
[[steps]]
id = "x"
capability = "text.make"
params = {n = "not a number"}
)"));
  EXPECT_EQ(st.state, RunState::failed);
  EXPECT_THAT(st.error, HasSubstr("params.n: expected integer, got string"));
  EXPECT_EQ(st.steps[0].attempts, 1u);
}

}  // namespace
}  // namespace symphony::conductor
