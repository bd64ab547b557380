#!/usr/bin/env bash
# The kernel floor for creating hosts: per host, one `netns add` and one veth created in a
# hidden namespace with its peer born directly in the host's namespace, all through
# `ip -batch` (one process for each batch, not one per step). Prints per-host microseconds.
# Needs root.
set -euo pipefail
N=${1:-100}
P=fl$$
hid=${P}hid
cleanup() {
  for i in $(seq 1 "$N"); do ip netns del "${P}h$i" 2>/dev/null || true; done
  ip netns del "$hid" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$hid"
now() { date +%s%N; }
t0=$(now)
for i in $(seq 1 "$N"); do echo "netns add ${P}h$i"; done | ip -batch -
for i in $(seq 1 "$N"); do echo "link add ${P}v$i type veth peer name eth0 netns ${P}h$i"; done | ip -n "$hid" -batch -
t1=$(now)
echo "per_host_us floor=$(( (t1 - t0) / N / 1000 )) N=$N"
