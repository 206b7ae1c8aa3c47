#!/usr/bin/python3
"""The Pit's RPC surface against the real symphonyd, spoken in msgpack-rpc
directly (python3-msgpack) where symphonyctl has no command: write conflicts
(artifact.put with a base version) under each conflict policy and the
decision log, claims (pit.claim / pit.release) across connections, the stale
manager's tier moves and restores, crash leftovers swept at start, and the
sections of pit.stats. Each test class runs its own daemon in a temporary
directory (XDG_* variables), some with a config file."""
import json
import os
import socket
import time
import unittest

import msgpack

# symphony_daemon.py sits next to this script, which Python puts on sys.path.
from symphony_daemon import CtlAssertions, SymphonyDaemon


class RpcError(Exception):
    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Client:
    """One msgpack-rpc connection to symphonyd (docs/protocol.md)."""

    def __init__(self, path, name="test_pit_rpc.py"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False)
        self.next_id = 0
        self.waiting = {}  # answers that arrived for other msgids
        hello = self.call("symphony.hello", 1, name)
        assert hello["server"] == "symphonyd", hello

    def close(self):
        self.sock.close()

    def send(self, method, *params):
        self.next_id += 1
        self.sock.sendall(msgpack.packb([0, self.next_id, method, list(params)], use_bin_type=True))
        return self.next_id

    def _receive(self, timeout):
        """The next message, or None when none arrives within `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.unpacker:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            finally:
                self.sock.settimeout(None)
            if not data:
                raise ConnectionError("symphonyd closed the connection")
            self.unpacker.feed(data)

    def poll(self, msgid, timeout):
        """(error, result) of request `msgid`, or None if it is not answered
        within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while msgid not in self.waiting:
            message = self._receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            if message[0] == 2 and message[1] == "symphony.error":
                raise RuntimeError(f"symphony.error notification: {message[2]}")
            if message[0] == 1:
                self.waiting[message[1]] = (message[2], message[3])
        return self.waiting.pop(msgid)

    def wait(self, msgid, timeout=10):
        answer = self.poll(msgid, timeout)
        if answer is None:
            raise TimeoutError(f"no answer to request {msgid} within {timeout} s")
        error, result = answer
        if error is not None:
            raise RpcError(error["code"], error["message"])
        return result

    def call(self, method, *params, timeout=10):
        return self.wait(self.send(method, *params), timeout)


class DaemonCase(CtlAssertions, unittest.TestCase):
    """Starts one symphonyd --user per test class. Subclasses set CONFIG (the
    text of symphonyd.toml) and may override prepare() to set things up in
    the directories before the daemon starts."""

    CONFIG = None

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def setUpClass(cls):
        cls.daemon = SymphonyDaemon("symphony-pit-rpc-")
        cls.dir = cls.daemon.dir
        cls.runtime = cls.daemon.runtime
        os.makedirs(cls.runtime, mode=0o700)
        cls.state = cls.daemon.state
        cls.socket = cls.daemon.socket
        if cls.CONFIG is not None:
            cls.write_config(cls.CONFIG)
        cls.clients = []
        cls.prepare()
        cls.start_daemon()

    @classmethod
    def write_config(cls, text):
        cls.daemon.write_config(text)

    @classmethod
    def start_daemon(cls):
        try:
            cls.daemon.start()
        except RuntimeError:
            cls.tearDownClass()
            raise

    @classmethod
    def stop_daemon(cls):
        for c in cls.clients:
            c.close()
        cls.clients = []
        cls.daemon.stop()

    @classmethod
    def tearDownClass(cls):
        cls.stop_daemon()
        cls.daemon.close()

    @classmethod
    def ctl(cls, *args, stdin=None):
        return cls.daemon.ctl(*args, stdin=stdin)

    def connect(self):
        c = Client(self.socket)
        self.clients.append(c)
        return c

    def rpc(self, method, *params):
        c = self.connect()
        try:
            return c.call(method, *params)
        finally:
            c.close()
            self.clients.remove(c)

    def stats(self):
        return self.js("pit", "stats")

    def until(self, predicate, what, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.02)

    def assertRpcError(self, code, fn, *args, contains=None, **kwargs):
        with self.assertRaises(RpcError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code, code, cm.exception.message)
        if contains is not None:
            self.assertIn(contains, cm.exception.message)
        return cm.exception

    def decisions(self):
        path = os.path.join(self.state, "symphony", "pit", "decisions.log")
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def put(self, client, data, name, base=None, media_type="text/plain", quality=None):
        options = {"name": name, "media_type": media_type}
        if base is not None:
            options["base"] = base
        if quality is not None:
            options["quality"] = quality
        return client.call("artifact.put", data, options)

    def read(self, client, ref):
        info = client.call("artifact.get", ref)
        return client.call("artifact.read", info["ref"], 0, info["size"] + 1)["data"]


