"""A hostile extension for test_workflows.py: `escape.try` runs one probe,
an attempt to get out of the sandbox, and returns what happened as JSON:

    {"probe": NAME, "ok": did the operation itself succeed in here,
     "escaped": did it reach something only the host has (null: only the
                host can tell, e.g. whether a written file landed outside),
     "detail": what the calls said}

Some probes make system calls the seccomp filter forbids (ptrace, mount,
unshare, a packet socket): the sandbox is then killed before it can answer,
which is containment too. Params: see extension.toml."""

import ctypes
import os
import signal
import socket
import sys

from symphony_ext import Extension, StepError

ext = Extension("org.symphony.test.malicious", "0.6.6")
libc = ctypes.CDLL(None, use_errno=True)


def failed(e):
    return "%s: %s" % (type(e).__name__, e)


def read_file(path, size=4096):
    with open(path, "rb") as f:
        return f.read(size)


def write_file(path):
    with open(path, "w") as f:
        f.write("escaped\n")


def probe_read_shadow(p):
    try:
        data = read_file("/etc/shadow")
    except OSError as e:
        return False, False, failed(e)
    return True, True, "read %d bytes of /etc/shadow" % len(data)


def probe_read_host_file(p):
    try:
        data = read_file(p["host_file"])
    except OSError as e:
        return False, False, failed(e)
    return True, p["secret"].encode() in data, "read %d bytes" % len(data)


def write_probe(path):
    try:
        write_file(path)
    except OSError as e:
        return False, None, "%s: %s" % (path, failed(e))
    return True, None, "wrote %s (inside the sandbox)" % path


def probe_write_parent(p):
    # Out of the workspace through '..' into the host directory above it.
    return write_probe(os.path.join(os.environ.get("SYMPHONY_WORKSPACE", "."), "..", p["token"]))


def probe_write_host_tmp(p):
    # The sandbox's /tmp is its own: a file here must not appear in the host's.
    return write_probe(os.path.join("/tmp", p["token"]))


def probe_write_usr(p):
    ok, _, detail = write_probe(os.path.join("/usr", p["token"]))
    return ok, ok, detail


def list_probe(path, escaped):
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        return False, False, "%s: %s" % (path, failed(e))
    return True, escaped(names), "%s: %s" % (path, names[:20])


def probe_list_home(p):
    return list_probe("/home", bool)


def probe_list_host_dir(p):
    # The sandbox shows the directories leading to what it binds (the
    # workspace, the extension) as empty directories of its own; the host's
    # files beside them must not be there.
    return list_probe(p["host_dir"], lambda names: os.path.basename(p["host_file"]) in names)


def probe_connect_internet(p):
    details, escaped, ok = [], False, False
    try:
        with socket.create_connection(("1.1.1.1", 53), timeout=3) as s:
            ok = escaped = True
            details.append("tcp 1.1.1.1:53 connected from %s" % (s.getsockname(),))
    except OSError as e:
        details.append("tcp 1.1.1.1:53: " + failed(e))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            # A DNS query for "." NS.
            s.sendto(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01", ("1.1.1.1", 53))
            reply = s.recv(512)
            ok = escaped = True
            details.append("udp 1.1.1.1:53 answered %d bytes" % len(reply))
    except OSError as e:
        details.append("udp 1.1.1.1:53: " + failed(e))
    return ok, escaped, "; ".join(details)


def probe_connect_daemon(p):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(p["socket"])
            return True, True, "connected to " + p["socket"]
    except OSError as e:
        return False, False, "%s: %s" % (p["socket"], failed(e))


def probe_signal_daemon(p):
    try:
        os.kill(p["daemon_pid"], signal.SIGKILL)
    except OSError as e:
        return False, False, "kill(%d, SIGKILL): %s" % (p["daemon_pid"], failed(e))
    return True, True, "kill(%d, SIGKILL) succeeded" % p["daemon_pid"]


def probe_kill_init(p):
    details = []
    try:
        cmdline = read_file("/proc/1/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        details.append("pid 1 is %r" % cmdline)
    except OSError as e:
        details.append("/proc/1/cmdline: " + failed(e))
    ok = True
    try:
        os.kill(1, signal.SIGKILL)
        details.append("kill(1, SIGKILL) returned 0 (pid 1 is the sandbox's own init)")
    except OSError as e:
        ok = False
        details.append("kill(1, SIGKILL): " + failed(e))
    # Whatever pid 1 is, it is not the host's if this process is alive.
    return ok, None, "; ".join(details)


def probe_read_proc_environ(p):
    secret = p["secret"].encode()
    found, read, errors = [], 0, []
    if secret in b"\0".join(k.encode() + b"=" + v.encode() for k, v in os.environ.items()):
        found.append("own environment")
    pids = sorted({"1", str(p["daemon_pid"])} | {d for d in os.listdir("/proc") if d.isdigit()}, key=int)
    for pid in pids:
        try:
            data = read_file("/proc/%s/environ" % pid, 1 << 20)
        except OSError as e:
            errors.append("%s: %s" % (pid, os.strerror(e.errno) if e.errno else failed(e)))
            continue
        read += 1
        if secret in data:
            found.append("/proc/%s/environ" % pid)
    detail = "read %d environ files; found the secret in %s; errors: %s" % (read, found or "none", errors[:10])
    return read > 0, bool(found), detail


def libc_call(name, *args):
    fn = getattr(libc, name)
    rc = fn(*args)
    err = ctypes.get_errno()
    return rc == 0, "%s returned %d (%s)" % (name, rc, os.strerror(err) if rc != 0 else "success")


def probe_ptrace(p):
    ok, detail = libc_call("ptrace", ctypes.c_long(16), ctypes.c_long(1), None, None)  # PTRACE_ATTACH pid 1
    return ok, ok, detail


def probe_mount(p):
    ok, detail = libc_call("mount", b"none", b"/tmp", b"tmpfs", ctypes.c_ulong(0), None)
    return ok, ok, detail


def probe_unshare(p):
    ok, detail = libc_call("unshare", ctypes.c_int(0x10000000))  # CLONE_NEWUSER
    return ok, ok, detail


def probe_packet_socket(p):
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
    except OSError as e:
        return False, False, failed(e)
    s.close()
    return True, True, "opened a packet socket"


def probe_dev_mem(p):
    try:
        data = read_file("/dev/mem", 16)
    except OSError as e:
        return False, False, failed(e)
    return True, True, "read %d bytes of /dev/mem" % len(data)


PROBES = {name[len("probe_"):]: fn for name, fn in globals().items() if name.startswith("probe_")}


@ext.capability("escape.try")
def escape(step):
    name = step.params.get("probe", "")
    fn = PROBES.get(name)
    if fn is None:
        raise StepError("escape.try: unknown probe '%s' (known: %s)" % (name, ", ".join(sorted(PROBES))),
                        retryable=False)
    step.log("info", "trying " + name)
    ok, escaped, detail = fn(step.params)
    step.output_json("result", {"probe": name, "ok": ok, "escaped": escaped, "detail": detail,
                                "uid": os.getuid(), "pid": os.getpid()})


if __name__ == "__main__":
    sys.exit(ext.run())
