"""The Python SDK for Symphony extensions.

An extension registers a handler per capability and calls Extension.run(),
which speaks the extension protocol (docs/extension-protocol.md) on the
channel symphonyd passed it: the handshake, one step.run at a time,
heartbeats from a thread, cancellation and shutdown. Pure Python over
Debian's python3-msgpack; the daemon puts this package on PYTHONPATH.

    from symphony_ext import Extension, StepError

    ext = Extension("org.example.hello", "0.1.0")

    @ext.capability("hello.greet")
    def greet(step):
        step.output("greeting", "Hello, %s!\\n" % step.params.get("name", "world"),
                    "text/plain")

    if __name__ == "__main__":
        sys.exit(ext.run())

docs/sdk.md is the guide.
"""

import collections
import json
import os
import sys
import threading
import traceback

import msgpack

__all__ = ["Extension", "Input", "Step", "StepError", "PROTOCOL_VERSION"]
__version__ = "0.1.0"

PROTOCOL_VERSION = 1

_REQUEST, _RESPONSE, _NOTIFICATION = 0, 1, 2
_HELLO_ID = 0
_DEFAULT_HEARTBEAT_MS = 1000
_LEVELS = ("debug", "info", "warn", "error")


class StepError(Exception):
    """Raised by a handler to fail its step with a message of its own.

    A step that is not retryable (bad parameters, a path outside the
    workspace) is not run again under the workflow's retry policy.
    """

    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.message = str(message)
        self.retryable = bool(retryable)


Input = collections.namedtuple("Input", ["artifact", "digest", "media_type", "data"])
Input.__doc__ = "One artifact passed to a step; `data` is bytes."


class _ShapeError(Exception):
    """A message from the daemon without the shape the protocol defines."""


class _Channel:
    """Whole messages out under a lock; a streaming decoder in."""

    def __init__(self, fd):
        self._fd = fd
        self._lock = threading.Lock()
        self._unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")

    def send(self, message):
        """Sends one message; False when the daemon is gone."""
        return self.send_packed(msgpack.packb(message, use_bin_type=True))

    def send_packed(self, data):
        """Sends one message packed already; False when the daemon is gone."""
        with self._lock:
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError:
                return False
        return True

    def receive(self):
        """The next message as a list, or None at the end of the stream."""
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            except Exception as e:  # msgpack raises several types for bad input
                raise RuntimeError("the daemon sent bytes that are not msgpack (%s)" % e) from e
            try:
                chunk = os.read(self._fd, 65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self._unpacker.feed(chunk)


def _type_name(value):
    """The msgpack name of a decoded value's type, for messages."""
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                       (bytes, "binary"), (list, "array"), (dict, "map")):
        if isinstance(value, kind):
            return name
    return "nil" if value is None else _type_name(value)


def _classify(message):
    if not isinstance(message, list) or not message:
        raise _ShapeError("a message must be a non-empty array, got %s" % _type_name(message))
    kind = message[0]
    if kind not in (_REQUEST, _RESPONSE, _NOTIFICATION) or isinstance(kind, bool):
        raise _ShapeError("message type must be 0, 1 or 2")
    want = 3 if kind == _NOTIFICATION else 4
    if len(message) != want:
        raise _ShapeError("a message of type %d has %d elements, got %d" % (kind, want, len(message)))
    if kind != _NOTIFICATION and not (isinstance(message[1], int) and message[1] >= 0):
        raise _ShapeError("expected a message id (an unsigned integer)")
    if kind != _RESPONSE:
        method = message[2] if kind == _REQUEST else message[1]
        params = message[3] if kind == _REQUEST else message[2]
        if not isinstance(method, str):
            raise _ShapeError("method: expected string, got %s" % _type_name(method))
        if not isinstance(params, list):
            raise _ShapeError("%s params: expected array" % method)
    return kind


def _params_map(method, params):
    if not params:
        return {}
    if len(params) != 1 or not isinstance(params[0], dict):
        raise _ShapeError("%s: params must be an array of one map" % method)
    return params[0]


def _string_field(m, name, path):
    value = m.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _ShapeError("%s.%s: expected string, got %s" % (path, name, _type_name(value)))
    return value


def _uint_field(m, name, path):
    value = m.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _ShapeError("%s.%s: expected non-negative integer, got %s"
                          % (path, name, _type_name(value)))
    return value


