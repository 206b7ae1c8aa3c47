#!/usr/bin/python3
"""symphonyctl ext … against the real symphonyd, with stage.dir and
stage.system_dirs in a temporary directory: install (what the manifest asks
for is shown first), ls and info with and without --json, a second install
of the same version refused, --force, a new version replacing the old one
(which stays on disk), disable/enable, remove, per-user installs shadowing
system ones, bundled extensions (disable yes, remove no), and the errors a
user sees for bad manifests, incompatible ranges, escaping symlinks and
unknown ids."""
import os
import shutil
import subprocess
import unittest

# symphony_daemon.py sits next to this script, which Python puts on sys.path.
from symphony_daemon import SYMPHONYCTL, CtlAssertions, SymphonyDaemon

MANIFEST = """id = "{id}"
version = "{version}"
kind = "operator"
description = "Says hello"
symphony = "{symphony}"

[entry]
command = ["bin/hello"]

[[capabilities]]
name = "hello.greet"
description = "Greets someone"
outputs = [{{name = "greeting", media_type = "text/plain"}}]
[capabilities.params]
who = {{type = "string", required = true, description = "whom to greet"}}
times = {{type = "integer", default = 1}}

[permissions]
filesystem = [{{path = "workspace", access = "rw"}}, {{path = "/usr/share/dict", access = "ro"}}]

[limits]
memory = "256M"
timeout = "30s"
"""


