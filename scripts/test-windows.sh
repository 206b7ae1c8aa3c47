#!/usr/bin/env bash
# Builds the Windows backends with mingw-w64 (the meson project in windows/,
# into build-win) and runs their tests under wine. Prints one summary line,
# naming every case wine cannot run; exit 0 when no test failed.
#   scripts/test-windows.sh
# Needs g++-mingw-w64-x86-64-posix and wine64 (scripts/install-deps.sh test).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s%N)

build=build-win
summary() {
  local secs=$(( ($(date +%s%N) - started) / 1000000 ))
  printf 'test-windows: %s (%d.%03d s)\n' "$1" $((secs / 1000)) $((secs % 1000))
}

wine=
for candidate in /usr/lib/wine/wine64 "$(command -v wine64 || true)" "$(command -v wine || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then wine=$candidate; break; fi
done
if [ -z "$wine" ] || ! command -v x86_64-w64-mingw32-g++-posix >/dev/null; then
  echo "test-windows: needs wine64 and g++-mingw-w64-x86-64-posix (scripts/install-deps.sh test)" >&2
  summary "FAIL (toolchain missing)"
  exit 1
fi

# Quiet, headless wine that never offers to download Mono or Gecko, and
# without winedbg, which would otherwise dump every deliberate crash.
export WINEDEBUG=-all DISPLAY=
export WINEDLLOVERRIDES="mscoree,mshtml=;winedbg.exe=d"
own_prefix=false
if [ -z "${WINEPREFIX:-}" ]; then
  export WINEPREFIX=$PWD/$build/wineprefix
  own_prefix=true
fi
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  mkdir -p "$WINEPREFIX"
  "$wine" wineboot -i >/dev/null 2>&1 </dev/null || true
fi
stop_wineserver() {
  # Our throwaway prefix's server would linger for seconds holding this
  # script's output open; a caller's own prefix is left alone.
  if $own_prefix; then "$(dirname "$wine")/wineserver" -k >/dev/null 2>&1 || true; fi
}
trap stop_wineserver EXIT

cross=(--cross-file windows/mingw-w64.ini)
mkdir -p "$build"
if [ "$wine" != /usr/lib/wine/wine64 ]; then
  printf "[binaries]\nexe_wrapper = '%s'\n" "$wine" >"$build/wine.ini"
  cross+=(--cross-file "$build/wine.ini")
fi

log=$build/test-windows.log
if [ ! -f "$build/build.ninja" ]; then
  if ! meson setup "${cross[@]}" "$build" windows >"$log" 2>&1; then
    cat "$log" >&2
    summary "FAIL (meson setup)"
    exit 1
  fi
fi
if ! ninja -C "$build" >"$log" 2>&1; then
  cat "$log" >&2
  summary "FAIL (build)"
  exit 1
fi

status=0
meson test -C "$build" --print-errorlogs || status=$?

testlog=$build/meson-logs/testlog.txt
passed=$(grep -cE '^ok [0-9]+ - ' "$testlog" || true)
skips=$(grep -E '^ok [0-9]+ - .* # SKIP' "$testlog" | sed -E 's/^ok [0-9]+ - (.*) # SKIP (.*)$/\1 (\2)/' || true)
failed=$(grep -cE '^not ok [0-9]+ - ' "$testlog" || true)
skipped=$(printf '%s' "$skips" | grep -c . || true)
detail="$((passed - skipped)) passed, $failed failed, $skipped skipped"
if [ -n "$skips" ]; then detail+=" under wine: $(printf '%s' "$skips" | paste -sd ';' | sed 's/;/; /g')"; fi
if [ "$status" -eq 0 ]; then
  summary "PASS ($detail)"
else
  summary "FAIL ($detail)"
  exit 1
fi
