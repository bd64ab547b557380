#!/usr/bin/env bash
# A copy of the project brief's shared/bench/host_baseline.sh (only these two comment lines added), so
# that a clone can run it; tsim-bench runs it inside `unshare -n`, so its bridge is in a throwaway namespace.
# Baseline: create N "hosts" (netns + veth to a host-side bridge + address + up + default route)
# the way the Python original does it (one `ip` process per step), and with `ip -batch`.
# Prints per-host milliseconds for each method. Needs root.
set -euo pipefail
N=${1:-50}
P=bz$$
cleanup() { for i in $(seq 1 $N); do ip netns del ${P}h$i 2>/dev/null || true; done; ip link del ${P}br 2>/dev/null || true; }
trap cleanup EXIT
ip link add ${P}br type bridge; ip link set ${P}br up
now() { date +%s%N; }
# method 1: one ip process per step (upstream style, without sudo/shell overhead)
t0=$(now)
for i in $(seq 1 $N); do
  ns=${P}h$i
  ip netns add $ns
  ip link add ${P}v$i type veth peer name ${P}p$i
  ip link set ${P}p$i netns $ns
  ip link set ${P}v$i master ${P}br up
  ip -n $ns addr add 10.$((200+i/250)).$((i%250)).2/24 dev ${P}p$i
  ip -n $ns link set ${P}p$i up
  ip -n $ns link set lo up
  ip -n $ns route add default via 10.$((200+i/250)).$((i%250)).1
done
t1=$(now)
cleanup; ip link add ${P}br type bridge; ip link set ${P}br up
# method 2: ip -batch for root-namespace steps, ip -n NS -batch for in-namespace steps
t2=$(now)
{ for i in $(seq 1 $N); do
  echo "netns add ${P}h$i"; echo "link add ${P}v$i type veth peer name ${P}p$i"; echo "link set ${P}p$i netns ${P}h$i"; echo "link set ${P}v$i master ${P}br up"
done; } | ip -batch -
for i in $(seq 1 $N); do
  printf 'addr add 10.%d.%d.2/24 dev %sp%d\nlink set %sp%d up\nlink set lo up\nroute add default via 10.%d.%d.1\n' $((200+i/250)) $((i%250)) $P $i $P $i $((200+i/250)) $((i%250)) | ip -n ${P}h$i -batch -
done
t3=$(now)
echo "per_host_ms ip_processes=$(( (t1-t0)/N/1000 ))us ip_batch=$(( (t3-t2)/N/1000 ))us N=$N"