class ExtCli(CtlAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = SymphonyDaemon("symphony-ext-")
        cls.dir = cls.daemon.dir
        cls.ext_dir = os.path.join(cls.dir, "extensions")
        cls.bundled = os.path.join(cls.dir, "bundled")
        cls.write_ext(os.path.join(cls.bundled, "tool"), "org.symphony.tool", "1.0.0")
        cls.daemon.write_config(f'[stage]\ndir = "{cls.ext_dir}"\nsystem_dirs = ["{cls.bundled}"]\n')
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

    @staticmethod
    def write_ext(path, ext_id, version, symphony=">=0.1", manifest=None):
        os.makedirs(os.path.join(path, "bin"), exist_ok=True)
        with open(os.path.join(path, "extension.toml"), "w") as f:
            f.write(manifest if manifest is not None
                    else MANIFEST.format(id=ext_id, version=version, symphony=symphony))
        hello = os.path.join(path, "bin", "hello")
        with open(hello, "w") as f:
            f.write("#!/bin/sh\necho hello " + version + "\n")
        os.chmod(hello, 0o755)
        return path

    def source(self, ext_id, version, **kw):
        return self.write_ext(os.path.join(self.dir, "src", f"{ext_id}-{version}"), ext_id, version, **kw)

    def fails(self, code, *args):
        r = self.ctl(*args)
        self.assertEqual(r.returncode, code, f"symphonyctl {' '.join(args)}: {r.stdout} {r.stderr}")
        return r.stderr.decode()

    def test_install_shows_the_requests_then_ls_and_info_show_it(self):
        src = self.source("org.example.hello", "0.1.0")
        # A relative DIR is made absolute before it goes to the daemon.
        r = self.ctl("ext", "install", os.path.basename(src), cwd=os.path.dirname(src))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("org.example.hello 0.1.0 (operator) requests: read-write access to the workspace; "
                      "read-only /usr/share/dict; network: no; GPU: no; devices: none; "
                      "limits: memory 256 MiB, timeout 30 s", out)
        self.assertIn("installed org.example.hello 0.1.0\n", out)
        installed = os.path.join(self.ext_dir, "org.example.hello", "0.1.0")
        self.assertTrue(os.access(os.path.join(installed, "bin", "hello"), os.X_OK))

        exts = {e["id"]: e for e in self.js("ext", "ls") if not e["shadowed"]}
        e = exts["org.example.hello"]
        self.assertEqual(e["version"], "0.1.0")
        self.assertEqual(e["kind"], "operator")
        self.assertEqual(e["scope"], "system")
        self.assertFalse(e["bundled"])
        self.assertTrue(e["enabled"])
        self.assertEqual(e["dir"], installed)
        self.assertTrue(exts["org.symphony.tool"]["bundled"])
        table = self.ok("ext", "ls").stdout.decode()
        self.assertRegex(table, r"ID\s+VERSION\s+KIND\s+SCOPE\s+ENABLED\s+CAPABILITIES")
        self.assertRegex(table, r"org\.example\.hello\s+0\.1\.0\s+operator\s+system\s+yes\s+1")
        self.assertRegex(table, r"org\.symphony\.tool\s+1\.0\.0\s+operator\s+bundled\s+yes\s+1")

        info = self.js("ext", "info", "org.example.hello")
        self.assertEqual(info["description"], "Says hello")
        self.assertEqual(info["symphony"], ">=0.1")
        self.assertEqual(info["activation"], "demand")
        self.assertEqual(info["permissions"], {
            "filesystem": [{"path": "workspace", "access": "rw"}, {"path": "/usr/share/dict", "access": "ro"}],
            "network": False, "gpu": False, "devices": []})
        self.assertEqual(info["limits"], {"cpu": None, "memory": 256 * 1024 * 1024, "pids": None,
                                          "timeout_ms": 30000, "gpu_memory": None})
        cap = info["capabilities"][0]
        self.assertEqual(cap["name"], "hello.greet")
        self.assertEqual(cap["outputs"], [{"name": "greeting", "media_type": "text/plain"}])
        params = {p["name"]: p for p in cap["params"]}
        self.assertEqual(params["who"]["type"], "string")
        self.assertTrue(params["who"]["required"])
        self.assertNotIn("default", params["who"])
        self.assertEqual(params["times"]["default"], 1)
        self.assertEqual(info["other_versions"], [])
        text = self.ok("ext", "info", "org.example.hello").stdout.decode()
        self.assertIn("org.example.hello 0.1.0 (operator)", text)
        self.assertIn("files:      read-write access to the workspace; read-only /usr/share/dict", text)
        self.assertIn("limits:       memory 256 MiB, timeout 30 s", text)
        self.assertIn("who: string, required  whom to greet", text)
        self.assertIn("times: integer, default 1", text)

    @unittest.skipUnless(shutil.which("script"), "needs script(1) for a terminal")
    def test_on_a_terminal_install_asks_first(self):
        src = self.source("org.example.asked", "0.1.0")
        for answer, code, last in [("n", 1, "symphonyctl: not installed"),
                                   ("y", 0, "installed org.example.asked 0.1.0")]:
            # script(1) gives symphonyctl a terminal for stdin and stdout.
            r = subprocess.run(["script", "-qec", f"{SYMPHONYCTL} --user ext install {src}", "/dev/null"],
                               env=self.daemon.env, input=(answer + "\n").encode(), capture_output=True,
                               timeout=60)
            out = r.stdout.decode().replace("\r", "")
            self.assertEqual(r.returncode, code, out)
            self.assertIn("org.example.asked 0.1.0 (operator) requests: ", out)
            self.assertIn("Install? [y/N] ", out)
            self.assertIn(last, out)
            self.assertEqual(os.path.isdir(os.path.join(self.ext_dir, "org.example.asked", "0.1.0")), answer == "y")

    def test_same_version_refused_then_forced_then_replaced_by_a_new_one(self):
        src = self.source("org.example.versions", "0.1.0")
        self.ok("ext", "install", src)
        err = self.fails(1, "ext", "install", src)
        self.assertIn("org.example.versions 0.1.0 is already installed; remove it first or install another "
                      "version", err)
        out = self.ok("ext", "install", src, "--force").stdout.decode()
        self.assertIn("installed org.example.versions 0.1.0 (replaces 0.1.0)", out)

        new = self.js("ext", "install", self.source("org.example.versions", "0.2.0"))
        self.assertEqual(new["version"], "0.2.0")
        self.assertEqual(new["previous"], "0.1.0")
        self.assertEqual(new["other_versions"], ["0.1.0"])
        info = self.js("ext", "info", "org.example.versions")
        self.assertEqual(info["version"], "0.2.0")
        self.assertEqual(info["other_versions"], ["0.1.0"])
        # The old version stays on disk: running instances may still use it.
        self.assertTrue(os.path.isdir(os.path.join(self.ext_dir, "org.example.versions", "0.1.0")))
        text = self.ok("ext", "info", "org.example.versions").stdout.decode()
        self.assertIn("other versions on disk: 0.1.0", text)

    def test_disable_enable_and_remove(self):
        self.ok("ext", "install", self.source("org.example.toggle", "1.0.0"))
        out = self.ok("ext", "disable", "org.example.toggle").stdout.decode()
        self.assertIn("disabled org.example.toggle 1.0.0 (system-wide)", out)
        self.assertFalse(self.js("ext", "info", "org.example.toggle")["enabled"])
        self.assertRegex(self.ok("ext", "ls").stdout.decode(), r"org\.example\.toggle\s+1\.0\.0\s+operator\s+system\s+no")
        self.assertTrue(self.js("ext", "enable", "org.example.toggle")["enabled"])
        out = self.ok("ext", "remove", "org.example.toggle").stdout.decode()
        self.assertIn("removed org.example.toggle 1.0.0", out)
        self.assertFalse(os.path.exists(os.path.join(self.ext_dir, "org.example.toggle")))
        err = self.fails(4, "ext", "info", "org.example.toggle")
        self.assertIn("no extension 'org.example.toggle' is installed", err)
        self.fails(4, "ext", "remove", "org.example.toggle")
        self.fails(4, "ext", "disable", "org.example.toggle")

    def test_a_user_install_shadows_the_system_one(self):
        self.ok("ext", "install", self.source("org.example.mine", "1.0.0"))
        mine = self.js("ext", "install", "--user", self.source("org.example.mine", "2.0.0"))
        self.assertEqual(mine["scope"], "user")
        self.assertTrue(mine["dir"].startswith(os.path.join(self.ext_dir, "users", str(os.getuid()), "org.example.mine")))
        self.assertEqual(self.js("ext", "info", "org.example.mine")["version"], "2.0.0")
        both = [e for e in self.js("ext", "ls") if e["id"] == "org.example.mine"]
        self.assertEqual([(e["scope"], e["version"], e["shadowed"]) for e in both],
                         [("user", "2.0.0", False), ("system", "1.0.0", True)])
        self.assertRegex(self.ok("ext", "ls").stdout.decode(), r"org\.example\.mine\s+1\.0\.0\s+operator\s+system \(shadowed\)")
        self.ok("ext", "remove", "org.example.mine", "--user")
        self.assertEqual(self.js("ext", "info", "org.example.mine")["version"], "1.0.0")

    def test_bundled_extensions_can_be_disabled_not_removed(self):
        err = self.fails(1, "ext", "remove", "org.symphony.tool")
        self.assertIn("bundled with Symphony: use `symphonyctl ext disable", err)
        out = self.ok("ext", "disable", "org.symphony.tool").stdout.decode()
        self.assertIn("disabled org.symphony.tool 1.0.0 (bundled)", out)
        self.assertFalse(self.js("ext", "info", "org.symphony.tool")["enabled"])
        self.ok("ext", "enable", "org.symphony.tool")
        self.assertTrue(self.js("ext", "info", "org.symphony.tool")["enabled"])

    def test_a_bad_manifest_names_file_line_and_field(self):
        src = self.source("org.example.bad", "0.1.0")
        with open(os.path.join(src, "extension.toml"), "a") as f:
            f.write("pids = \"many\"\n")
        err = self.fails(1, "ext", "install", src)
        self.assertIn(os.path.join(src, "extension.toml") + ":24:", err)
        self.assertIn("limits.pids", err)
        self.assertNotIn("org.example.bad", self.ok("ext", "ls").stdout.decode())
        self.assertFalse(os.path.exists(os.path.join(self.ext_dir, "org.example.bad")))

    def test_an_incompatible_symphony_range_is_refused(self):
        src = self.source("org.example.future", "0.1.0", symphony=">=99")
        err = self.fails(1, "ext", "install", src)
        self.assertIn(os.path.join(src, "extension.toml") + ":5: symphony: org.example.future 0.1.0 works with "
                      "Symphony >=99", err)

    def test_a_symlink_out_of_the_extension_is_refused(self):
        src = self.source("org.example.sneaky", "0.1.0")
        os.symlink("/etc/passwd", os.path.join(src, "bin", "passwd"))
        err = self.fails(1, "ext", "install", src)
        self.assertIn(os.path.join(src, "bin", "passwd") + ": symlink to '/etc/passwd' is absolute", err)

    def test_a_missing_directory_and_an_unknown_id(self):
        err = self.fails(1, "ext", "install", os.path.join(self.dir, "nowhere"))
        self.assertIn(os.path.join(self.dir, "nowhere", "extension.toml"), err)
        self.ok("ext", "install", self.source("org.example.spelling", "0.1.0"))
        err = self.fails(4, "ext", "info", "org.example.speling")
        self.assertIn("no extension 'org.example.speling' is installed; similar: org.example.spelling", err)
        err = self.fails(4, "ext", "info", "net.nothing.alike")
        self.assertIn("symphonyctl ext ls", err)
        self.assertEqual(self.ctl("ext", "info").returncode, 2)


if __name__ == "__main__":
    unittest.main()