TEXT_BASE = b"one\ntwo\nthree\nfour\nfive\nsix\nseven\n"


# ---------------------------------------------------------------- conflicts

class WriteConflictsKeepBoth(DaemonCase):
    """The default policy, keep_both."""

    def test_base_equal_to_latest_stores_without_conflict(self):
        c = self.connect()
        first = self.put(c, b"v1", "kb/plain", base=0)
        self.assertTrue(first["stored"])
        self.assertIsNone(first["conflict"])
        self.assertEqual(first["version"]["version"], 1)
        second = self.put(c, b"v2", "kb/plain", base=1)
        self.assertTrue(second["stored"])
        self.assertIsNone(second["conflict"])
        self.assertEqual(second["version"]["version"], 2)
        self.assertEqual(second["version"]["ref"], "kb/plain@2")

    def test_stale_base_keeps_both_versions_and_logs_the_decision(self):
        c = self.connect()
        self.put(c, b"base", "kb/stale", base=0)
        self.put(c, b"writer a", "kb/stale", base=1, quality=0.4)
        late = self.put(c, b"writer b", "kb/stale", base=1, quality=0.8)
        self.assertTrue(late["stored"])
        self.assertEqual(late["version"]["version"], 3)
        conflict = late["conflict"]
        self.assertEqual(conflict["outcome"], "keep_both")
        self.assertEqual(conflict["policy"], "keep_both")
        self.assertEqual(conflict["applied"], "keep_both")
        self.assertEqual(conflict["other"], "kb/stale@2")
        self.assertFalse(conflict["fell_back"])
        self.assertEqual(conflict["winner"], "kb/stale@new")  # the higher quality is primary
        self.assertEqual(conflict["alternative"], "kb/stale@2")
        self.assertTrue(conflict["reason"])
        # Both versions are stored and readable.
        self.assertEqual(self.read(c, "kb/stale@2"), b"writer a")
        self.assertEqual(self.read(c, "kb/stale@3"), b"writer b")
        mine = [d for d in self.decisions() if d["artifact"] == "kb/stale"]
        self.assertEqual(len(mine), 1, mine)
        self.assertEqual(mine[0]["outcome"], "keep_both")
        self.assertEqual(mine[0]["base"], "kb/stale@1")
        self.assertEqual(mine[0]["a"]["ref"], "kb/stale@2")

    def test_base_newer_than_latest_is_invalid_params(self):
        c = self.connect()
        self.put(c, b"only", "kb/newer", base=0)
        self.assertRpcError("invalid_params", self.put, c, b"x", "kb/newer", 5, contains="newer")
        self.assertEqual(len(c.call("artifact.versions", "kb/newer")), 1)

    def test_nonzero_base_on_a_new_name_is_not_found(self):
        c = self.connect()
        self.assertRpcError("not_found", self.put, c, b"x", "kb/brand-new", 3, contains="kb/brand-new")
        self.assertRpcError("not_found", c.call, "artifact.versions", "kb/brand-new")

    def test_every_conflict_decision_is_one_json_line(self):
        c = self.connect()
        before = len(self.decisions())
        self.put(c, b"0", "kb/lines", base=0)
        for i in range(3):
            self.put(c, f"w{i}".encode(), "kb/lines", base=1)  # 2 is fine, 3 and 4 conflict
        path = os.path.join(self.state, "symphony", "pit", "decisions.log")
        with open(path) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), before + 2)
        for line in lines:
            record = json.loads(line)  # each line parses on its own
            self.assertIn("seq", record)
        stats = self.stats()
        self.assertEqual(stats["dir"], os.path.join(self.state, "symphony", "pit"))
        self.assertGreaterEqual(stats["conflicts"]["resolved_by_keep_both"], 2)
        self.assertEqual(stats["conflicts"]["policy"], "keep_both")

    def test_cli_put_with_stale_base_prints_the_conflict(self):
        self.ok("artifact", "put", "-", "--name", "kb/cli", "--base", "0", stdin=b"first")
        self.ok("artifact", "put", "-", "--name", "kb/cli", "--base", "1", stdin=b"second")
        r = self.ok("artifact", "put", "-", "--name", "kb/cli", "--base", "1", stdin=b"third")
        out = r.stdout.decode()
        self.assertIn("write conflict with kb/cli@2: keep_both (", out)
        self.assertIn("stored kb/cli@3 sha256:", out)
        j = self.js("artifact", "put", "-", "--name", "kb/cli", "--base", "2", stdin=b"fourth")
        self.assertTrue(j["stored"])
        self.assertEqual(j["conflict"]["outcome"], "keep_both")
        self.assertEqual(j["version"]["ref"], "kb/cli@4")
        r = self.ctl("artifact", "put", "-", "--name", "kb/cli", "--base", "9", stdin=b"x")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("newer", r.stderr.decode())


