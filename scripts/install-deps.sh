#!/usr/bin/env bash
# Installs what Symphony needs from Debian 12's packages, and nothing else.
# Idempotent and fast: when every package is present it only checks.
#   scripts/install-deps.sh build   what building and running needs
#   scripts/install-deps.sh test    that plus the test suite's tools (default)
set -euo pipefail

profile=${1:-test}

build_pkgs=(
  meson ninja-build pkgconf g++ cmake
  libspdlog-dev libfmt-dev libtomlplusplus-dev libcli11-dev libmsgpack-cxx-dev
  liburing-dev libsystemd-dev nlohmann-json3-dev
  libseccomp-dev
  libssl-dev libsqlite3-dev libzstd-dev libgit2-dev
  libtorch-dev
  python3 python3-msgpack
)
test_pkgs=(
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-pynvim
  python3-torch
  clang libclang-rt-14-dev
  systemd dbus
  bubblewrap
  g++-mingw-w64-x86-64-posix wine64
)

case "$profile" in
  build) wanted=("${build_pkgs[@]}") ;;
  test) wanted=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#wanted[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; refresh them once.
if ! apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null; then
  apt-get update -q </dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
fi
