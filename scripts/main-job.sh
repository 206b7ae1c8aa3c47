#!/usr/bin/env bash
# Symphony's main job, end to end on this machine: install what is missing,
# build, start symphonyd in user mode in a private temporary runtime
# directory, show `symphonyctl status` and a `symphonyctl ping` run, the
# sandbox, and the Pit (a durable artifact put and get, versions, a write
# conflict, a pooled model, `pit stats`), then run a workflow: the bundled
# git and code extensions, each in its own sandbox, analyse Symphony's own
# source tree and write a report artifact, which is printed. Then the daemon
# stops cleanly (SIGTERM → drain → exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh build
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build daemon/symphonyd cli/symphonyctl sandbox/symphony-sandbox \
  extensions/fs/symphony-ext-fs extensions/git/symphony-ext-git extensions/code/symphony-ext-code

work=$(mktemp -d /tmp/symphony-main-job.XXXXXX)
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

export XDG_RUNTIME_DIR=$work/run XDG_CONFIG_HOME=$work/config XDG_STATE_HOME=$work/state
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
# One model for the pool manager: a plain program, run in its own sandbox.
mkdir -p "$XDG_CONFIG_HOME/symphony"
# The bundled extensions from the build tree (an installed Symphony finds
# them under /usr/share/symphony/extensions).
cat > "$XDG_CONFIG_HOME/symphony/symphonyd.toml" <<TOML
[pit.models.sleeper]
command = ["/bin/sleep", "600"]
memory_mb = 64

[stage]
system_dirs = ["$PWD/build/extensions"]
python_sdk_dir = "$PWD/sdk/python"
TOML
ctl=build/cli/symphonyctl

echo "==> starting symphonyd --user (runtime directory $XDG_RUNTIME_DIR)"
build/daemon/symphonyd --user --log-target console &
daemon_pid=$!

for _ in $(seq 100); do
  if $ctl --user version --json 2>/dev/null | grep -q '"daemon":{'; then break; fi
  if ! kill -0 "$daemon_pid" 2>/dev/null; then echo "symphonyd exited during start" >&2; exit 1; fi
  sleep 0.05
done

echo "==> symphonyctl --user status"
$ctl --user status
echo "==> symphonyctl --user ping -c 10"
$ctl --user ping -c 10
echo "==> symphonyctl --user --json ping -c 1000"
$ctl --user --json ping -c 1000

sandbox=build/sandbox/symphony-sandbox
echo "==> symphony-sandbox info"
$sandbox info
echo "==> symphony-sandbox run: a program in the sandbox an extension gets"
$sandbox run --memory 256M --pids 64 --cpu 1 --timeout 10 --json-status -- \
  /bin/sh -c 'echo "uid $(id -u), host name $(hostname), root: $(ls / | tr "\n" " ")"; test ! -e /etc/shadow'
echo "==> symphony-sandbox run: a memory hog is stopped by its limit"
$sandbox run --memory 64M --json-status -- \
  /bin/sh -c 'x=$(head -c 400000000 /dev/zero | tr "\\0" a); echo "${#x}"' || true

echo "==> the Pit: store README.md as an artifact (printed once it is durable), read it back"
$ctl --user --json artifact put README.md --name docs/readme --media-type text/markdown
$ctl --user artifact get docs/readme -o "$work/readme.out"
cmp README.md "$work/readme.out" && echo "read back byte-identical"
echo "==> a second version made from the first, then a write conflict on a stale base"
printf 'v2\n' | $ctl --user artifact put - --name docs/readme --input docs/readme@1 --quality 0.8 --scorer demo
printf 'v3 from version 1\n' | $ctl --user artifact put - --name docs/readme --base 1
$ctl --user artifact versions docs/readme
$ctl --user artifact lineage docs/readme@2
echo "==> the pool manager: lease the declared model twice (a cold load, then a warm hit)"
/usr/bin/python3 - "$XDG_RUNTIME_DIR/symphony/symphonyd.sock" <<'PY'
import socket, sys, time
import msgpack
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
u = msgpack.Unpacker(raw=False); n = 0
def call(method, *params):
    global n
    n += 1
    s.sendall(msgpack.packb([0, n, method, list(params)]))
    while True:
        for m in u:
            if m[0] == 1 and m[1] == n:
                if m[2]: raise SystemExit(f"{method}: {m[2]['message']}")
                return m[3]
        u.feed(s.recv(1 << 16))
call("symphony.hello", 1, "main-job")
for what in ("cold", "warm"):
    t = time.monotonic(); lease = call("pool.acquire", "sleeper")
    print(f"{what}: lease {lease['lease']} on instance {lease['instance']} in {(time.monotonic() - t) * 1000:.2f} ms")
    call("pool.release", lease["lease"])
PY
echo "==> symphonyctl --user pit stats (artifacts and pool)"
$ctl --user --json pit stats | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print({k: s["artifacts"][k] for k in ("names","versions","blobs","puts","commit_batches")}); print({k: s["pool"][k] for k in ("models","hits","misses","host_held_bytes")})'

echo "==> the Grand Stage: the extensions it found (bundled)"
$ctl --user ext ls
echo "==> symphonyctl run examples/workflows/analyze-source.toml on Symphony's own source tree"
$ctl --user run examples/workflows/analyze-source.toml --workspace "$PWD"
run=$($ctl --user --json workflow ls | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run"])')
$ctl --user workflow show "$run"
report=$($ctl --user --json workflow show "$run" | /usr/bin/python3 -c \
  'import json,sys; print(next(o for o in json.load(sys.stdin)["outputs"] if "/report/report@" in o))')
echo "==> the report artifact $report (first 40 lines)"
$ctl --user artifact get "$report" -o "$work/report.md"
head -40 "$work/report.md"

echo "==> stopping symphonyd (SIGTERM)"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
if [ "$status" -ne 0 ]; then echo "symphonyd exited with status $status" >&2; exit 1; fi
echo "==> symphonyd stopped cleanly"