class WriteConflictsMerge3(DaemonCase):
    CONFIG = '[pit]\nconflict_policy = "merge3"\n'

    def test_edits_of_different_lines_merge_cleanly(self):
        c = self.connect()
        self.put(c, TEXT_BASE, "m3/doc", base=0)
        a = TEXT_BASE.replace(b"two\n", b"TWO (a)\n")
        b = TEXT_BASE.replace(b"six\n", b"SIX (b)\n")
        self.assertIsNone(self.put(c, a, "m3/doc", base=1)["conflict"])
        merged = self.put(c, b, "m3/doc", base=1)
        self.assertTrue(merged["stored"])
        conflict = merged["conflict"]
        self.assertEqual(conflict["outcome"], "merged", conflict)
        self.assertEqual(conflict["policy"], "merge3")
        self.assertFalse(conflict["fell_back"])
        self.assertEqual(conflict["other"], "m3/doc@2")
        v = merged["version"]
        self.assertEqual(v["version"], 3)
        self.assertIn("m3/doc@2", v["inputs"])
        self.assertIn("m3/doc@1", v["inputs"])
        text = self.read(c, "m3/doc@3")
        self.assertEqual(text, TEXT_BASE.replace(b"two\n", b"TWO (a)\n").replace(b"six\n", b"SIX (b)\n"))
        record = [d for d in self.decisions() if d["artifact"] == "m3/doc"][-1]
        self.assertEqual(record["outcome"], "merged")
        self.assertEqual(record["merged_size"], len(text))
        self.assertEqual(record["merged_digest"], v["digest"])
        self.assertGreaterEqual(self.stats()["conflicts"]["resolved_by_merge3"], 1)

    def test_overlapping_edits_fall_back_to_keep_both(self):
        c = self.connect()
        self.put(c, TEXT_BASE, "m3/clash", base=0)
        self.put(c, TEXT_BASE.replace(b"four\n", b"FOUR (a)\n"), "m3/clash", base=1)
        late = self.put(c, TEXT_BASE.replace(b"four\n", b"four (b)\n"), "m3/clash", base=1)
        self.assertTrue(late["stored"])
        conflict = late["conflict"]
        self.assertTrue(conflict["fell_back"])
        self.assertEqual(conflict["policy"], "merge3")
        self.assertEqual(conflict["applied"], "keep_both")
        self.assertEqual(conflict["outcome"], "keep_both")
        self.assertIn("merge3 not possible", conflict["reason"])
        self.assertEqual(self.read(c, "m3/clash@3"), TEXT_BASE.replace(b"four\n", b"four (b)\n"))
        self.assertGreaterEqual(self.stats()["conflicts"]["merge_fallbacks"], 1)

    def test_binary_data_falls_back(self):
        c = self.connect()
        self.put(c, b"\x00\x01", "m3/bin", base=0, media_type="application/octet-stream")
        self.put(c, b"\x00\x02", "m3/bin", base=1, media_type="application/octet-stream")
        late = self.put(c, b"\x00\x03", "m3/bin", base=1, media_type="application/octet-stream")
        self.assertTrue(late["conflict"]["fell_back"])
        self.assertEqual(late["conflict"]["outcome"], "keep_both")


class WriteConflictsHighestQuality(DaemonCase):
    CONFIG = '[pit]\nconflict_policy = "highest_quality"\n'

    def test_lower_quality_late_writer_is_not_stored(self):
        c = self.connect()
        self.put(c, b"base", "hq/r", base=0, quality=0.5)
        self.put(c, b"good", "hq/r", base=1, quality=0.9)
        late = self.put(c, b"worse", "hq/r", base=1, quality=0.3)
        self.assertFalse(late["stored"])
        self.assertIsNone(late["version"])
        self.assertEqual(late["conflict"]["outcome"], "take_a")
        self.assertEqual(late["conflict"]["winner"], "hq/r@2")
        self.assertEqual([v["version"] for v in c.call("artifact.versions", "hq/r")], [1, 2])
        r = self.ctl("artifact", "put", "-", "--name", "hq/r", "--base", "1", "--quality", "0.1",
                     "--scorer", "t", stdin=b"cli worse")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("not stored: hq/r@2 stays the latest version", r.stdout.decode())

    def test_higher_quality_late_writer_wins(self):
        c = self.connect()
        self.put(c, b"base", "hq/w", base=0)
        self.put(c, b"meh", "hq/w", base=1, quality=0.2)
        late = self.put(c, b"great", "hq/w", base=1, quality=0.95)
        self.assertTrue(late["stored"])
        self.assertEqual(late["conflict"]["outcome"], "take_b")
        self.assertEqual(late["version"]["version"], 3)
        records = [d for d in self.decisions() if d["artifact"] == "hq/w"]
        self.assertEqual([d["outcome"] for d in records], ["take_b"])
        self.assertGreaterEqual(self.stats()["conflicts"]["resolved_by_highest_quality"], 1)