def _parse_input(value, path):
    if not isinstance(value, dict):
        raise _ShapeError("%s: expected map, got %s" % (path, _type_name(value)))
    data = value.get("data")
    if data is None:
        data = b""
    elif isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    elif not isinstance(data, bytes):
        raise _ShapeError("%s.data: expected binary or string, got %s" % (path, _type_name(data)))
    return Input(_string_field(value, "artifact", path), _string_field(value, "digest", path),
                 _string_field(value, "media_type", path), data)


def _parse_step_run(m):
    call = _uint_field(m, "call", "step.run")
    if call is None:
        raise _ShapeError("step.run.call: missing required field")
    capability = _string_field(m, "capability", "step.run")
    if not capability:
        raise _ShapeError("step.run.capability: missing required field")
    params = m.get("params")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _ShapeError("step.run.params: expected map, got %s" % _type_name(params))
    inputs = {}
    raw_inputs = m.get("inputs") or {}
    if not isinstance(raw_inputs, dict):
        raise _ShapeError("step.run.inputs: expected map, got %s" % _type_name(raw_inputs))
    for name, value in raw_inputs.items():
        path = "step.run.inputs.%s" % name
        if isinstance(value, list):
            inputs[name] = [_parse_input(v, "%s[%d]" % (path, i)) for i, v in enumerate(value)]
        else:
            inputs[name] = [_parse_input(value, path)]
    return {
        "call": call,
        "step": _string_field(m, "step", "step.run"),
        "capability": capability,
        "params": params,
        "inputs": inputs,
        "workspace": _string_field(m, "workspace", "step.run"),
        "deadline_ms": _uint_field(m, "deadline_ms", "step.run") or 0,
    }


_UNSET = object()


class Step:
    """One step call, handed to the capability's handler.

    Valid only while the handler runs. progress() and log() send at once;
    outputs and the summary are sent with the answer when the handler returns.
    A Step built with channel=None (for unit tests of a handler) drops progress
    and log messages.
    """

    def __init__(self, request, cancel_event=None, channel=None):
        self.capability = request.get("capability", "")
        self.id = request.get("step", "")  # "run/step#attempt", for logs
        self.params = request.get("params") or {}
        self.inputs = request.get("inputs") or {}  # name -> [Input, ...]
        self.workspace = request.get("workspace", "")  # "" when the run has none
        self.deadline_ms = request.get("deadline_ms", 0)  # time left at the start; 0 = none
        self.outputs = {}  # name -> (media_type, bytes)
        self._call = request.get("call", 0)
        self._cancel = cancel_event if cancel_event is not None else threading.Event()
        self._channel = channel
        self._summary = _UNSET

    @property
    def cancelled(self):
        """True once step.cancel arrived for this call; the SDK then answers
        "cancelled" whatever the handler returns or raises."""
        return self._cancel.is_set()

    def progress(self, fraction, message=""):
        """step.progress; `fraction` is clamped to [0, 1]."""
        fraction = float(fraction)
        if fraction != fraction:  # NaN
            fraction = 0.0
        fraction = min(1.0, max(0.0, fraction))
        self._notify("step.progress", {"call": self._call, "fraction": fraction,
                                       "message": str(message)})

    def log(self, level, message):
        """step.log for this call; level is debug, info, warn or error."""
        if level not in _LEVELS:
            raise ValueError("log level %r is not one of %s" % (level, ", ".join(_LEVELS)))
        self._notify("step.log", {"call": self._call, "level": level, "message": str(message)})

    def output(self, name, data, media_type="application/octet-stream"):
        """Adds (or replaces) an output; str data is sent as UTF-8."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("output %r: data must be bytes or str, not %s"
                            % (name, _type_name(data)))
        self.outputs[str(name)] = (str(media_type), bytes(data))

    def output_json(self, name, obj):
        """An application/json output, serialized with indent 2."""
        self.output(name, json.dumps(obj, indent=2), "application/json")

    @property
    def summary(self):
        """A small value shown with the step's result (None until set)."""
        return None if self._summary is _UNSET else self._summary

    @summary.setter
    def summary(self, value):
        self._summary = value

    def _result(self):
        result = {"outputs": {name: {"media_type": media_type, "data": data}
                              for name, (media_type, data) in self.outputs.items()}}
        if self._summary is not _UNSET:
            result["summary"] = self._summary
        return result

    def _notify(self, method, params):
        if self._channel is not None:
            self._channel.send([_NOTIFICATION, method, [params]])


def _complain(ext_id, what):
    # stderr only: stdout belongs to the extension's author.
    sys.stderr.write("symphony-ext %s: %s\n" % (ext_id, what))
    sys.stderr.flush()


