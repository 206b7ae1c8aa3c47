#!/usr/bin/python3
# Conformance of symphonyd's msgpack-rpc endpoint, checked with clients the
# Symphony team did not write: Debian's python3-msgpack speaking the raw wire
# format, and Neovim's msgpack-rpc session layer from python3-pynvim. Each
# test class starts the real daemon (SYMPHONYD, loop backend from
# SYMPHONY_LOOP_BACKEND) in user mode with private XDG directories, and stops
# it with SIGTERM, expecting exit status 0.
#
# Run with Debian's interpreter: /usr/bin/python3 test_msgpack_rpc.py -v
# Every wait is on a real event (socket readable, EOF, process exit) under a
# deadline; nothing sleeps to let the daemon "catch up". The one loop is the
# connect() poll at start-up, the only readiness signal a plain process gives.

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import msgpack

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # Runs in the child between fork and exec: if this test process dies
    # without reaching tearDownClass (killed, broken pipe), the daemon gets
    # SIGTERM instead of living on as an orphan.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


SYMPHONYD = os.environ.get("SYMPHONYD", "")
LOOP_BACKEND = os.environ.get("SYMPHONY_LOOP_BACKEND", "epoll")
PROTOCOL_VERSION = 1
SERVER_VERSION = "0.1.0"

STARTUP_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

# Set when the forced backend cannot start on this machine (see main()).
BACKEND_UNAVAILABLE = False

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
ERROR_NOTIFICATION = "symphony.error"


class DaemonProcess:
    """One symphonyd in user mode, owning its temporary XDG directories."""

    def __init__(self, extra_args=()):
        if not SYMPHONYD:
            raise RuntimeError("SYMPHONYD must name the symphonyd binary")
        self.root = tempfile.mkdtemp(prefix="symphony-conformance-")
        self.runtime_dir = os.path.join(self.root, "run")
        self.config_home = os.path.join(self.root, "config")
        self.state_home = os.path.join(self.root, "state")
        os.mkdir(self.runtime_dir, 0o700)
        # mkdir honours the umask; the daemon insists on a private runtime dir.
        os.chmod(self.runtime_dir, 0o700)
        self.socket_path = os.path.join(self.runtime_dir, "symphony", "symphonyd.sock")
        self.log_path = os.path.join(self.root, "symphonyd.log")
        env = dict(os.environ,
                   XDG_RUNTIME_DIR=self.runtime_dir,
                   XDG_CONFIG_HOME=self.config_home,
                   XDG_STATE_HOME=self.state_home)
        argv = [SYMPHONYD, "--user", "--log-target", "console",
                "--loop-backend", LOOP_BACKEND, *extra_args]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        try:
            self._wait_for_socket()
        except BaseException:
            self.kill()
            raise

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def _wait_for_socket(self):
        # Poll connect(): the listening socket accepting is the readiness
        # event; a probe that fails with ENOENT/ECONNREFUSED is retried.
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                if "io_uring backend forced but unavailable" in self.log():
                    # The kernel (or a seccomp filter) refuses io_uring: the
                    # backend cannot be tested here, which is not a failure.
                    global BACKEND_UNAVAILABLE
                    BACKEND_UNAVAILABLE = True
                    raise unittest.SkipTest("io_uring is unavailable on this machine")
                raise RuntimeError("symphonyd exited with status %d before listening:\n%s"
                                   % (self.proc.returncode, self.log()))
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket_path)
                return
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            finally:
                probe.close()
            if time.monotonic() > deadline:
                raise TimeoutError("symphonyd did not listen on %s within %.0f s:\n%s"
                                   % (self.socket_path, STARTUP_TIMEOUT_S, self.log()))
            time.sleep(0.01)

    def terminate(self):
        """SIGTERM and wait; returns the exit status and the daemon's log."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout=STOP_TIMEOUT_S)
            return status, self.log()
        except subprocess.TimeoutExpired:
            log = self.log()
            self.kill()
            raise AssertionError("symphonyd did not stop within %.0f s of SIGTERM:\n%s"
                                 % (STOP_TIMEOUT_S, log))
        finally:
            self._cleanup()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self):
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.root, ignore_errors=True)


class RawClient:
    """msgpack-rpc over a Unix socket with python3-msgpack, nothing else."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT_S)
        self.sock.connect(path)
        # strict_map_key=False: echoed maps may carry integer keys.
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        # Every byte received, so a message can be compared byte for byte.
        self.stream = bytearray()
        self.next_id = 1
        self.eof = False

    def close(self):
        self.sock.close()

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.sock.sendall(msgpack.packb(obj, use_bin_type=True))

    def request(self, method, *params):
        """Sends a request; returns its msgid."""
        msgid = self.next_id
        self.next_id += 1
        self.send([REQUEST, msgid, method, list(params)])
        return msgid

    def recv_raw(self):
        """The next message as (object, its exact bytes); None at EOF."""
        while True:
            start = self.unpacker.tell()
            try:
                obj = next(self.unpacker)
                return obj, bytes(self.stream[start:self.unpacker.tell()])
            except StopIteration:
                pass
            if self.eof:
                return None
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("no message from symphonyd within %.0f s" % IO_TIMEOUT_S)
            if not data:
                self.eof = True
                continue
            self.stream += data
            self.unpacker.feed(data)

    def recv(self):
        got = self.recv_raw()
        return None if got is None else got[0]

    def call(self, method, *params):
        """Request and wait for its response; returns [1, id, error, result]."""
        msgid = self.request(method, *params)
        response = self.recv()
        if response is None:
            raise AssertionError("EOF while waiting for the response to %s" % method)
        if response[:2] != [RESPONSE, msgid]:
            raise AssertionError("expected the response to request %d, got %r" % (msgid, response))
        return response

    def hello(self, name="python3-msgpack"):
        response = self.call("symphony.hello", PROTOCOL_VERSION, name)
        if response[2] is not None:
            raise AssertionError("symphony.hello failed: %r" % (response[2],))
        return response[3]

    def closed_by_peer(self):
        """True once the daemon has closed the connection and nothing is left.

        Linux reports ECONNRESET instead of EOF to a Unix-socket reader whose
        peer closed with bytes still unread in its receive queue; after a fatal
        stream error the daemon does not read what was left, so both mean the
        daemon closed the connection."""
        try:
            rest = self.recv()
        except ConnectionResetError:
            return True
        if rest is not None:
            raise AssertionError("expected EOF, got another message: %r" % (rest,))
        return True