class ConflictPolicyAcrossRestart(DaemonCase):
    """The same Pit under keep_both, then restarted with merge3: the versions
    and the decision log carry over, the new policy applies."""

    def test_restart_with_merge3_keeps_the_log_and_merges(self):
        c = self.connect()
        self.put(c, TEXT_BASE, "rs/doc", base=0)
        self.put(c, TEXT_BASE.replace(b"one\n", b"ONE\n"), "rs/doc", base=1)
        kept = self.put(c, TEXT_BASE.replace(b"seven\n", b"SEVEN\n"), "rs/doc", base=1)
        self.assertEqual(kept["conflict"]["outcome"], "keep_both")  # the default policy
        self.assertEqual(len(self.decisions()), 1)

        self.stop_daemon()
        self.write_config('[pit]\nconflict_policy = "merge3"\n')
        self.start_daemon()

        c = self.connect()
        self.assertEqual(self.stats()["conflicts"]["policy"], "merge3")
        self.assertEqual([v["version"] for v in c.call("artifact.versions", "rs/doc")], [1, 2, 3])
        # Edits of different lines, both from version 3.
        v3 = self.read(c, "rs/doc@3")
        self.put(c, v3.replace(b"two\n", b"TWO\n"), "rs/doc", base=3)
        merged = self.put(c, v3.replace(b"five\n", b"FIVE\n"), "rs/doc", base=3)
        self.assertEqual(merged["conflict"]["outcome"], "merged", merged["conflict"])
        self.assertEqual(sorted(merged["version"]["inputs"]), ["rs/doc@3", "rs/doc@4"])
        text = self.read(c, merged["version"]["ref"])
        self.assertIn(b"TWO\n", text)
        self.assertIn(b"FIVE\n", text)
        self.assertIn(b"SEVEN\n", text)
        records = self.decisions()
        self.assertEqual([r["outcome"] for r in records], ["keep_both", "merged"])
        self.assertEqual([r["policy"] for r in records], ["keep_both", "merge3"])
        # A streamed put (symphonyctl) has no bytes at hand to merge: merge3
        # falls back even for text.
        r = self.js("artifact", "put", "-", "--name", "rs/doc", "--media-type", "text/plain",
                    "--base", "3", stdin=v3.replace(b"six\n", b"SIX\n"))
        self.assertTrue(r["conflict"]["fell_back"])
        self.assertEqual(r["conflict"]["outcome"], "keep_both")


# ------------------------------------------------------------------- claims