def _error(msgid, code, message, retryable):
    return [_RESPONSE, msgid, {"code": code, "message": message, "retryable": retryable}, None]


class Extension:
    """An extension: its id and version (equal to the manifest's) and a
    handler per capability."""

    def __init__(self, id, version):
        self.id = id
        self.version = version
        self._handlers = {}
        self._heartbeats = True

    def capability(self, name, handler=None):
        """Registers `handler` for capability `name`; without a handler,
        returns a decorator. The set of names must equal the manifest's."""
        def register(fn):
            if not callable(fn):
                raise TypeError("capability %r: the handler is not callable" % name)
            if name in self._handlers:
                raise ValueError("capability %r is registered twice" % name)
            self._handlers[name] = fn
            return fn
        if handler is not None:
            register(handler)
            return handler
        return register

    def stop_heartbeats_for_testing(self):
        """Internal, for Symphony's failure tests: stops ext.heartbeat so the
        daemon sees a hung instance."""
        self._heartbeats = False

    def run(self):
        """Serves on the fd in SYMPHONY_EXT_FD until ext.shutdown or the end of
        the stream. Returns the exit status: 0 then; 1, with a message on
        stderr, when SYMPHONY_EXT_FD is missing or invalid, the handshake is
        refused, or the daemon sends something that is not protocol."""
        fd, problem = self._channel_fd()
        if problem:
            _complain(self.id, problem)
            return 1
        channel = _Channel(fd)
        hello = {"protocol": PROTOCOL_VERSION, "id": self.id, "version": self.version,
                 "capabilities": sorted(self._handlers), "sdk": "symphony-python/" + __version__}
        if not channel.send([_REQUEST, _HELLO_ID, "ext.hello", [hello]]):
            _complain(self.id, "cannot send ext.hello: the channel is closed")
            return 1
        try:
            heartbeat_ms = self._handshake(channel)
        except (RuntimeError, _ShapeError, OSError) as e:
            _complain(self.id, str(e))
            return 1
        if heartbeat_ms is None:
            return 0  # shut down before the first step
        return _Session(self, channel).serve(heartbeat_ms / 1000.0)

    def _channel_fd(self):
        text = os.environ.get("SYMPHONY_EXT_FD", "")
        if not text:
            return -1, ("SYMPHONY_EXT_FD is not set: an extension is started by symphonyd with "
                        "its channel on that fd (docs/extension-protocol.md)")
        if not (text.isascii() and text.isdigit()):
            return -1, "SYMPHONY_EXT_FD=%r is not a file descriptor number" % text
        fd = int(text)
        try:
            # Programs a handler starts must not hold the channel open.
            os.set_inheritable(fd, False)
        except OSError as e:
            return -1, "SYMPHONY_EXT_FD=%s: %s" % (text, e.strerror)
        return fd, None

    def _handshake(self, channel):
        """heartbeat_ms from the daemon's answer; None on ext.shutdown.
        Raises RuntimeError saying why the handshake failed."""
        message = channel.receive()
        if message is None:
            raise RuntimeError("the daemon closed the channel before answering ext.hello")
        kind = _classify(message)
        if kind == _NOTIFICATION and message[1] == "ext.shutdown":
            return None
        if kind != _RESPONSE or message[1] != _HELLO_ID:
            got = ("a response to request %d" % message[1] if kind == _RESPONSE
                   else repr(message[2] if kind == _REQUEST else message[1]))
            raise RuntimeError("protocol violation by the daemon: expected the answer to "
                               "ext.hello, got " + got)
        error, result = message[2], message[3]
        if error is not None:
            if isinstance(error, dict):
                why = "%s: %s" % (error.get("code", ""), error.get("message", ""))
            else:
                why = repr(error)
            raise RuntimeError("the daemon refused the handshake: " + why)
        heartbeat_ms = _DEFAULT_HEARTBEAT_MS
        if isinstance(result, dict):
            value = result.get("heartbeat_ms")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                heartbeat_ms = value
        return heartbeat_ms