class ProtocolAssertions(unittest.TestCase):
    """Assertions shared by the test classes."""

    def assertError(self, error, code):
        self.assertIsInstance(error, dict, "error object must be a map: %r" % (error,))
        self.assertEqual(set(error), {"code", "message"}, error)
        self.assertEqual(error["code"], code, error)
        self.assertIsInstance(error["message"], str)
        self.assertTrue(error["message"], "empty error message")

    def assertErrorResponse(self, response, msgid, code):
        self.assertEqual(len(response), 4, response)
        self.assertEqual(response[0], RESPONSE, response)
        self.assertEqual(response[1], msgid, response)
        self.assertError(response[2], code)
        self.assertIsNone(response[3], response)

    def assertErrorNotification(self, message, code):
        self.assertIsNotNone(message, "EOF instead of a %s notification" % ERROR_NOTIFICATION)
        self.assertEqual(len(message), 3, message)
        self.assertEqual(message[0], NOTIFICATION, message)
        self.assertEqual(message[1], ERROR_NOTIFICATION, message)
        self.assertIsInstance(message[2], list, message)
        self.assertEqual(len(message[2]), 1, message)
        self.assertError(message[2][0], code)


class DaemonTestCase(ProtocolAssertions):
    """Starts one daemon for the class; stops it with SIGTERM at the end."""

    daemon_args = ()

    @classmethod
    def setUpClass(cls):
        cls.daemon = DaemonProcess(cls.daemon_args)

    @classmethod
    def tearDownClass(cls):
        status, log = cls.daemon.terminate()
        if status != 0:
            raise AssertionError("symphonyd exited with status %d after SIGTERM (want 0):\n%s"
                                 % (status, log))

    def connect(self):
        client = RawClient(self.daemon.socket_path)
        self.addCleanup(client.close)
        return client