class Claims(DaemonCase):

    def claim(self, client, resources, **options):
        return client.call("pit.claim", resources, options)

    def test_exclusive_claim_is_granted_at_once(self):
        a = self.connect()
        grant = self.claim(a, ["lock:solo"])
        self.assertIsInstance(grant["claim"], int)
        self.assertEqual(grant["preempted"], 0)
        self.assertFalse(grant["waited"])
        self.assertIsNone(a.call("pit.release", grant["claim"]))

    def test_second_claim_waits_until_the_first_is_released(self):
        a, b = self.connect(), self.connect()
        held = self.claim(a, ["lock:x"])
        msgid = b.send("pit.claim", ["lock:x"], {"wait_ms": 10000})
        self.assertIsNone(b.poll(msgid, 0.2), "the claim on a held lock was answered at once")
        self.assertIsNone(a.call("pit.release", held["claim"]))
        grant = b.wait(msgid, 5)
        self.assertTrue(grant["waited"])
        self.assertNotEqual(grant["claim"], held["claim"])
        b.call("pit.release", grant["claim"])

    def test_wait_ms_zero_on_a_held_resource_fails_at_once(self):
        a, b = self.connect(), self.connect()
        held = self.claim(a, ["lock:busy"])
        e = self.assertRpcError("failed", self.claim, b, ["lock:busy"], wait_ms=0)
        self.assertIn("lock:busy", e.message)
        a.call("pit.release", held["claim"])
        b.call("pit.release", self.claim(b, ["lock:busy"], wait_ms=0)["claim"])

    def test_queued_claim_times_out(self):
        a, b = self.connect(), self.connect()
        held = self.claim(a, ["lock:slow"])
        before = self.stats()["arbiter"]["timeouts"]
        started = time.monotonic()
        self.assertRpcError("failed", self.claim, b, ["lock:slow"], wait_ms=300)
        self.assertGreaterEqual(time.monotonic() - started, 0.25)
        self.assertEqual(self.stats()["arbiter"]["timeouts"], before + 1)
        a.call("pit.release", held["claim"])

    def test_closing_a_connection_releases_its_claims(self):
        a, b = self.connect(), self.connect()
        self.claim(a, ["lock:y", "gpu:3"])
        msgid = b.send("pit.claim", ["lock:y"], {"wait_ms": 10000})
        self.assertIsNone(b.poll(msgid, 0.2))
        a.close()
        self.clients.remove(a)
        grant = b.wait(msgid, 5)
        self.assertTrue(grant["waited"])
        c = self.connect()
        c.call("pit.release", self.claim(c, ["gpu:3"], wait_ms=0)["claim"])
        b.call("pit.release", grant["claim"])

    def test_path_claims_conflict_by_prefix_only(self):
        a, b = self.connect(), self.connect()
        held = self.claim(a, ["path:/w/a"])
        self.assertRpcError("failed", self.claim, b, ["path:/w/a/b"], wait_ms=0)
        self.assertRpcError("failed", self.claim, b, ["path:/w"], wait_ms=0)
        self.assertRpcError("failed", self.claim, b, ["path:/w/a/"], wait_ms=0)  # the same path
        sibling = self.claim(b, ["path:/w/ab"], wait_ms=0)
        self.assertFalse(sibling["waited"])
        b.call("pit.release", sibling["claim"])
        a.call("pit.release", held["claim"])
        inner = self.claim(b, ["path:/w/a/b"], wait_ms=0)
        self.assertRpcError("failed", self.claim, a, ["path:/w/a"], wait_ms=0)
        b.call("pit.release", inner["claim"])

    def test_one_claim_may_not_name_overlapping_resources(self):
        a = self.connect()
        self.assertRpcError("invalid_params", self.claim, a, ["path:/o", "path:/o/p"])

    def test_shared_claims_coexist_and_block_an_exclusive_one(self):
        a, b, c = self.connect(), self.connect(), self.connect()
        sa = self.claim(a, [{"resource": "lock:s", "mode": "shared"}], wait_ms=0)
        sb = self.claim(b, [{"resource": "lock:s", "mode": "shared"}], wait_ms=0)
        self.assertFalse(sb["waited"])
        self.assertRpcError("failed", self.claim, c, ["lock:s"], wait_ms=0)
        msgid = c.send("pit.claim", [{"resource": "lock:s", "mode": "exclusive"}], {"wait_ms": 10000})
        a.call("pit.release", sa["claim"])
        self.assertIsNone(c.poll(msgid, 0.2), "exclusive granted while a shared claim is held")
        b.call("pit.release", sb["claim"])
        grant = c.wait(msgid, 5)
        self.assertTrue(grant["waited"])
        c.call("pit.release", grant["claim"])

    def test_bad_requests_are_invalid_params(self):
        a = self.connect()
        for resources in (["bogus"], ["lock:"], ["path:relative"], ["path:/a/../b"], ["gpu:01"],
                          ["lock:has space"], ["disk:/x"], []):
            with self.subTest(resources=resources):
                self.assertRpcError("invalid_params", a.call, "pit.claim", resources, {})
        self.assertRpcError("invalid_params", a.call, "pit.claim", [{"resource": "lock:m", "mode": "odd"}], {})
        self.assertRpcError("invalid_params", a.call, "pit.claim", ["lock:o"], {"wait_ms": -1})
        self.assertRpcError("invalid_params", a.call, "pit.claim", ["lock:o"], {"colour": "red"})
        self.assertRpcError("invalid_params", a.call, "pit.release", "one")

    def test_releasing_another_connections_claim_is_not_found(self):
        a, b = self.connect(), self.connect()
        held = self.claim(a, ["lock:mine"])
        self.assertRpcError("not_found", b.call, "pit.release", held["claim"])
        self.assertIsNone(a.call("pit.release", held["claim"]))
        self.assertRpcError("not_found", a.call, "pit.release", held["claim"])  # twice
        self.assertRpcError("not_found", a.call, "pit.release", 987654321)

    def test_stats_count_held_queued_and_granted_claims(self):
        a, b = self.connect(), self.connect()
        before = self.stats()["arbiter"]
        held = self.claim(a, ["lock:st", "path:/st", "gpu:7"])
        msgid = b.send("pit.claim", ["lock:st"], {"wait_ms": 10000})
        self.assertIsNone(b.poll(msgid, 0.1))
        now = self.stats()["arbiter"]
        self.assertEqual(now["claims_held"], before["claims_held"] + 1)
        self.assertEqual(now["requests_queued"], before["requests_queued"] + 1)
        self.assertEqual(now["held_lock"], before["held_lock"] + 1)
        self.assertEqual(now["held_path"], before["held_path"] + 1)
        self.assertEqual(now["held_gpu"], before["held_gpu"] + 1)
        self.assertEqual(now["queued_lock"], before["queued_lock"] + 1)
        self.assertEqual(now["granted_immediately"], before["granted_immediately"] + 1)
        a.call("pit.release", held["claim"])
        b.call("pit.release", b.wait(msgid)["claim"])
        after = self.stats()["arbiter"]
        self.assertEqual(after["granted_after_wait"], before["granted_after_wait"] + 1)
        self.assertEqual(after["claims_held"], before["claims_held"])
        self.assertEqual(after["requests_queued"], before["requests_queued"])
        text = self.ok("pit", "stats").stdout.decode()
        self.assertIn("arbiter:", text)
        self.assertIn("granted_after_wait:", text)


