#!/usr/bin/env bash
# Builds in release mode, runs tsim-bench (as root) and writes bench/RESULTS.md.
# Usage: bench/run.sh [tsim-bench options]   e.g. bench/run.sh --round-trips 50000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p tsim-helper -p tsim-bench
report=$(target/release/tsim-bench "$@")
{
  echo "# Benchmark results"
  echo
  echo "Latest figures from \`bench/run.sh $*\` on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r)."
  echo "Medians and ratios are from one run; each baseline was measured in the same run."
  echo
  echo "$report"
} > bench/RESULTS.md
cat bench/RESULTS.md
