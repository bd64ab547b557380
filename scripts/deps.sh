#!/usr/bin/env bash
# Installs what this machine lacks to build, run and test tsim-helper. Idempotent: it only
# installs a package when its command is missing. Sourced by scripts/demo.sh and
# scripts/test.sh; can also be run on its own.
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing $*; install with: sudo apt-get install $*" >&2
    return 1
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends)
  if [ "$apt_updated" -eq 0 ]; then
    # Try without refreshing the package lists first; refresh once if that fails.
    if "${apt[@]}" "$@" >/dev/null 2>&1; then return 0; fi
    apt-get update -qq
    apt_updated=1
  fi
  "${apt[@]}" "$@" >/dev/null
}

# need COMMAND DEBIAN-PACKAGE
need() {
  command -v "$1" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1 || {
    echo "deps: installing $2 (for $1)" >&2
    apt_install "$2"
  }
}

need ip iproute2
need unshare util-linux
need systemd-socket-activate systemd
need iptables-restore iptables
need ipset ipset
need python3 python3
# The tests check the simulated network with the standard tools, inside its namespaces.
need ping iputils-ping
need traceroute traceroute
# libFuzzer (built by cargo-fuzz for scripts/fuzz.sh) is C++.
need c++ g++

command -v cargo >/dev/null 2>&1 || { echo "deps: cargo (the Rust toolchain) is required" >&2; exit 1; }