class RawProtocolTest(DaemonTestCase):
    """The wire protocol with default limits, through python3-msgpack."""

    def test_hello(self):
        c = self.connect()
        result = c.hello()
        self.assertIsInstance(result, dict)
        self.assertEqual(set(result), {"protocol", "server", "version", "connection"})
        self.assertEqual(result["protocol"], PROTOCOL_VERSION)
        self.assertEqual(result["server"], "symphonyd")
        self.assertEqual(result["version"], SERVER_VERSION)
        self.assertIs(type(result["connection"]), int)
        self.assertGreater(result["connection"], 0)
        # Connection ids are per connection.
        other = self.connect()
        self.assertNotEqual(other.hello()["connection"], result["connection"])

    def test_ping_without_payload_answers_pong(self):
        c = self.connect()
        c.hello()
        self.assertEqual(c.call("daemon.ping"), [RESPONSE, 2, None, "pong"])

    def test_ping_echoes_payloads_exactly(self):
        payloads = {
            "bin 64 B": bytes(range(64)),
            "empty bin": b"",
            "str": "symphony \u266b conformance",
            "empty str": "",
            "int 0": 0,
            "int -1": -1,
            "int 300": 300,
            "int uint64 max": 2**64 - 1,
            "int int64 min": -2**63,
            "float 1.5": 1.5,
            # msgpack-c's packer turns a double with an integral value into an
            # integer; an echo must still give back the float it was sent.
            "float 4.0": 4.0,
            "float -0.0": -0.0,
            "nil": None,
            "true": True,
            "false": False,
            "array": [1, "two", b"\x03", [4.5]],
            "nested map": {
                "name": "ping",
                "size": 64,
                "blob": b"\x00\xff" * 8,
                "inner": {"list": [1, {"deep": {"deeper": [None, True]}}], 7: "int key"},
                "empty": {},
            },
        }
        c = self.connect()
        c.hello()
        for label, payload in payloads.items():
            with self.subTest(payload=label):
                msgid = c.request("daemon.ping", payload)
                obj, raw = c.recv_raw()
                self.assertEqual(obj, [RESPONSE, msgid, None, payload])
                # Same value is not enough: bin must stay bin, str stay str.
                self.assertIs(type(obj[3]), type(payload))
                self.assertEqual(raw, msgpack.packb([RESPONSE, msgid, None, payload],
                                                    use_bin_type=True))

    def test_status_fields_and_types(self):
        c = self.connect()
        c.hello()
        response = c.call("daemon.status")
        self.assertIsNone(response[2])
        status = response[3]
        types = {
            "version": str, "protocol": int, "pid": int, "uptime_ms": int, "mode": str,
            "loop_backend": str, "loop_fallback_reason": str, "connections": int,
            "config_path": str, "config_files": list, "socket": str, "socket_activated": bool,
            "state_dir": str, "requests": int, "refused": int, "protocol_errors": int,
        }
        # The fields every client may rely on; newer daemons may add more.
        missing = set(types) - set(status)
        self.assertFalse(missing, "daemon.status lacks %s" % sorted(missing))
        for key, want in types.items():
            with self.subTest(field=key):
                # type() rather than isinstance(): a bool is not an int here.
                self.assertIs(type(status[key]), want, "%s = %r" % (key, status[key]))
        self.assertEqual(status["version"], SERVER_VERSION)
        self.assertEqual(status["protocol"], PROTOCOL_VERSION)
        self.assertEqual(status["pid"], self.daemon.proc.pid)
        self.assertGreaterEqual(status["uptime_ms"], 0)
        self.assertEqual(status["mode"], "user")
        self.assertEqual(status["loop_backend"], LOOP_BACKEND)
        self.assertEqual(status["loop_fallback_reason"], "")
        self.assertGreaterEqual(status["connections"], 1)
        self.assertTrue(status["config_path"].startswith(self.daemon.config_home + "/"),
                        status["config_path"])
        self.assertTrue(all(type(f) is str for f in status["config_files"]))
        self.assertEqual(status["socket"], self.daemon.socket_path)
        self.assertIs(status["socket_activated"], False)
        self.assertTrue(status["state_dir"].startswith(self.daemon.state_home + "/"),
                        status["state_dir"])
        self.assertGreaterEqual(status["requests"], 2)  # hello and this status
        self.assertGreaterEqual(status["refused"], 0)
        self.assertGreaterEqual(status["protocol_errors"], 0)

    def test_unknown_method(self):
        c = self.connect()
        c.hello()
        self.assertErrorResponse(c.call("daemon.no_such_method", 1), 2, "unknown_method")
        # The connection stays usable.
        self.assertEqual(c.call("daemon.ping", "still here")[3], "still here")

    def test_hello_with_wrong_params(self):
        bad = {
            "no params": [],
            "version only": [PROTOCOL_VERSION],
            "swapped": ["python3-msgpack", PROTOCOL_VERSION],
            "version as string": ["1", "python3-msgpack"],
            "name as bin": [PROTOCOL_VERSION, b"python3-msgpack"],
            "negative version": [-1, "python3-msgpack"],
        }
        c = self.connect()
        for label, params in bad.items():
            with self.subTest(params=label):
                self.assertErrorResponse(c.call("symphony.hello", *params), c.next_id - 1,
                                         "invalid_params")
        # None of them counted as a handshake.
        self.assertErrorResponse(c.call("daemon.ping"), c.next_id - 1, "handshake_required")

    def test_call_before_hello(self):
        c = self.connect()
        self.assertErrorResponse(c.call("daemon.ping", "x"), 1, "handshake_required")
        self.assertErrorResponse(c.call("daemon.status"), 2, "handshake_required")
        self.assertErrorResponse(c.call("daemon.no_such_method"), 3, "handshake_required")
        c.hello()
        self.assertEqual(c.call("daemon.ping", "x")[2:], [None, "x"])

    def test_protocol_mismatch(self):
        c = self.connect()
        response = c.call("symphony.hello", 2, "python3-msgpack")
        self.assertErrorResponse(response, 1, "protocol_mismatch")
        message = response[2]["message"]
        self.assertIn("the client speaks 2", message)
        self.assertIn("symphonyd %s speaks %d" % (SERVER_VERSION, PROTOCOL_VERSION), message)

    def test_pipelined_requests(self):
        c = self.connect()
        c.hello()
        count = 200
        first = c.next_id
        batch = bytearray()
        expected = {}
        for i in range(count):
            msgid = first + i
            payload = {"seq": i, "data": bytes([i % 256]) * (i % 17)}
            expected[msgid] = payload
            batch += msgpack.packb([REQUEST, msgid, "daemon.ping", [payload]], use_bin_type=True)
        c.send_bytes(bytes(batch))
        answered = {}
        for _ in range(count):
            response = c.recv()
            self.assertIsNotNone(response, "EOF after %d of %d responses" % (len(answered), count))
            self.assertEqual(response[0], RESPONSE, response)
            self.assertIn(response[1], expected, "response to an id never sent: %r" % (response,))
            self.assertNotIn(response[1], answered, "two responses to id %d" % response[1])
            self.assertIsNone(response[2], response)
            answered[response[1]] = response[3]
        self.assertEqual(answered, expected)

    def test_wrong_shape_with_id_keeps_connection(self):
        c = self.connect()
        c.hello()
        c.send([REQUEST, 7, 42, []])  # method is not a string
        self.assertErrorResponse(c.recv(), 7, "invalid_message")
        c.send([REQUEST, 8, "daemon.ping", "not an array"])
        self.assertErrorResponse(c.recv(), 8, "invalid_message")
        self.assertEqual(c.call("daemon.ping", "after")[2:], [None, "after"])

    def test_wrong_shape_without_id_keeps_connection(self):
        c = self.connect()
        c.hello()
        for label, obj in {"integer": 42, "string": "hello", "empty array": [],
                           "unknown type": [9, 1, "daemon.ping", []],
                           "string msgid": [REQUEST, "seven", "daemon.ping", []]}.items():
            with self.subTest(message=label):
                c.send(obj)
                self.assertErrorNotification(c.recv(), "invalid_message")
        self.assertEqual(c.call("daemon.ping", "after")[2:], [None, "after"])

    def test_malformed_frame_closes_connection(self):
        c = self.connect()
        c.hello()
        c.send_bytes(b"\xc1")  # never used in msgpack
        self.assertErrorNotification(c.recv(), "parse_error")
        self.assertTrue(c.closed_by_peer())
        # The daemon keeps serving everyone else.
        fresh = self.connect()
        fresh.hello()
        self.assertEqual(fresh.call("daemon.ping", b"ok")[2:], [None, b"ok"])

    def test_deep_nesting_closes_connection(self):
        c = self.connect()
        c.hello()
        payload = None
        for _ in range(200):
            payload = [payload]
        c.send([REQUEST, c.next_id, "daemon.ping", [payload]])
        self.assertErrorNotification(c.recv(), "limit_exceeded")
        self.assertTrue(c.closed_by_peer())
        fresh = self.connect()
        fresh.hello()
        self.assertEqual(fresh.call("daemon.ping")[2:], [None, "pong"])