# -------------------------------------------------------------------- stale

class StaleManager(DaemonCase):
    # active_days = 0: a version is due for the archive as soon as it exists;
    # interval 0: the stale manager only runs when asked (symphonyctl pit stale).
    CONFIG = ("[pit]\ngc_grace_s = 0\ngc_interval_s = 0\n\n"
              "[pit.stale]\ninterval_s = 0\n\n"
              "[pit.retention.default]\nactive_days = 0\narchive_days = 30\n")

    def tier(self, ref):
        return self.js("artifact", "info", ref)["tier"]

    def test_archive_then_restore_round_trip(self):
        data = b"archive me " * 1000
        self.ok("artifact", "put", "-", "--name", "st/doc", stdin=data)
        before = self.stats()["stale"]
        dry = self.js("pit", "stale", "--dry-run")
        self.assertTrue(dry["dry_run"])
        moves = [m for m in dry["moves"] if m["ref"] == "st/doc@1"]
        self.assertEqual(len(moves), 1, dry)
        self.assertEqual((moves[0]["from"], moves[0]["to"]), ("active", "archived"))
        self.assertEqual(moves[0]["bytes"], len(data))
        self.assertEqual(self.tier("st/doc@1"), "active")  # a dry run changes nothing
        text = self.ok("pit", "stale", "--dry-run").stdout.decode()
        self.assertIn("would move", text)
        self.assertIn("st/doc@1", text)

        moved = self.js("pit", "stale")
        self.assertFalse(moved["dry_run"])
        self.assertIn("st/doc@1", [m["ref"] for m in moved["moves"]])
        self.assertEqual(moved["failed"], [])
        self.assertEqual(self.tier("st/doc@1"), "archived")

        r = self.ctl("artifact", "get", "st/doc")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("restore", r.stderr.decode())
        self.assertEqual(r.stdout, b"")

        restored = self.js("artifact", "restore", "st/doc@1")
        self.assertEqual(restored["tier"], "active")
        self.assertEqual(self.ok("artifact", "get", "st/doc").stdout, data)
        after = self.stats()["stale"]
        self.assertGreaterEqual(after["archived"], before["archived"] + 1)
        self.assertEqual(after["restored"], before["restored"] + 1)
        self.assertGreaterEqual(after["slices"], before["slices"] + 1)

    def test_restore_after_gc_removed_the_blob(self):
        data = b"gone from the store " * 500
        self.ok("artifact", "put", "-", "--name", "st/gc", stdin=data)
        self.ok("pit", "stale")
        self.assertEqual(self.tier("st/gc@1"), "archived")
        self.ok("artifact", "gc")  # gc_grace_s = 0: the archived version's blob goes
        self.js("artifact", "restore", "st/gc@1")
        self.assertEqual(self.ok("artifact", "get", "st/gc@1").stdout, data)
        # The store took the bytes back through a helper version, removed
        # again: only version 1 is listed. The helper's number is used up
        # (numbers are never reused), so the next put is not necessarily 2.
        self.assertEqual([v["version"] for v in self.js("artifact", "versions", "st/gc")], [1])
        self.assertEqual(self.js("artifact", "info", "st/gc")["version"], 1)
        put = self.js("artifact", "put", "-", "--name", "st/gc", stdin=b"next")
        self.assertGreaterEqual(put["version"], 2)

    def test_pinned_version_never_moves(self):
        self.ok("artifact", "put", "-", "--name", "st/pinned", stdin=b"keep me here")
        self.js("artifact", "pin", "st/pinned@1")
        dry = self.js("pit", "stale", "--dry-run")
        self.assertNotIn("st/pinned@1", [m["ref"] for m in dry["moves"]])
        moved = self.js("pit", "stale")
        self.assertNotIn("st/pinned@1", [m["ref"] for m in moved["moves"]])
        self.assertEqual(self.tier("st/pinned@1"), "active")
        self.assertEqual(self.ok("artifact", "get", "st/pinned").stdout, b"keep me here")

    def test_restore_of_an_active_version_and_unknown_names(self):
        self.ok("artifact", "put", "-", "--name", "st/active", stdin=b"x")
        self.js("artifact", "pin", "st/active")  # so no other test's slice moves it
        self.assertEqual(self.js("artifact", "restore", "st/active")["tier"], "active")
        r = self.ctl("artifact", "restore", "st/none-such@1")
        self.assertEqual(r.returncode, 4, r.stderr)

    def test_stats_census_counts_archived_versions(self):
        self.ok("artifact", "put", "-", "--name", "st/census", stdin=b"census " * 100)
        self.ok("pit", "stale")
        stale = self.stats()["stale"]
        self.assertGreaterEqual(stale["archived_versions"], 1)
        self.assertGreater(stale["archived_bytes"], 0)
        self.assertEqual(stale["remote_tier"], "none")
        self.assertEqual(stale["remote_versions"], 0)


