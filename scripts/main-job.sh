#!/usr/bin/env bash
# Symphony's main job, end to end on this machine: install what is missing,
# build, start symphonyd in user mode in a private temporary runtime
# directory, show `symphonyctl status` and a `symphonyctl ping` run, then stop
# the daemon cleanly (SIGTERM → drain → exit 0).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh build
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build daemon/symphonyd cli/symphonyctl

work=$(mktemp -d /tmp/symphony-main-job.XXXXXX)
daemon_pid=
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill -KILL "$daemon_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT

export XDG_RUNTIME_DIR=$work/run XDG_CONFIG_HOME=$work/config XDG_STATE_HOME=$work/state
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
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

echo "==> stopping symphonyd (SIGTERM)"
kill -TERM "$daemon_pid"
status=0
wait "$daemon_pid" || status=$?
daemon_pid=
if [ "$status" -ne 0 ]; then echo "symphonyd exited with status $status" >&2; exit 1; fi
echo "==> symphonyd stopped cleanly"