class MessageSizeLimitTest(DaemonTestCase):
    """ipc.max_message_size is enforced on what the client sends."""

    daemon_args = ("--set", "ipc.max_message_size=4096")

    def test_small_messages_pass(self):
        c = self.connect()
        c.hello()
        blob = b"\xab" * 2048
        self.assertEqual(c.call("daemon.ping", blob)[2:], [None, blob])

    def assertOversizedRefused(self, payload):
        c = self.connect()
        c.hello()
        c.request("daemon.ping", payload)
        self.assertErrorNotification(c.recv(), "message_too_large")
        self.assertTrue(c.closed_by_peer())
        fresh = self.connect()
        fresh.hello()
        self.assertEqual(fresh.call("daemon.ping")[2:], [None, "pong"])

    def test_oversized_message_closes_connection(self):
        # One 10 KiB binary: the message is too large whatever is inside it.
        self.assertOversizedRefused(b"\x00" * 10 * 1024)

    def test_oversized_message_of_small_elements_closes_connection(self):
        self.assertOversizedRefused(["x" * 100] * 100)


class PynvimSessionTest(DaemonTestCase):
    """Neovim's msgpack-rpc session layer (python3-pynvim) as the client."""

    def setUp(self):
        from pynvim.api.common import NvimError
        from pynvim.msgpack_rpc import socket_session
        self.NvimError = NvimError
        # socket_session() first sends the notification nvim_set_client_info;
        # the daemon must ignore it (notifications get no reply, not even an
        # error) and answer what follows.
        self.session = socket_session(self.daemon.socket_path)
        self.addCleanup(self.close_session)
        # pynvim.attach() installs an nvim-specific error_wrapper (it expects
        # [type, message]); keep symphonyd's {"code", "message"} map whole.
        self.session.error_wrapper = lambda error: NvimError(error)

    def close_session(self):
        # Session.close() closes the asyncio loop without letting it run the
        # transport's close callback; run that one iteration first so the
        # socket is really closed (and Python warns about no leaked transport).
        transport = self.session.loop._raw_transport
        if transport is not None and not transport.is_closing():
            transport.close()
            aio = self.session.loop._loop
            aio.call_soon(aio.stop)
            aio.run_forever()
        self.session.close()

    def request(self, method, *args):
        """session.request() under a deadline: pynvim itself would wait forever."""
        expired = []

        def expire():
            expired.append(True)
            self.session.stop()

        timer = self.session.loop._loop.call_later(IO_TIMEOUT_S, expire)
        try:
            return self.session.request(method, *args)
        except OSError:
            if expired:
                raise AssertionError("no response to %s within %.0f s" % (method, IO_TIMEOUT_S))
            raise
        finally:
            timer.cancel()

    def test_session(self):
        hello = self.request("symphony.hello", PROTOCOL_VERSION, "pynvim")
        self.assertEqual(hello["protocol"], PROTOCOL_VERSION)
        self.assertEqual(hello["server"], "symphonyd")
        self.assertEqual(hello["version"], SERVER_VERSION)

        self.assertEqual(self.request("daemon.ping"), "pong")
        blob = bytes(range(64))
        self.assertEqual(self.request("daemon.ping", blob), blob)
        nested = {"a": [1, 2, {"b": "c"}], "n": -5}
        self.assertEqual(self.request("daemon.ping", nested), nested)

        status = self.request("daemon.status")
        self.assertEqual(status["pid"], self.daemon.proc.pid)
        self.assertEqual(status["loop_backend"], LOOP_BACKEND)
        self.assertEqual(status["socket"], self.daemon.socket_path)

        with self.assertRaises(self.NvimError) as raised:
            self.request("daemon.no_such_method", 1)
        self.assertError(raised.exception.args[0], "unknown_method")
        self.assertIn("daemon.no_such_method", raised.exception.args[0]["message"])

        # The session survives an error response.
        self.assertEqual(self.request("daemon.ping", "again"), "again")

    def test_error_before_hello(self):
        with self.assertRaises(self.NvimError) as raised:
            self.request("daemon.status")
        self.assertError(raised.exception.args[0], "handshake_required")


def main():
    result = unittest.main(exit=False).result
    if not result.wasSuccessful():
        return 1
    # meson reads 77 as "skipped": the backend under test could not start.
    if BACKEND_UNAVAILABLE:
        return 77
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
