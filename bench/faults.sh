#!/usr/bin/env bash
# Fault injection, benchmark style: tests/tests/faults.rs run RUNS times per scenario (host
# batches, `net setup` of the 10-router network, reachability jobs), each run killing the
# helper with SIGKILL at a random moment and auditing everything after the restart (registry
# against the kernel, `/run/netns`, the hidden namespace, `net verify`, the routers' mangle
# tables, and a full teardown that must leave nothing). Prints a Markdown summary.
# Needs root. Usage: bench/faults.sh [RUNS per scenario, default 34 (102 kills in all)]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-34}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
status=0
TSIM_REQUIRE_PRIV_TESTS=1 TSIM_FAULT_RUNS=$runs \
  cargo test --release --locked -q -p tsim-tests --test faults -- --nocapture --test-threads 1 \
  >"$log" 2>&1 || status=$?
secs=$(( $(date +%s) - start ))

batch=$(grep -c 'hosts survived' "$log" || true)
net=$(grep -c 'routers after the restart' "$log" || true)
reach=$(grep -c 'lines of running jobs' "$log" || true)
net_empty=$(grep -c '; 0 routers after' "$log" || true)
struck=$(grep -c 'killed at .*, [1-9][0-9]* lines of running jobs' "$log" || true)
survived=$(grep -o '[0-9]* of 50 hosts survived' "$log" | awk '{print $1}' | sort -n | tr '\n' ' ')
whole() { grep -o "a whole $1 takes [^ ]*" "$log" | awk '{print $NF}'; }

echo "## Fault injection"
echo
echo "\`bench/faults.sh $runs\`: $((batch + net + reach)) kills (SIGKILL at a random moment) in $secs s; after each restart the audit passed: $( [ "$status" = 0 ] && echo yes || echo '**NO**' )."
echo
echo "| scenario | kills | uninterrupted run | after the restart |"
echo "| --- | --- | --- | --- |"
echo "| host batches (one atomic request of 25 hosts and 25 single-host requests, with added gateways) | $batch | $(whole batch) | hosts kept per run: $survived|"
echo "| \`net setup\` of the 10-router network | $net | $(whole 'net setup') | $net_empty with no network, $((net - net_empty)) with the whole network (never a part) |"
echo "| reachability jobs (3 at once, 3 routers, 6 services) | $reach | $(whole job) | $struck kills struck while the jobs' chains were installed; none left after the restart |"
echo
echo "Audited after every restart: the helper's namespaces equal \`/run/netns\` (same names, nothing extra either way), every host is whole, \`tsimctl net verify\` passes against the facts, no \`TSIM_REACH\` chain or job \`TRACE\` rule is left in any router; and after a full \`net teardown\`, no namespace of the run is left, the hidden namespace holds only \`lo\`, and no state record remains."
if [ "$status" != 0 ]; then
  echo
  echo "Failures:"
  echo
  echo '```'
  grep -E 'panicked|assert|left:|right:|fault seed' "$log" | head -40
  echo '```'
  exit "$status"
fi