# ---------------------------------------------------------------- leftovers

class LeftoversAtStart(DaemonCase):

    @classmethod
    def prepare(cls):
        # A socket a crashed process left: bound, then closed, never unlinked.
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        dead.bind(os.path.join(cls.runtime, "old.sock"))
        dead.close()
        # A live one: somebody still listens on it.
        cls.live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cls.live.bind(os.path.join(cls.runtime, "live.sock"))
        cls.live.listen(8)
        # Not a socket, only named like one.
        with open(os.path.join(cls.runtime, "plain.sock"), "w") as f:
            f.write("not a socket")

    @classmethod
    def tearDownClass(cls):
        cls.live.close()
        super().tearDownClass()

    def test_stale_socket_is_removed_and_live_one_stays(self):
        self.assertFalse(os.path.exists(os.path.join(self.runtime, "old.sock")))
        self.assertTrue(os.path.exists(os.path.join(self.runtime, "live.sock")))
        self.assertTrue(os.path.exists(os.path.join(self.runtime, "plain.sock")))
        self.assertTrue(os.path.exists(self.socket))
        stale = self.stats()["stale"]
        self.assertGreaterEqual(stale["leftovers_removed_at_start"], 1)
        self.assertGreaterEqual(stale["leftovers_removed"], stale["leftovers_removed_at_start"])
        # The live socket still works.
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(os.path.join(self.runtime, "live.sock"))
        probe.close()


# -------------------------------------------------------------------- stats

class PitStats(DaemonCase):

    def test_stats_have_every_section(self):
        stats = self.stats()
        for section in ("artifacts", "stale", "conflicts", "dag", "arbiter", "pool"):
            with self.subTest(section=section):
                self.assertIsInstance(stats[section], dict)
        self.assertEqual(stats["dir"], os.path.join(self.state, "symphony", "pit"))
        self.assertEqual(stats["conflicts"]["policy"], "keep_both")
        self.assertEqual(stats["stale"]["leftovers_removed_at_start"], 0)
        self.assertIn("steps_running", stats["dag"])
        self.assertEqual(stats["arbiter"]["claims_held"], 0)

    def test_bad_digests_and_refs_are_invalid_params_saying_what(self):
        self.assertRpcError("invalid_params", self.rpc, "artifact.by_digest", "sha256:1234",
                            contains="expected 64 hex digits")
        self.assertRpcError("invalid_params", self.rpc, "artifact.by_digest", "md5:" + "a" * 32,
                            contains="unsupported algorithm")
        self.assertRpcError("invalid_params", self.rpc, "artifact.get", "bad name!", contains="name")
        self.assertEqual(self.rpc("artifact.by_digest", "sha256:" + "0" * 64), [])

    def test_rpc_and_cli_stats_agree(self):
        rpc = self.rpc("pit.stats")
        cli = self.stats()
        self.assertEqual(set(rpc), set(cli))
        for section in ("artifacts", "stale", "conflicts", "dag", "arbiter"):
            self.assertEqual(set(rpc[section]), set(cli[section]), section)



