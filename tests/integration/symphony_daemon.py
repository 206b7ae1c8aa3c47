"""Shared by the Python integration tests: runs the real symphonyd --user in a
private temporary directory (XDG_* variables), waits until it serves, runs
symphonyctl against it and stops it. The binaries come from $SYMPHONYD and
$SYMPHONYCTL, which meson sets for these tests."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

SYMPHONYD = os.environ["SYMPHONYD"]
SYMPHONYCTL = os.environ["SYMPHONYCTL"]


class SymphonyDaemon:
    """One symphonyd --user in a fresh directory `dir`: runtime dir
    `run_dir`, config under dir/config, state under `state`, log in
    dir/daemon.log. start() and stop() may be called more than once (a
    restart keeps the state); close() stops it and removes the directory."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.run_dir, mode=0o700)
        self.runtime = os.path.join(self.run_dir, "symphony")
        self.socket = os.path.join(self.runtime, "symphonyd.sock")
        self.state = os.path.join(self.dir, "state")
        self.env = dict(os.environ, XDG_RUNTIME_DIR=self.run_dir, XDG_CONFIG_HOME=self.dir + "/config",
                        XDG_STATE_HOME=self.state, HOME=self.dir)
        self.env.pop("SYMPHONY_SOCKET", None)
        self.log = open(os.path.join(self.dir, "daemon.log"), "a")
        self.process = None

    def write_config(self, text):
        """Writes symphonyd.toml (read at the next start)."""
        os.makedirs(os.path.join(self.dir, "config", "symphony"), exist_ok=True)
        with open(os.path.join(self.dir, "config", "symphony", "symphonyd.toml"), "w") as f:
            f.write(text)

    def start(self):
        """Starts symphonyd and waits (up to 10 s) until `symphonyctl status`
        succeeds; raises RuntimeError with the daemon's log if it does not."""
        self.process = subprocess.Popen([SYMPHONYD, "--user", "--log-target", "console"],
                                        env=self.env, stdout=self.log, stderr=self.log)
        for _ in range(400):
            if self.process.poll() is not None:
                break
            if os.path.exists(self.socket) and self.ctl("status").returncode == 0:
                break
            time.sleep(0.025)
        else:
            self.process.kill()
            self.process.wait()
        if self.process.poll() is not None or not os.path.exists(self.socket):
            self.log.flush()
            with open(self.log.name) as f:
                raise RuntimeError("symphonyd did not start: " + f.read())

    def stop(self):
        """SIGTERM, then SIGKILL if it has not exited within 10 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self):
        self.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def ctl(self, *args, stdin=None, cwd=None):
        """Runs symphonyctl --user against this daemon (in `cwd` if given)."""
        return subprocess.run([SYMPHONYCTL, "--user", *args], env=self.env, input=stdin,
                              capture_output=True, timeout=60, cwd=cwd)


class CtlAssertions:
    """Mixed into a unittest.TestCase whose ctl() runs symphonyctl."""

    def ok(self, *args, stdin=None):
        r = self.ctl(*args, stdin=stdin)
        self.assertEqual(r.returncode, 0, f"symphonyctl {' '.join(args)}: {r.stderr.decode()}")
        return r

    def js(self, *args, stdin=None):
        return json.loads(self.ok("--json", *args, stdin=stdin).stdout)
