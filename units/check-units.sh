#!/bin/sh
# check-units.sh: the `units` test suite (units/meson.build). Runs systemd's
# own offline checkers on the generated units, sysusers.d and tmpfiles.d
# files, so a typo, an unknown directive or a weakened sandbox fails the build
# instead of being logged and ignored at boot.
#
#   check-units.sh verify system|user SYSTEMD_ANALYZE DAEMON required|optional UNIT...
#   check-units.sh security SYSTEMD_ANALYZE MAX_EXPOSURE UNIT
#   check-units.sh sysusers-tmpfiles SYSTEMD_SYSUSERS SYSTEMD_TMPFILES SYSUSERS_CONF TMPFILES_CONF
#
# Exit status: 0 pass, 1 fail, 77 skipped (meson's convention).

set -u

tmp=$(mktemp -d "${TMPDIR:-/tmp}/symphony-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# `systemd-analyze verify` exits 0 for many real mistakes: an unknown
# directive, a value it cannot parse (Type=notify-reload on systemd 252), a
# bad unit name in Requires= are all "ignoring" warnings. So every line it
# prints about our units counts as a failure; lines about host units that
# ours pull in (sockets.target, ...) are shown but not held against us.
# --recursive-errors=one: a Requires= on a unit that does not exist is an
# error, the state of the host's units beyond our direct dependencies is not.
verify() {
    mode=$1 analyze=$2 daemon=$3 need_daemon=$4
    shift 4
    names=
    for unit in "$@"; do
        # verify-system-symphonyd.service -> symphonyd.service: unit names
        # matter (Sockets=, Requires= refer to them).
        name=$(basename "$unit" | sed 's/^verify-[a-z]*-//')
        cp "$unit" "$tmp/$name" || fail "cannot copy $unit"
        names="$names $tmp/$name"
    done
    flag=
    if [ "$mode" = user ]; then
        flag=--user
        # The user manager needs a runtime directory (%t); give it one.
        mkdir -p "$tmp/xdg" && chmod 0700 "$tmp/xdg"
        export XDG_RUNTIME_DIR="$tmp/xdg"
    fi
    tolerated=
    if [ ! -x "$daemon" ]; then
        if [ "$need_daemon" = required ]; then
            fail "$daemon was not built"
        fi
        echo "NOTE: $daemon is not built yet; checking everything except that ExecStart= exists." >&2
        tolerated="Command $daemon is not executable"
    fi
    "$analyze" $flag verify --man=no --recursive-errors=one $names \
        >"$tmp/out" 2>&1
    rc=$?
    cat "$tmp/out"
    bad=$(grep -F -e "$tmp/" -e symphonyd. "$tmp/out" |
          { if [ -n "$tolerated" ]; then grep -v -F "$tolerated"; else cat; fi; })
    if [ -n "$bad" ]; then
        fail "systemd-analyze ${flag:+$flag }verify complained about our units"
    fi
    if [ "$rc" -ne 0 ] && [ -z "$tolerated" ]; then
        fail "systemd-analyze ${flag:+$flag }verify exited with $rc"
    fi
    # verify does not resolve Sockets=; a misspelt socket name would only
    # show at boot, as a service started without its listening socket.
    for socket in $(sed -n 's/^Sockets=//p' $names); do
        [ -f "$tmp/$socket" ] || fail "Sockets=$socket names none of the units checked"
    done
    echo "ok: systemd-analyze ${flag:+$flag }verify of$(echo "$names" | sed "s|$tmp/||g")"
}

# Overall exposure of `systemd-analyze security --offline=true`, 0.0 (best)
# to 10.0; --threshold takes it times ten.
security() {
    analyze=$1 max=$2 unit=$3
    name=$(basename "$unit" | sed 's/^verify-[a-z]*-//')
    cp "$unit" "$tmp/$name" || fail "cannot copy $unit"
    threshold=$(echo "$max" | awk '{ printf "%d", $1 * 10 + 0.5 }')
    "$analyze" security --offline=true --no-pager --threshold="$threshold" \
        "$tmp/$name" >"$tmp/out" 2>&1
    rc=$?
    cat "$tmp/out"
    if grep -F -e "$tmp/" "$tmp/out" >/dev/null; then
        fail "systemd-analyze security complained about $name"
    fi
    [ "$rc" -eq 0 ] || fail "exposure of $name is above $max (see docs/units.md before raising it)"
    echo "ok: exposure of $name is at most $max"
}

# Apply both files to an empty root: sysusers creates the account in
# $tmp/etc/passwd, tmpfiles then resolves it there and creates the
# directories with their owners and modes, which are checked.
sysusers_tmpfiles() {
    sysusers=$1 tmpfiles=$2 sysusers_conf=$3 tmpfiles_conf=$4
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: creating files owned by another user needs root" >&2
        exit 77
    fi
    root="$tmp/root"
    mkdir -p "$root/etc"
    "$sysusers" --root="$root" "$sysusers_conf" || fail "systemd-sysusers rejected $sysusers_conf"
    grep -q '^symphony:' "$root/etc/passwd" || fail "no user symphony"
    grep -q '^symphony:' "$root/etc/group" || fail "no group symphony"
    "$tmpfiles" --root="$root" --create "$tmpfiles_conf" || fail "systemd-tmpfiles rejected $tmpfiles_conf"
    uid=$(awk -F: '$1 == "symphony" { print $3 }' "$root/etc/passwd")
    gid=$(awk -F: '$1 == "symphony" { print $3 }' "$root/etc/group")
    for want in "run/symphony 755 $uid $gid" \
                "var/lib/symphony 750 $uid $gid" \
                "var/cache/symphony 750 $uid $gid" \
                "etc/symphony 755 0 0" \
                "etc/symphony/symphonyd.toml.d 755 0 0"; do
        set -- $want
        got=$(stat -c '%a %u %g' "$root/$1" 2>/dev/null) || fail "/$1 not created"
        [ "$got" = "$2 $3 $4" ] || fail "/$1 is '$got', want '$2 $3 $4'"
    done
    echo "ok: sysusers.d and tmpfiles.d applied to an empty root"
}

cmd=$1
shift
case "$cmd" in
    verify) verify "$@" ;;
    security) security "$@" ;;
    sysusers-tmpfiles) sysusers_tmpfiles "$@" ;;
    *) fail "unknown command $cmd" ;;
esac
