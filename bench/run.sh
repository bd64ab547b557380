#!/usr/bin/env bash
# Builds in release mode, runs tsim-bench (as root) and writes bench/RESULTS.md.
# Usage: bench/run.sh [tsim-bench options]   e.g. bench/run.sh --round-trips 50000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p tsim-helper -p tsim-client -p tsim-bench
# tsimctl as it ships: relinked statically (see the Makefile).
cargo rustc --release --locked -q -p tsim-client --bin tsimctl -- \
  -C target-feature=+crt-static -C relocation-model=static
report=$(target/release/tsim-bench "$@")
# The table's rows come first; sections of their own (the load phase) follow a blank line,
# and go after the Python rows, which continue the table.
table=$(printf '%s\n' "$report" | sed '/^$/,$d')
sections=$(printf '%s\n' "$report" | sed -n '/^$/,$p')
# The Python client's rows (it needs msgpack).
python3 -c 'import msgpack' 2>/dev/null || python3 -m pip install -q msgpack
pyreport=$(python3 bench/python_bench.py)
# Fault injection: 34 kills per scenario.
faults=$(bash bench/faults.sh 34)
{
  echo "# Benchmark results"
  echo
  echo "Latest figures from \`bench/run.sh $*\` on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)."
  echo "Medians and ratios are from one run; each baseline was measured in the same run."
  echo
  echo "$table"
  echo "$pyreport"
  [ -z "$sections" ] || echo "$sections"
  echo
  echo "$faults"
  echo
  echo "How to read it:"
  echo
  echo "* The kernel floor row is a blocking echo between two threads of one process, with no helper: on this virtual machine, waking a sleeping thread costs about 20 µs, so any round trip between two parties that sleep while they wait costs about 44 µs."
  echo "  The helper's no-op round trip is measured against that floor; what it adds is the overhead column."
  echo "  The p50 ≤ 20 µs target of DESIGN.md assumes a machine with cheaper wake-ups; it cannot be met here without a client that busy-waits, which this client does not do."
  echo "* A host-sized batch is one atomic request: \`ns_create\` (IPv4 only, like the simulated network), \`link_add_veth\` to a bridge in a hidden namespace (peer born there, enslaved, both ends up), \`addr_add\` and \`route_add\` of the default route; N of them are sent one after the other, all hosts on one bridge."
  echo "  The baselines are \`bench/host_baseline.sh\` (a copy of the brief's) and \`bench/kernel_floor.sh\`, run right after, on an idle machine (the bench waits for the kernel to finish freeing the previous phase's namespaces)."
  echo "  The floor does less than the batch (no bridge attach, no lo or eth0 up, no address or route); the second floor adds the bridge attach, the part \`ip -batch\` can do across namespaces."
  echo "* The service rows run on the example network, with an echo service on one host probed from a host on the same bridge."
  echo "  The old way is the old system's service test: \`ip netns exec NS python3 -c …\` that connects, sends \`Test\\n\` and prints the echo and its local port, one process per probe."
  echo "  The reach row runs one quick analysis with a source host on each of the example network's three routers (edge, core, lab) towards a host behind lab; the old system took 30–60 s for a quick job (DESIGN.md; its code is not here to run)."
  echo "  Throughput is one client on a thread inside a namespace, one 64-byte round trip after another; \"per second of the helper's CPU\" divides by the helper's user and system time (from /proc), so it is the rate one core of the helper sustains."
  echo "* The Python rows (\`bench/python_bench.py\`) use \`tsim_client.Client\` from one thread; its old-way baseline is a fresh \`python3 -c 'import subprocess, json'\` plus the per-host time of \`host_baseline.sh\` (one \`ip\` process per step), measured in the same run."
  echo "  The web jobs are \`client/python/examples/wsgi_app.py\`'s quick and detailed jobs, called directly (no HTTP), on the 10-router test network; the old figures (30–60 s for a quick job, ~20 s for a detailed job with one service) are the old system's documented ones (original-system.md §9.3)."
  echo "* The network rows run \`tsimctl net setup\` and \`net teardown\` as new processes, end to end (facts read and compiled, one request to the helper), one round after another; before each round the bench waits until the kernel has freed the previous round's namespaces (it does so in the background, about 10 a second, and slows every namespace and link operation meanwhile)."
  echo "  The baseline builds the same compiled network the old way, one \`ip\`, \`ip netns exec … sysctl\`, \`ipset restore\` or \`iptables-restore\` process per step, serially (the old system also started Python processes, so its ~60 s is far above this baseline)."
  echo "  The synthetic network is a ring of routers, each with 5 links to each side (one /24 and one bridge per link), 10 static routes and a 20-rule firewall."
  echo "  Teardown returns when the namespaces are gone from \`/run/netns\`; the kernel goes on freeing them for a few seconds (about 9 s for the synthetic network)."
  echo "  The teardown with 100 hosts is one \`net teardown\` after the 10-router network got 100 hosts (10 a router, each behind a gateway the helper added) in one request."
  echo "* The host rows run on the bundled example network (3 routers), all hosts behind one router, against \`bench/host_baseline.sh\` (one \`ip\` process per step) run in the same phase."
  echo "  \`tsimctl\` rows start one process per host, as a user would: on this virtual machine starting any process costs about 0.8 ms and starting \`tsimctl\` (dynamically linked, clap, tokio) about 1.3 ms, so at most about 1.2 ms of a \`tsimctl host add\` is the helper's."
  echo "  A fresh host is a new namespace, a veth born on the bridge, an address and a route (about 0.9 ms of it is the kernel's, see the floor rows); a pooled host only has its namespace renamed, its parked veth end attached to the bridge, and its address and route added."
  echo "  The 4 concurrent clients do not go much faster than one: the kernel serializes namespace and link creation (RTNL), and the machine has two cores."
  echo "  The host rows run before the 1000-host batches: after those, even once the kernel has freed their namespaces, host creation stays about twice as slow for a while (seen in an earlier run: 2.8 ms instead of 1.4 ms through the library)."
  echo "* The load section (\`tsim-bench --only load\`, \`--load-clients\`, \`--load-requests\`, \`--load-mix\`) runs N clients, each on its own connection, sending one request at a time (a closed loop: each waits for its answer before sending the next), with a mix drawn per client from a fixed seed; all clients run on one thread of the bench, so they take at most one of the two cores, which the helper and the kernel share with them."
  echo "  Latencies are the client's, from sending to the answer; the helper's column is the time the helper itself spent running the operation (from \`status\`), so the difference is time spent waiting for a CPU, in the socket, or for one of the helper's runtime workers (as many as there are cores)."
  echo "  In a closed loop, the mean latency is clients ÷ throughput: 64 clients at 30 000 requests/s wait about 2 ms on average whatever the helper does, so p99 < 5 ms for reads needs spare CPU, which this 2-core machine does not have with 64 clients, the helper and the kernel's namespace work on it."
  echo "  Host operations create and destroy a namespace each, and the kernel frees namespaces in the background (the \`net_namespace\` row), both under RTNL. The kernel handles a netlink request inside the \`sendmsg\` that carries it, sleeping there while RTNL is taken; the helper sends its netlink requests from threads of their own (\`tsim-netlink\`), so that sleep no longer holds up the runtime workers that answer pings and reads (before that change, in a 64 × 3000 run: ping p99 13–17 ms, registry reads 17–18 ms; after: 5–8 ms)."
  echo "  \`link_list\` and \`addr_list\` are kernel dumps: one at a time per namespace's netlink socket (the kernel refuses a second dump on a socket with \`EBUSY\`), and under RTNL, so with 64 clients on three routers they queue behind each other and behind the host operations; they are the read p99."
  echo "* The hostile section (\`tsim-bench --only hostile\`, \`--hostile-secs\`) runs on a helper of its own: its idle VmRSS, then its VmHWM after 8 connections each sent one 16 MiB frame of 1.8 M \`ping\` at once (target < 200 MiB, DESIGN.md §7); then root's \`ping\`, one every millisecond on its own connection, idle and while a member of the group (uid 65534, in a process of its own) sends one attack on 8 connections, one request at a time on each, for the given seconds (target p99 < 5 ms)."
  echo "  The attacks are the worst requests found for a member: frames over \`max_ops\` (refused from the array header), frames at \`max_ops\` full of unknown keys, values nested 60 deep, the longest port lists, the port list of finding 4, 10 000 \`status\` per request, and 16 MiB topologies (decoded, then refused: \`net_apply\` is admin-only); the attacker's column says how many requests it got answered and with which codes."
  echo "* The namespace rows compare one request to the helper (create: mount point, unshare, bind mount, DAD off, netlink socket, lo up, state record) with one \`ip netns add\` process (which does not bring lo up)."
} > bench/RESULTS.md
cat bench/RESULTS.md