class ModelPool(DaemonCase):
    """Models declared in the config, pooled as sandboxed processes and
    leased over the socket."""

    CONFIG = """
[pit.pool]
health_interval_s = 1

[pit.models.sleeper]
command = ["/bin/sleep", "3600"]
memory_mb = 64
max_instances = 2

[pit.models.shortlived]
command = ["/bin/sleep", "0.3"]
memory_mb = 64

[pit.models.missing]
command = ["/nonexistent/model-server"]
memory_mb = 64
"""

    def pool_stats(self):
        return self.rpc("pit.stats")["pool"]

    def test_a_miss_loads_a_sandboxed_instance_and_a_release_makes_the_next_acquire_a_hit(self):
        c = self.connect()
        first = c.call("pool.acquire", "sleeper")
        self.assertEqual(first["model"], "sleeper")
        before = self.pool_stats()
        c.call("pool.release", first["lease"])
        again = c.call("pool.acquire", "sleeper")
        self.assertEqual(again["instance"], first["instance"])  # the same warm instance
        after = self.pool_stats()
        self.assertEqual(after["hits"], before["hits"] + 1)
        self.assertGreater(after["host_held_bytes"], 0)  # measured, not assumed
        c.call("pool.release", again["lease"])

    def test_a_busy_model_loads_up_to_max_instances_then_makes_callers_wait(self):
        a, b = self.connect(), self.connect()
        l1 = a.call("pool.acquire", "sleeper")
        l2 = a.call("pool.acquire", "sleeper")
        self.assertNotEqual(l1["instance"], l2["instance"])
        self.assertRpcError("failed", b.call, "pool.acquire", "sleeper", {"wait_ms": 0})
        pending = b.send("pool.acquire", "sleeper", {"wait_ms": 5000})
        self.assertIsNone(b.poll(pending, 0.2))
        a.call("pool.release", l1["lease"])
        granted = b.wait(pending)
        self.assertEqual(granted["instance"], l1["instance"])
        b.call("pool.release", granted["lease"])
        a.call("pool.release", l2["lease"])

    def test_leases_return_to_the_pool_when_the_connection_closes(self):
        a = self.connect()
        a.call("pool.acquire", "sleeper")
        a.call("pool.acquire", "sleeper")
        self.assertEqual(self.pool_stats()["leases"], 2)
        a.close()
        self.clients.remove(a)
        self.until(lambda: self.pool_stats()["leases"] == 0, "the leases to return")
        b = self.connect()
        lease = b.call("pool.acquire", "sleeper", {"wait_ms": 0})
        b.call("pool.release", lease["lease"])

    def test_a_model_whose_process_dies_is_found_by_the_health_check(self):
        c = self.connect()
        lease = c.call("pool.acquire", "shortlived")
        c.call("pool.release", lease["lease"])
        self.until(lambda: self.pool_stats()["health_failures"] >= 1, "the health check to notice", timeout=10)
        with self.assertRaises(RpcError) as cm:
            c.call("pool.acquire", "shortlived", {"wait_ms": 0})
        self.assertIn("ended", cm.exception.message)

    def test_a_model_that_cannot_start_says_why(self):
        with self.assertRaises(RpcError) as cm:
            self.rpc("pool.acquire", "missing")
        self.assertEqual(cm.exception.code, "failed")
        self.assertIn("missing", cm.exception.message)
        self.assertIn("/nonexistent/model-server", cm.exception.message)

    def test_unknown_models_bad_options_and_foreign_leases_are_clear_errors(self):
        self.assertRpcError("not_found", self.rpc, "pool.acquire", "nope", contains="pit.models")
        self.assertRpcError("invalid_params", self.rpc, "pool.acquire", "sleeper", {"priority": "urgent"})
        a, b = self.connect(), self.connect()
        lease = a.call("pool.acquire", "sleeper")
        self.assertRpcError("not_found", b.call, "pool.release", lease["lease"])
        a.call("pool.release", lease["lease"])
        self.assertRpcError("not_found", self.rpc, "pool.prewarm", ["sleeper", "nope"])

    def test_prewarm_and_pin_load_ahead_of_use(self):
        self.rpc("pool.pin", "sleeper")
        stats = self.pool_stats()
        self.assertGreaterEqual(stats["instances_ready"] + stats["instances_cooling"] + stats["instances_in_use"], 1)
        self.rpc("pool.unpin", "sleeper")
        self.rpc("pool.prewarm", ["sleeper"])


class ModelConfigErrors(unittest.TestCase):
    def test_a_model_without_command_is_refused_at_start_naming_it(self):
        d = SymphonyDaemon("symphony-pit-rpc-")
        try:
            d.write_config("[pit.models.nocmd]\nmemory_mb = 64\n")
            with self.assertRaises(RuntimeError) as cm:
                d.start()
            self.assertIn("pit.models.nocmd", str(cm.exception))
            self.assertIn("command is missing", str(cm.exception))
        finally:
            d.stop()
            d.close()


if __name__ == "__main__":
    unittest.main()
