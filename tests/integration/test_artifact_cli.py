#!/usr/bin/python3
"""symphonyctl artifact … and pit stats against the real symphonyd: every
command with and without --json, streaming in and out (a file larger than
one chunk, and stdin/stdout), lineage, pins, gc, and the errors a user sees
for bad input (unknown artifact, bad name, bad version)."""
import hashlib
import os
import unittest

# symphony_daemon.py sits next to this script, which Python puts on sys.path.
from symphony_daemon import CtlAssertions, SymphonyDaemon


class ArtifactCli(CtlAssertions, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = SymphonyDaemon("symphony-cli-")
        cls.dir = cls.daemon.dir
        try:
            cls.daemon.start()
        except RuntimeError:
            cls.daemon.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.daemon.close()

    @classmethod
    def ctl(cls, *args, stdin=None):
        return cls.daemon.ctl(*args, stdin=stdin)

    def file(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_put_get_round_trip_of_a_multi_chunk_file(self):
        data = os.urandom(3 * 1024 * 1024 + 12345)
        path = self.file("big.bin", data)
        put = self.js("artifact", "put", path, "--name", "cli/big", "--media-type", "application/x-test")
        self.assertEqual(put["name"], "cli/big")
        self.assertEqual(put["version"], 1)
        self.assertEqual(put["digest"], "sha256:" + hashlib.sha256(data).hexdigest())
        self.assertEqual(put["size"], len(data))
        out = os.path.join(self.dir, "big.out")
        self.ok("artifact", "get", "cli/big", "-o", out)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.ok("artifact", "get", "cli/big@1").stdout, data)

    def test_stdin_put_versions_and_text_output(self):
        r = self.ok("artifact", "put", "-", "--name", "cli/notes", stdin=b"first")
        self.assertIn("stored cli/notes@1 sha256:", r.stdout.decode())
        self.ok("artifact", "put", "-", "--name", "cli/notes", stdin=b"second")
        versions = self.js("artifact", "versions", "cli/notes")
        self.assertEqual([v["version"] for v in versions], [1, 2])
        self.assertEqual(self.ok("artifact", "get", "cli/notes").stdout, b"second")
        self.assertEqual(self.ok("artifact", "get", "cli/notes@1").stdout, b"first")
        text = self.ok("artifact", "versions", "cli/notes").stdout.decode()
        self.assertIn("cli/notes@1", text)
        self.assertIn("cli/notes@2", text)

    def test_same_bytes_under_two_names_share_a_blob(self):
        a = self.js("artifact", "put", "-", "--name", "cli/dup-a", stdin=b"same bytes")
        b = self.js("artifact", "put", "-", "--name", "cli/dup-b", stdin=b"same bytes")
        self.assertEqual(a["digest"], b["digest"])
        stats = self.js("pit", "stats")
        self.assertGreaterEqual(stats["artifacts"]["dedup_hits"], 1)

    def test_lineage_quality_and_best(self):
        self.ok("artifact", "put", "-", "--name", "cli/src", stdin=b"source")
        self.ok("artifact", "put", "-", "--name", "cli/report", "--input", "cli/src@1",
                "--quality", "0.4", "--scorer", "test", stdin=b"report v1")
        self.ok("artifact", "put", "-", "--name", "cli/report", "--input", "cli/src@1",
                "--quality", "0.9", "--scorer", "test", stdin=b"report v2")
        self.ok("artifact", "put", "-", "--name", "cli/report", "--quality", "0.2",
                "--scorer", "test", stdin=b"report v3")
        best = self.js("artifact", "best", "cli/report")
        self.assertEqual(best["version"], 2)
        self.assertAlmostEqual(best["quality"], 0.9)
        lineage = self.js("artifact", "lineage", "cli/report@2")
        self.assertEqual([v["ref"] for v in lineage], ["cli/src@1"])
        info = self.ok("artifact", "info", "cli/report@2").stdout.decode()
        self.assertIn("input:      cli/src@1", info)

    def test_pin_unpin_ls_and_gc_dry_run(self):
        self.ok("artifact", "put", "-", "--name", "cli/pinme", stdin=b"keep me")
        self.assertTrue(self.js("artifact", "pin", "cli/pinme")["pinned"])
        names = [v["name"] for v in self.js("artifact", "ls", "cli/")]
        self.assertIn("cli/pinme", names)
        self.assertEqual(names, sorted(names))
        self.assertFalse(self.js("artifact", "unpin", "cli/pinme@1")["pinned"])
        gc = self.js("artifact", "gc", "--dry-run")
        self.assertTrue(gc["dry_run"])
        self.assertIn("blobs_removed", gc)
        self.ok("artifact", "gc")

    def test_pit_stats_has_every_component(self):
        stats = self.js("pit", "stats")
        self.assertIn("artifacts", stats)
        self.assertIn("versions", stats["artifacts"])
        self.ok("pit", "stats")

    def test_unknown_artifact_exits_4_with_the_name(self):
        r = self.ctl("artifact", "get", "cli/nothing-here")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("cli/nothing-here", r.stderr.decode())
        r = self.ctl("artifact", "versions", "cli/nothing-here")
        self.assertEqual(r.returncode, 4, r.stderr)

    def test_unknown_version_and_bad_names_are_clear_errors(self):
        self.ok("artifact", "put", "-", "--name", "cli/one", stdin=b"x")
        r = self.ctl("artifact", "get", "cli/one@7")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("7", r.stderr.decode())
        r = self.ctl("artifact", "put", "-", "--name", "bad name!", stdin=b"x")
        self.assertEqual(r.returncode, 1)
        self.assertIn("name", r.stderr.decode())
        r = self.ctl("artifact", "get", "cli/one@notanumber")
        self.assertEqual(r.returncode, 1)
        r = self.ctl("artifact", "put", "-", "--name", "cli/x", "--input", "cli/missing@1", stdin=b"x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cli/missing", r.stderr.decode())
        # Nothing of the failed puts is visible.
        self.assertEqual(self.ctl("artifact", "versions", "cli/x").returncode, 4)

    def test_missing_file_is_reported_before_contacting_the_daemon(self):
        r = self.ctl("artifact", "put", os.path.join(self.dir, "no-such-file"), "--name", "cli/nf")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no-such-file", r.stderr.decode())


if __name__ == "__main__":
    unittest.main()