class _Session:
    """The queue between the reader thread and the handlers, and the
    heartbeat thread."""

    def __init__(self, extension, channel):
        self._ext = extension
        self._channel = channel
        self._cond = threading.Condition()
        self._queue = collections.deque()
        self._active = {}  # call -> threading.Event, queued or running
        self._closed = False
        self._status = 0
        self._stop_beat = threading.Event()

    def serve(self, heartbeat_s):
        reader = threading.Thread(target=self._read_loop, name="symphony-ext-reader", daemon=True)
        beat = threading.Thread(target=self._heartbeat_loop, args=(heartbeat_s,),
                                name="symphony-ext-heartbeat", daemon=True)
        reader.start()
        beat.start()
        self._run_steps()
        reader.join()
        self._stop_beat.set()
        beat.join()
        return self._status

    def _read_loop(self):
        try:
            while True:
                message = self._channel.receive()
                if message is None:
                    return self._close(0)
                try:
                    if not self._dispatch(message):
                        return self._close(0)
                except _ShapeError as e:
                    _complain(self._ext.id, "protocol violation by the daemon: %s" % e)
        except Exception as e:  # bytes that are not msgpack, a failed read
            _complain(self._ext.id, str(e))
            self._close(1)

    def _dispatch(self, message):
        kind = _classify(message)
        if kind == _REQUEST:
            msgid, method, params = message[1], message[2], message[3]
            if method == "step.run":
                self._accept_step(msgid, params)
            else:
                self._channel.send(_error(msgid, "unknown_method",
                                          "unknown method '%s' (an extension answers step.run)"
                                          % method, False))
            return True
        if kind == _NOTIFICATION:
            method, params = message[1], message[2]
            if method == "step.cancel":
                call = _uint_field(_params_map(method, params), "call", "step.cancel")
                with self._cond:
                    event = self._active.get(call)
                    if event is not None:
                        event.set()
                return True
            return method != "ext.shutdown"  # unknown notifications are ignored
        _complain(self._ext.id, "ignoring a response to request %d (this extension has no "
                                "request outstanding)" % message[1])
        return True

    def _accept_step(self, msgid, params):
        try:
            request = _parse_step_run(_params_map("step.run", params))
        except _ShapeError as e:
            self._channel.send(_error(msgid, "invalid_params", str(e), False))
            return
        handler = self._ext._handlers.get(request["capability"])
        if handler is None:
            known = ", ".join(sorted(self._ext._handlers)) or "none"
            self._channel.send(_error(msgid, "invalid_params",
                                      "unknown capability '%s' (%s provides: %s)"
                                      % (request["capability"], self._ext.id, known), False))
            return
        with self._cond:
            if request["call"] in self._active:
                self._channel.send(_error(msgid, "invalid_params",
                                          "step.run.call: call %d is already running"
                                          % request["call"], False))
                return
            event = threading.Event()
            self._active[request["call"]] = event
            self._queue.append((msgid, request, handler, event))
            self._cond.notify_all()

    def _close(self, status):
        with self._cond:
            self._closed = True
            self._status = status
            # Whatever is running stops: the daemon will not read its answer.
            for event in self._active.values():
                event.set()
            self._cond.notify_all()

    def _run_steps(self):
        while True:
            with self._cond:
                while not self._closed and not self._queue:
                    self._cond.wait()
                if self._closed:
                    return
                msgid, request, handler, event = self._queue.popleft()
            reply = self._execute(msgid, request, handler, event)
            try:
                data = msgpack.packb(reply, use_bin_type=True)
            except (TypeError, ValueError, OverflowError) as e:
                data = msgpack.packb(_error(msgid, "failed", "the step's summary cannot be sent "
                                            "as msgpack: %s" % e, False), use_bin_type=True)
            self._channel.send_packed(data)
            with self._cond:
                self._active.pop(request["call"], None)

    def _execute(self, msgid, request, handler, event):
        if event.is_set():
            return _error(msgid, "cancelled", "the step was cancelled before it started", False)
        step = Step(request, event, self._channel)
        failure = None
        try:
            handler(step)
        except StepError as e:
            failure = (e.message, e.retryable)
        except Exception as e:
            # The traceback goes to stderr, which the daemon keeps as the
            # instance's log; the step's error carries the one-line reason.
            traceback.print_exc(file=sys.stderr)
            failure = ("%s: %s" % (type(e).__name__, e), True)
        if step.cancelled:
            return _error(msgid, "cancelled", "the step was cancelled", False)
        if failure is not None:
            return _error(msgid, "failed", failure[0], failure[1])
        return [_RESPONSE, msgid, None, step._result()]

    def _heartbeat_loop(self, interval_s):
        while not self._stop_beat.wait(interval_s):
            if self._ext._heartbeats:
                self._channel.send([_NOTIFICATION, "ext.heartbeat", [{}]])
