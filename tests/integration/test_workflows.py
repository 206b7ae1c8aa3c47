#!/usr/bin/python3
"""Workflows end to end: the real symphonyd runs workflow files through real
sandboxed extensions — the bundled ones and the chaos extension from the
build tree ($SYMPHONY_BUILD_DIR), the Python SDK example and extensions
written here, installed with `symphonyctl ext install`.

  - the examples: analyze-source over this source tree (git, code), hello
    (Python SDK), fs-search; fs refusing a path out of the workspace;
  - failure containment: a segfault, SIGKILL, a hang, running out of memory,
    a forbidden system call and protocol garbage are each retried into
    success, or end the run with their reason while the daemon carries on;
    an error the extension marks permanent is not retried; a step timeout;
  - cancelling a run, detached or followed by another client;
  - a hot swap: a new version installed while thirty steps run on the old
    one — none fails, later steps run the new version, the old one is
    drained and pruned;
  - a hostile extension trying to leave its sandbox (malicious_ext/);
  - bad input: a TOML syntax error, an unknown capability, a manifest with
    an unknown field.

Each test class runs its own daemon in a temporary directory. Steps of a
root client run as nobody, so workspaces the extensions write are 0777."""
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import tomllib
import unittest

# symphony_daemon.py sits next to this script, which Python puts on sys.path.
from symphony_daemon import SYMPHONYCTL, SYMPHONYD, CtlAssertions, SymphonyDaemon

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SYMPHONY_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("SYMPHONY_BUILD_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(SYMPHONYD)))
WORKFLOWS = os.path.join(HERE, "workflows")
EXAMPLES = os.path.join(SRC, "examples", "workflows")
CHAOS_EXT = os.path.join(BUILD, "tests", "stage", "chaos_ext")
PYTHON_HELLO = os.path.join(BUILD, "sdk", "examples", "python-hello")
MALICIOUS_EXT = os.path.join(HERE, "malicious_ext")


# How the chaos extension's segfault shows (also in the sanitizer build: the
# extension tells ASan to leave SIGSEGV alone).
SEGV = "killed by signal 11 (SIGSEGV)"


def wf(name):
    return os.path.join(WORKFLOWS, name)


class WorkflowCase(CtlAssertions, unittest.TestCase):
    """A daemon with the bundled extensions and the chaos extension of the
    build tree as system extensions, stage.dir (where `ext install` puts
    extensions) in its directory, and EXTRA_CONFIG appended to [stage]."""

    EXTRA_STAGE = ""
    EXTRA_CONFIG = ""
    ENV = {}

    @classmethod
    def setUpClass(cls):
        cls.daemon = SymphonyDaemon("symphony-wf-")
        # The sandbox runs steps as nobody; the directory must let it reach
        # the workspaces below it.
        os.chmod(cls.daemon.dir, 0o755)
        cls.dir = cls.daemon.dir
        cls.ext_dir = os.path.join(cls.dir, "extensions")
        system_dirs = [os.path.join(BUILD, "extensions"), os.path.join(BUILD, "tests", "stage")]
        cls.daemon.write_config(
            "[stage]\n"
            f"dir = {json.dumps(cls.ext_dir)}\n"
            f"system_dirs = {json.dumps(system_dirs)}\n"
            f"python_sdk_dir = {json.dumps(os.path.join(SRC, 'sdk', 'python'))}\n"
            + cls.EXTRA_STAGE + cls.EXTRA_CONFIG)
        cls.daemon.env.update(cls.ENV)
        try:
            cls.daemon.start()
        except RuntimeError:
            cls.daemon.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()

    @classmethod
    def ctl(cls, *args, stdin=None, cwd=None):
        return cls.daemon.ctl(*args, stdin=stdin, cwd=cwd)

    def daemon_log(self):
        self.daemon.log.flush()
        with open(self.daemon.log.name) as f:
            return f.read()[-6000:]

    def workspace(self, name=None):
        """A fresh directory anyone may write (the steps run as nobody)."""
        path = os.path.join(self.dir, "ws-" + (name or secrets.token_hex(4)))
        os.makedirs(path)
        os.chmod(path, 0o777)
        return path

    def run_wf(self, path, *params, workspace=None, timeout=180):
        """symphonyctl --json run PATH -w WORKSPACE -p K=V…: returns (exit
        status, events, the final result or None, stderr)."""
        args = [SYMPHONYCTL, "--user", "--json", "run", path, "-w", workspace or self.workspace()]
        for p in params:
            args += ["-p", p]
        r = subprocess.run(args, env=self.daemon.env, capture_output=True, timeout=timeout)
        events, result = [], None
        for line in r.stdout.decode().splitlines():
            obj = json.loads(line)
            if "event" in obj:
                events.append(obj["event"])
            else:
                result = obj["result"]
        return r.returncode, events, result, r.stderr.decode()

    def popen_wf(self, path, *params, workspace=None):
        """symphonyctl --json run …, left running: read its stdout lines."""
        args = [SYMPHONYCTL, "--user", "--json", "run", path, "-w", workspace or self.workspace()]
        for p in params:
            args += ["-p", p]
        return subprocess.Popen(args, env=self.daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def js_lines(self, *args):
        """symphonyctl --json ARGS… printing one JSON value a line."""
        return [json.loads(line) for line in self.ok("--json", *args).stdout.decode().splitlines()]

    @staticmethod
    def of_kind(events, kind, step=None):
        return [e for e in events if e["kind"] == kind and (step is None or e["step"] == step)]

    def assertRunOk(self, rc, events, result, err):
        detail = f"exit {rc}: {err}\nresult: {result}\nevents: {json.dumps(events)[-4000:]}"
        self.assertEqual(rc, 0, detail)
        self.assertIsNotNone(result, detail)
        self.assertEqual(result["state"], "succeeded", detail)

    def artifact(self, ref):
        return self.ok("artifact", "get", ref).stdout

    def output_ref(self, result, suffix):
        """The run output whose name (before @) ends with `suffix`."""
        hits = [o for o in result["outputs"] if o.split("@")[0].endswith(suffix)]
        self.assertEqual(len(hits), 1, f"{suffix} in {result['outputs']}")
        return hits[0]

    def assertHealthy(self):
        """The daemon process lives, answers, and runs a workflow."""
        self.assertIsNone(self.daemon.process.poll(), "symphonyd exited:\n" + self.daemon_log())
        self.ok("status")
        rc, events, result, err = self.run_wf(wf("noop.toml"))
        self.assertRunOk(rc, events, result, err)


class BundledExtensions(WorkflowCase):
    """The example workflows on the bundled extensions and the Python SDK."""

    def test_analyze_source_on_this_tree(self):
        rc, events, result, err = self.run_wf(os.path.join(EXAMPLES, "analyze-source.toml"), workspace=SRC,
                                              timeout=300)
        self.assertRunOk(rc, events, result, err)
        run = result["run"]
        self.assertEqual(result["workflow"], "analyze-source")
        self.assertEqual((result["done"], result["total"]), (11, 11))
        self.assertEqual(result["error"], "")

        # The report: Markdown with the title and a score.
        ref = self.output_ref(result, f"run/{run}/report/report")
        report = self.artifact(ref).decode()
        self.assertTrue(report.startswith("# Symphony source report"), report[:200])
        score = re.search(r"^\| Score \| \*\*(\d+(?:\.\d)?)\*\* / 100 \|$", report, re.M)
        self.assertIsNotNone(score, report[:1000])
        for section in ("## Overview", "## Worst files", "## Most complex functions", "## Working tree",
                        "## Recent commits"):
            self.assertIn(section, report)
        info = self.js("artifact", "info", ref)
        self.assertEqual(info["media_type"], "text/markdown")
        summary = json.loads(self.artifact(self.output_ref(result, f"run/{run}/report/summary")))
        self.assertEqual(summary["analyses"], 8)
        self.assertGreater(summary["files"], 50)
        self.assertEqual(summary["score"], float(score.group(1)))
        self.assertTrue(0 <= summary["score"] <= 100, summary["score"])

        # workflow show: every step succeeded, on the extension expected.
        show = self.js("workflow", "show", run)
        self.assertEqual(show["state"], "succeeded")
        steps = {s["id"]: s for s in show["steps"]}
        self.assertEqual(set(steps), {"status", "log", "report"} | {f"analyze[{i}]" for i in range(8)})
        for s in show["steps"]:
            self.assertEqual(s["state"], "succeeded", s)
            self.assertEqual(s["attempts"], 1, s)
            self.assertEqual(s["error"], "", s)
        self.assertTrue(steps["status"]["provider"].startswith("org.symphony.git@"))
        self.assertTrue(steps["analyze[3]"]["provider"].startswith("org.symphony.code@"))
        self.assertEqual(steps["report"]["outputs"], sorted(steps["report"]["outputs"]))
        self.assertIn(ref, steps["report"]["outputs"])
        text = self.ok("workflow", "show", run).stdout.decode()
        self.assertIn("state:     succeeded", text)
        self.assertRegex(text, r"analyze\[7\]\s+code\.analyze\s+succeeded")

        # workflow logs: the same events run --json printed, in order.
        logs = self.js_lines("workflow", "logs", run)
        self.assertEqual([e["seq"] for e in logs], list(range(1, len(logs) + 1)))
        self.assertEqual([(e["seq"], e["kind"], e["step"]) for e in logs],
                         [(e["seq"], e["kind"], e["step"]) for e in events])
        self.assertEqual(logs[0]["kind"], "run_started")
        self.assertEqual(logs[-1]["kind"], "run_finished")
        self.assertEqual(logs[-1]["state"], "succeeded")
        self.assertEqual(len(self.of_kind(logs, "step_succeeded")), 11)
        self.assertIn("report: succeeded", self.ok("workflow", "logs", run).stdout.decode())

        # workflow ls: the run is listed.
        runs = {r["run"]: r for r in self.js("workflow", "ls")}
        self.assertIn(run, runs)
        self.assertEqual(runs[run]["state"], "succeeded")
        self.assertEqual(runs[run]["workflow"], "analyze-source")
        self.assertIn(run, self.ok("workflow", "ls").stdout.decode())

    def test_hello_through_the_python_sdk_example(self):
        self.assertTrue(os.path.isfile(os.path.join(PYTHON_HELLO, "extension.toml")), PYTHON_HELLO)
        self.assertTrue(os.path.isfile(os.path.join(PYTHON_HELLO, "main.py")), PYTHON_HELLO)
        r = self.ok("ext", "install", PYTHON_HELLO, "--yes")
        self.assertIn("installed org.symphony.example.hello-py 0.1.0", r.stdout.decode())
        rc, events, result, err = self.run_wf(os.path.join(EXAMPLES, "hello.toml"), "name=Ada")
        self.assertRunOk(rc, events, result, err)
        started = self.of_kind(events, "step_started", "greet")
        self.assertEqual([e["provider"] for e in started], ["org.symphony.example.hello-py@0.1.0"])
        self.assertEqual(self.artifact(self.output_ref(result, "/greet/greeting")), b"Hello, Ada!\n")
        # The handler's progress and log line came through as events.
        self.assertIn("greeted Ada", [e["message"] for e in self.of_kind(events, "step_progress", "greet")])
        self.assertIn("greeted 1 name(s)", [e["message"] for e in self.of_kind(events, "step_log", "greet")])
        succeeded = self.of_kind(events, "step_succeeded", "greet")
        self.assertEqual(json.loads(succeeded[0]["message"]), {"greeted": 1})

    def test_fs_search_example_and_a_path_out_of_the_workspace(self):
        ws = self.workspace("fs")
        os.makedirs(os.path.join(ws, "src"))
        with open(os.path.join(ws, "src", "a.c"), "w") as f:
            f.write("int a;\n// TODO: fix a\n")
        with open(os.path.join(ws, "notes.txt"), "w") as f:
            f.write("nothing here\nTODO later\n")
        rc, events, result, err = self.run_wf(os.path.join(EXAMPLES, "fs-search.toml"), "path=.", "pattern=TODO",
                                              workspace=ws)
        self.assertRunOk(rc, events, result, err)
        entries = json.loads(self.artifact(self.output_ref(result, "/list/entries")))
        self.assertEqual(sorted((e["path"], e["type"]) for e in entries),
                         [("notes.txt", "file"), ("src", "directory")])
        matches = json.loads(self.artifact(self.output_ref(result, "/search/matches")))
        self.assertEqual(sorted((m["path"], m["line"], m["text"]) for m in matches),
                         [("notes.txt", 2, "TODO later"), ("src/a.c", 2, "// TODO: fix a")])

        # ../etc/passwd: refused, once, though the policy allows 3 attempts.
        rc, events, result, err = self.run_wf(wf("fs-escape.toml"), workspace=ws)
        self.assertEqual(rc, 1, err)
        self.assertEqual(result["state"], "failed")
        self.assertEqual(self.of_kind(events, "step_retrying"), [])
        failed = self.of_kind(events, "step_failed", "passwd")
        self.assertEqual(len(failed), 1, events)
        self.assertEqual(failed[0]["attempt"], 1)
        self.assertEqual(failed[0]["failure"], "failed")
        self.assertIn("'../etc/passwd' contains '..'; paths must stay inside the workspace", failed[0]["message"])
        self.assertIn("contains '..'", result["error"])
        step = result["steps"][0]
        self.assertEqual((step["state"], step["attempts"]), ("failed", 1))
        self.assertNotIn("root:", json.dumps(events))


class Chaos(WorkflowCase):
    """The chaos extension's misbehaviours, retried and not."""

    EXTRA_STAGE = "heartbeat_ms = 100\nheartbeat_timeout_ms = 1000\ncancel_grace_ms = 1000\n"

    # mode: (failure class, what the step error says)
    MODES = {
        "segv": ("crash", SEGV),
        "sigkill": ("crash", "killed by signal 9 (SIGKILL)"),
        "hang": ("hang", "instance hung: no message for 1000 ms"),
        "oom": ("oom", "instance ran out of memory (limit 64 MiB)"),
        "syscall": ("syscall", "instance made a forbidden system call: ptrace"),
        "garbage": ("protocol", "protocol violation: malformed msgpack"),
    }

    def test_each_misbehaviour_is_retried_into_success(self):
        for mode, (cls, reason) in self.MODES.items():
            with self.subTest(mode=mode):
                ws = self.workspace("retry-" + mode)
                rc, events, result, err = self.run_wf(wf("chaos-retry.toml"), "mode=" + mode,
                                                      "marker=" + mode + ".marker", workspace=ws)
                self.assertRunOk(rc, events, result, err)
                retrying = self.of_kind(events, "step_retrying", "chaos")
                self.assertEqual(len(retrying), 1, events)
                self.assertEqual(retrying[0]["attempt"], 1)
                self.assertEqual(retrying[0]["failure"], cls)
                self.assertIn(reason, retrying[0]["message"])
                self.assertTrue(retrying[0]["provider"].startswith("org.symphony.test.chaos@"), retrying[0])
                started = self.of_kind(events, "step_started", "chaos")
                self.assertEqual([e["attempt"] for e in started], [1, 2])
                self.assertEqual(result["steps"][0]["attempts"], 2)
                self.assertEqual(result["steps"][0]["state"], "succeeded")
                out = json.loads(self.artifact(self.output_ref(result, "/chaos/result")))
                self.assertEqual(out["mode"], mode)
                self.assertTrue(os.path.exists(os.path.join(ws, mode + ".marker")))

    def test_each_misbehaviour_fails_the_run_and_the_daemon_carries_on(self):
        for mode, (cls, reason) in self.MODES.items():
            with self.subTest(mode=mode):
                t0 = time.monotonic()
                rc, events, result, err = self.run_wf(wf("chaos-fail.toml"), "mode=" + mode)
                self.assertEqual(rc, 1, f"{err} {result}")
                self.assertEqual(result["state"], "failed")
                retrying = self.of_kind(events, "step_retrying", "chaos")
                failed = self.of_kind(events, "step_failed", "chaos")
                self.assertEqual([(e["attempt"], e["failure"]) for e in retrying + failed], [(1, cls), (2, cls)])
                for e in retrying + failed:
                    self.assertIn(reason, e["message"])
                self.assertEqual(result["steps"][0]["attempts"], 2)
                self.assertIn("step 'chaos' failed after 2 attempts: ", result["error"])
                self.assertIn(reason, result["error"])
                self.assertIn(reason, result["steps"][0]["error"])
                self.assertLess(time.monotonic() - t0, 30)
                self.assertHealthy()

    def test_without_json_the_terminal_shows_the_failure(self):
        r = self.ctl("run", wf("chaos-fail.toml"), "-p", "mode=segv", "-w", self.workspace())
        self.assertEqual(r.returncode, 1, r.stderr)
        out, err = r.stdout.decode(), r.stderr.decode()
        self.assertRegex(out, r"^run run-[0-9a-f]{12}: failed \(1/1 steps\)\n")
        self.assertTrue(out.endswith(f"\nerror: step 'chaos' failed after 2 attempts: instance crashed: {SEGV}\n"),
                        out)
        self.assertRegex(err, r"chaos: attempt 1 failed \(crash\): instance crashed: " + re.escape(SEGV) +
                         r"; retrying in \d+ ms")
        self.assertIn(f"chaos: FAILED (crash) after 2 attempts: instance crashed: {SEGV}", err)
        self.assertHealthy()

    def test_a_permanent_error_is_not_retried(self):
        rc, events, result, err = self.run_wf(wf("chaos-permanent.toml"))
        self.assertEqual(rc, 1, err)
        self.assertEqual(self.of_kind(events, "step_retrying"), [])
        self.assertEqual(len(self.of_kind(events, "step_started", "chaos")), 1)
        failed = self.of_kind(events, "step_failed", "chaos")
        self.assertEqual([(e["attempt"], e["failure"], e["message"]) for e in failed],
                         [(1, "failed", "chaos: asked to fail permanently")])
        self.assertEqual(result["steps"][0]["attempts"], 1)

    def test_a_step_past_its_timeout(self):
        t0 = time.monotonic()
        rc, events, result, err = self.run_wf(wf("chaos-timeout.toml"))
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 1, err)
        failed = self.of_kind(events, "step_failed", "sleepy")
        self.assertEqual([(e["failure"], e["message"]) for e in failed], [("timeout", "step timed out after 500 ms")])
        self.assertIn("step timed out after 500 ms", result["error"])
        self.assertLess(elapsed, 8, "the 10 s sleep was not cut short")
        self.assertHealthy()

    def wait_running(self, run, step, timeout=20):
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            st = self.js("workflow", "show", run)
            states = {s["id"]: s["state"] for s in st["steps"]}
            if states.get(step) == "running" and self.of_kind(self.js_lines("workflow", "logs", run),
                                                              "step_started", step):
                return st
            time.sleep(0.05)
        self.fail(f"{step} of {run} never started: {st}")

    def test_cancel_a_detached_run(self):
        r = self.ok("run", wf("sleep.toml"), "-w", self.workspace(), "--detach")
        run = r.stdout.decode().strip()
        self.assertRegex(run, r"^run-[0-9a-f]{12}$")
        self.wait_running(run, "long")
        t0 = time.monotonic()
        cancelled = self.js("workflow", "cancel", run)
        self.assertEqual(cancelled["run"], run)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st = self.js("workflow", "show", run)
            if st["state"] != "running":
                break
            time.sleep(0.05)
        self.assertEqual(st["state"], "cancelled", st)
        self.assertLess(time.monotonic() - t0, 5)
        steps = {s["id"]: s["state"] for s in st["steps"]}
        self.assertEqual(steps, {"long": "cancelled", "after": "cancelled"}, st)
        self.assertEqual(st["error"], "cancelled")
        logs = self.js_lines("workflow", "logs", run)
        self.assertEqual([e["step"] for e in self.of_kind(logs, "step_cancelled")], ["long"])
        finished = self.of_kind(logs, "run_finished")
        self.assertEqual([e["state"] for e in finished], ["cancelled"])
        # Known wart: the chaos step's own progress and log line, sent as its
        # handler returns after the cancel, are recorded after run_finished.
        # Nothing else may follow it.
        after = logs[logs.index(finished[0]) + 1:]
        self.assertEqual([e for e in after if e["kind"] not in ("step_progress", "step_log")], [], after)
        self.assertEqual(self.of_kind(logs, "step_started", "after"), [])
        # The cancelled step stored nothing.
        self.assertEqual(self.js("artifact", "ls", f"run/{run}/"), [])
        # Cancelling it again is an error; an unknown run is not found.
        self.assertEqual(self.ctl("workflow", "cancel", run).returncode, 1)
        self.assertEqual(self.ctl("workflow", "cancel", "run-000000000000").returncode, 4)
        self.assertEqual(self.ctl("workflow", "show", "run-000000000000").returncode, 4)
        self.assertHealthy()

    def test_a_followed_run_cancelled_by_another_client_exits_5(self):
        p = self.popen_wf(wf("sleep.toml"))
        try:
            run = None
            for line in p.stdout:
                e = json.loads(line).get("event", {})
                if e.get("kind") == "step_started" and e.get("step") == "long":
                    run = e["run"]
                    break
            self.assertIsNotNone(run, p.stderr.read() if p.poll() is not None else "")
            self.ok("workflow", "cancel", run)
            out, err = p.communicate(timeout=15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertEqual(p.returncode, 5, err)
        lines = [json.loads(line) for line in out.decode().splitlines()]
        self.assertEqual(lines[-1]["result"]["state"], "cancelled")
        self.assertIn("run_finished", [line["event"]["kind"] for line in lines[:-1]])


SWAP_MAIN = '''"""A tiny extension whose version lives in VERSION beside this file
(written by test_workflows.py for the hot-swap test)."""
import os
import sys
import time

from symphony_ext import Extension

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "VERSION")) as f:
    VERSION = f.read().strip()

ext = Extension("org.symphony.test.swap", VERSION)


@ext.capability("swap.run")
def run(step):
    time.sleep(step.params.get("ms", 100) / 1000.0)
    step.output_json("ran", {"version": VERSION, "index": step.params.get("index")})
    step.summary = {"version": VERSION}


if __name__ == "__main__":
    sys.exit(ext.run())
'''

SWAP_MANIFEST = '''id = "org.symphony.test.swap"
version = "{version}"
kind = "instrument"
description = "Sleeps and says which version it is (hot-swap test)"
symphony = ">=0.1"

[entry]
command = ["/usr/bin/python3", "main.py"]

[[capabilities]]
name = "swap.run"
outputs = [{{name = "ran", media_type = "application/json"}}]
[capabilities.params]
index = {{type = "integer", default = 0}}
ms = {{type = "integer", default = 100}}

[limits]
memory = "128M"
pids = 16
'''


class HotSwap(WorkflowCase):
    """A new version installed under load."""

    # Two steps at a time, so the thirty take a couple of seconds; a short
    # heartbeat timeout makes the maintenance (drain, prune) run often.
    EXTRA_STAGE = "max_instances = 2\nheartbeat_ms = 200\nheartbeat_timeout_ms = 1000\n"
    EXTRA_CONFIG = "[conductor]\nmax_parallel = 2\n"

    def swap_ext(self, version):
        path = os.path.join(self.dir, "src", "swap-" + version)
        os.makedirs(path)
        with open(os.path.join(path, "extension.toml"), "w") as f:
            f.write(SWAP_MANIFEST.format(version=version))
        with open(os.path.join(path, "main.py"), "w") as f:
            f.write(SWAP_MAIN)
        with open(os.path.join(path, "VERSION"), "w") as f:
            f.write(version + "\n")
        return path

    def test_install_a_new_version_while_steps_run(self):
        self.ok("ext", "install", self.swap_ext("1.0.0"), "--yes")
        v2 = self.swap_ext("2.0.0")
        p = self.popen_wf(wf("hot-swap.toml"), "ms=150")
        events, result = [], None
        install_started = install_done = None
        try:
            for line in p.stdout:
                obj = json.loads(line)
                if "result" in obj:
                    result = obj["result"]
                    continue
                e = obj["event"]
                events.append(e)
                if install_started is None and len(self.of_kind(events, "step_succeeded")) >= 4:
                    install_started = time.time() * 1000
                    r = self.ctl("--json", "ext", "install", v2, "--yes")
                    install_done = time.time() * 1000
                    self.assertEqual(r.returncode, 0, r.stderr)
                    installed = json.loads(r.stdout)
                    self.assertEqual((installed["version"], installed["previous"]), ("2.0.0", "1.0.0"))
            p.wait(60)
            err = p.stderr.read().decode()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
            p.stderr.close()
        self.assertIsNotNone(install_started, "the run ended before 4 steps succeeded")
        self.assertRunOk(p.returncode, events, result, err)
        self.assertEqual((result["done"], result["total"]), (30, 30))
        self.assertEqual(self.of_kind(events, "step_failed"), [])
        self.assertEqual(self.of_kind(events, "step_retrying"), [])
        for s in result["steps"]:
            self.assertEqual((s["state"], s["attempts"]), ("succeeded", 1), s)

        # Each step ran the version it was started on (its step_started
        # provider), as the extension itself reports it.
        started = self.of_kind(events, "step_started")
        self.assertEqual(len(started), 30)
        ran = {e["step"]: json.loads(e["message"])["version"] for e in self.of_kind(events, "step_succeeded")}
        order = []
        for e in started:
            version = e["provider"].split("@")[1]
            self.assertEqual(ran[e["step"]], version, e)
            order.append(version)
            if e["time_ms"] > install_done:
                self.assertEqual(version, "2.0.0", f"{e} started after the install returned")
            if e["time_ms"] < install_started:
                self.assertEqual(version, "1.0.0", e)
        # Monotonic: 1.0.0 up to the install, 2.0.0 from then on.
        self.assertIn("1.0.0", order)
        self.assertIn("2.0.0", order)
        switch = order.index("2.0.0")
        self.assertEqual(order, ["1.0.0"] * switch + ["2.0.0"] * (30 - switch), order)
        self.assertGreater(30 - switch, 5, "too few steps after the install to show the swap")
        if os.environ.get("SYMPHONY_TEST_VERBOSE"):
            print(f"\nhot swap: {switch} steps on 1.0.0, {30 - switch} on 2.0.0")
        out = json.loads(self.artifact(self.output_ref(result, "run/" + result["run"] + "/swap.29/ran")))
        self.assertEqual(out, {"version": "2.0.0", "index": 29})

        # The new version is current; the old one, drained, is pruned.
        info = self.js("ext", "info", "org.symphony.test.swap")
        self.assertEqual(info["version"], "2.0.0")
        old_dir = os.path.join(self.ext_dir, "org.symphony.test.swap", "1.0.0")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            info = self.js("ext", "info", "org.symphony.test.swap")
            if "1.0.0" not in info["other_versions"] and not os.path.exists(old_dir):
                break
            time.sleep(0.2)
        self.assertNotIn("1.0.0", info["other_versions"], self.daemon_log())
        self.assertFalse(os.path.exists(old_dir))
        self.assertEqual(info["version"], "2.0.0")


class Malicious(WorkflowCase):
    """A hostile extension, installed the ordinary way, tries to get out."""

    SECRET = "symphony-secret-" + secrets.token_hex(8)
    ENV = {"SYMPHONY_TEST_SECRET": SECRET}
    # One probe at a time: a probe the sandbox kills must not take others
    # down with it (see CrashCollateral).
    EXTRA_CONFIG = "[conductor]\nmax_parallel = 1\n"
    # Each killed instance leaves its pool slot failed, in backoff, for a
    # while; with fewer slots than kills the next step would find none.
    EXTRA_STAGE = "max_instances = 16\n"
    # Probes the seccomp filter is expected to stop by killing the sandbox.
    KILLED = {"ptrace": "ptrace", "mount": "mount", "unshare": "unshare", "packet_socket": "socket"}

    def test_every_escape_attempt_is_contained(self):
        r = self.ok("ext", "install", MALICIOUS_EXT, "--yes")
        out = r.stdout.decode()
        self.assertIn("org.symphony.test.malicious 0.6.6 (operator) requests: read-write access to the workspace; "
                      "network: no", out)
        host_file = os.path.join(self.dir, "secret.txt")
        with open(host_file, "w") as f:
            f.write(self.SECRET + "\n")
        os.chmod(host_file, 0o644)
        token = "symphony-escape-" + secrets.token_hex(6)
        ws = self.workspace("malicious")
        planted = [os.path.join(self.dir, token), os.path.join("/tmp", token), os.path.join("/usr", token)]
        rc, events, result, err = self.run_wf(
            wf("malicious.toml"), "secret=" + self.SECRET, "host_file=" + host_file, "host_dir=" + self.dir,
            "socket=" + self.daemon.socket, f"daemon_pid={self.daemon.process.pid}", "token=" + token,
            workspace=ws)
        try:
            self.assertIn(rc, (0, 1), err)
            self.assertIsNotNone(result, err)
            probes = self.js("workflow", "show", result["run"])["steps"]
            with open(wf("malicious.toml"), "rb") as f:
                names = tomllib.load(f)["params"]["probes"]
            self.assertEqual(len(names), 17)
            report = {}
            for i, name in enumerate(names):
                step = f"probe[{i}]"
                st = next(s for s in probes if s["id"] == step)
                if st["state"] == "succeeded":
                    res = json.loads(self.artifact(self.output_ref(result, f"/probe.{i}/result")))
                    self.assertEqual(res["probe"], name)
                    report[name] = res
                    self.assertNotEqual(res["escaped"], True, f"{name} got out: {res}")
                    # Steps run as the client, or as nobody for root.
                    self.assertEqual(res["uid"], 65534 if os.geteuid() == 0 else os.geteuid(), res)
                else:
                    failed = self.of_kind(events, "step_failed", step)
                    self.assertEqual(len(failed), 1, f"{name}: {st}")
                    report[name] = {"killed": failed[0]["failure"], "message": failed[0]["message"]}
                    # Killed for a forbidden system call: contained too.
                    self.assertEqual(failed[0]["failure"], "syscall", f"{name}: {failed[0]}")
                    self.assertIn("forbidden system call", failed[0]["message"])
            # Everything that is not a forbidden system call ran and reported.
            for name in names:
                if name not in self.KILLED:
                    self.assertNotIn("killed", report[name], f"{name}: {report[name]}")
            for name, call in self.KILLED.items():
                if "killed" in report[name]:
                    self.assertIn("forbidden system call: " + call, report[name]["message"])
                else:
                    self.assertFalse(report[name]["ok"], report[name])
            # What only the host can check: no file landed outside, the
            # daemon lives and serves.
            for path in planted:
                self.assertFalse(os.path.exists(path), f"{path} was written from the sandbox")
            self.assertNotIn(token, os.listdir(os.path.dirname(ws)))
            self.assertHealthy()
        finally:
            for path in planted:
                if os.path.exists(path):
                    os.unlink(path)
        if os.environ.get("SYMPHONY_TEST_VERBOSE"):
            print(json.dumps(report, indent=2))


class CrashCollateral(WorkflowCase):
    """An instance that dies takes down the steps waiting for one."""

    # One instance per extension and workspace, so a second step waits.
    EXTRA_STAGE = "max_instances = 1\nheartbeat_ms = 100\nheartbeat_timeout_ms = 1000\n"

    @unittest.expectedFailure  # product bug: the pool fails every waiter of a model whose instance died
    def test_a_hung_instance_spares_the_step_waiting_for_it(self):
        ws = self.workspace()
        run = self.ok("run", wf("chaos-once.toml"), "-p", "mode=hang", "-w", ws, "--detach").stdout.decode().strip()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.js("workflow", "show", run)["steps"][0]["state"] == "running":
                break
            time.sleep(0.02)
        time.sleep(0.3)  # it holds the only instance and stops answering
        # noop waits for that instance; it is killed as hung after 1 s …
        rc, events, result, err = self.run_wf(wf("noop.toml"), workspace=ws)
        hung = self.js("workflow", "show", run)
        self.assertEqual(hung["state"], "failed")
        self.assertIn("instance hung", hung["error"])
        # … and the waiting step should then get a fresh one. Today it fails:
        # "pool: model '…': health check of …#0 failed: instance is not running".
        self.assertRunOk(rc, events, result, err)


class BadInput(WorkflowCase):
    """Errors a user sees before anything runs."""

    def fails(self, code, *args):
        r = self.ctl(*args)
        self.assertEqual(r.returncode, code, f"symphonyctl {' '.join(args)}: {r.stdout} {r.stderr}")
        return r.stderr.decode()

    def test_a_syntax_error_names_file_and_line(self):
        path = wf("bad-syntax.toml")
        err = self.fails(2, "run", path, "-w", self.workspace())
        self.assertIn(path + ":6:", err)
        self.assertEqual(self.js("workflow", "ls"), [])

    def test_an_unknown_capability_names_the_step(self):
        path = wf("unknown-capability.toml")
        err = self.fails(4, "run", path, "-w", self.workspace())
        self.assertIn(f"{path}:8: step 'nobody-home': no enabled extension provides capability "
                      "'nothing.provides_this'", err)
        self.assertEqual(self.js("workflow", "ls"), [])
        # With --json too, and nothing on stdout.
        r = self.ctl("--json", "run", path, "-w", self.workspace())
        self.assertEqual((r.returncode, r.stdout), (4, b""))

    def test_an_unknown_parameter_and_a_missing_workspace(self):
        err = self.fails(2, "run", wf("chaos-fail.toml"), "-p", "mood=segv", "-w", self.workspace())
        self.assertIn("--param mood=segv: unknown parameter 'mood' (did you mean 'mode'?)", err)
        self.fails(2, "run", wf("noop.toml"), "-w", os.path.join(self.dir, "nowhere"))
        self.fails(2, "run", os.path.join(self.dir, "nowhere.toml"))

    def test_a_manifest_with_an_unknown_field(self):
        src = os.path.join(self.dir, "src", "unknown-field")
        shutil.copytree(MALICIOUS_EXT, src)
        manifest = os.path.join(src, "extension.toml")
        with open(manifest) as f:
            lines = f.read().splitlines()
        line = lines.index('kind = "operator"') + 1
        lines.insert(line, 'colour = "red"')
        with open(manifest, "w") as f:
            f.write("\n".join(lines) + "\n")
        err = self.fails(1, "ext", "install", src, "--yes")
        self.assertIn(f"{manifest}:{line + 1}:", err)
        self.assertIn("colour: unknown field (expected one of: id, version, kind", err)
        self.assertNotIn("org.symphony.test.malicious", self.ok("ext", "ls").stdout.decode())


if __name__ == "__main__":
    unittest.main()
