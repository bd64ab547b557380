#!/usr/bin/env bash
# The kernel floor for creating hosts, through `ip -batch` (one process per batch, not one per
# step), per host:
#   floor:    `netns add`, and a veth created in a hidden namespace with its peer born
#             directly in the host's namespace;
#   attached: the same, plus attaching the hidden end to a bridge and setting it up (part of
#             what a host-sized batch does; its address, route and lo/eth0 up cannot be
#             batched across namespaces by `ip`).
# Prints per-host microseconds. Needs root.
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
ip -n "$hid" link add br0 type bridge
ip -n "$hid" link set br0 up
now() { date +%s%N; }
t0=$(now)
for i in $(seq 1 "$N"); do echo "netns add ${P}h$i"; done | ip -batch -
for i in $(seq 1 "$N"); do echo "link add ${P}v$i type veth peer name eth0 netns ${P}h$i"; done | ip -n "$hid" -batch -
t1=$(now)
for i in $(seq 1 "$N"); do echo "link set ${P}v$i master br0 up"; done | ip -n "$hid" -batch -
t2=$(now)
echo "per_host_us floor=$(( (t1 - t0) / N / 1000 )) attached=$(( (t2 - t0) / N / 1000 )) N=$N"
