#!/usr/bin/env bash
# A fuzz campaign (not CI): every cargo-fuzz target of fuzz/ (frame, request, facts, compile,
# payload) for CAMPAIGN_RUNS executions each (default 1,000,000, libFuzzer -runs=), then a
# table per target: executions, wall time, rate, coverage (cov: edges, ft: features), corpus
# size and crash/timeout/oom inputs found.
#
# What it runs, and why so:
# * The targets are built once in release mode with debug assertions (overflows panic) and
#   WITHOUT a sanitizer (`cargo fuzz build -s none`): the code under test is safe Rust, where
#   AddressSanitizer finds nothing that a panic would not, and costs 2-5x; `facts` under ASan
#   runs about 100 exec/s on 24 KB inputs, which would make 10^6 runs take three hours.
#   scripts/fuzz.sh (CI, 20 s per target) keeps ASan.
# * One libFuzzer process per target (no fork mode: -runs= counts exactly), with
#   -max_len per target (payload 16384, so lines past iptables' 10240-byte buffer are reached;
#   facts and compile 8192, which holds a router's facts and keeps facts near 1,000 exec/s;
#   frame and request 65536), -timeout=10, -rss_limit_mb=2048, the target's dictionary, and
#   the committed seeds copied into a fresh corpus. A crash ends that target's run early (the
#   table says so; the input is in the artifacts directory).
# * CAMPAIGN_PARALLEL targets at once (default 1), every process at `nice -n 19`: the machine is
#   shared, the campaign only takes idle CPU.
#
# Where results go: CAMPAIGN_DIR (default /var/tmp/tsim-fuzz-campaign/<UTC timestamp>), with
#   <target>.log      libFuzzer's output (its last "#N ... cov: ... ft: ..." line is the figure)
#   corpus/<target>/  the corpus grown from the seeds
#   artifacts/<target>/ crash, timeout and oom inputs
#   summary.txt       the table, rewritten as each target finishes
# While it runs, `bench/fuzz-campaign.sh --summary DIR` prints the table of a campaign
# directory from the logs so far (targets still running show their latest status line).
#
# Environment: CAMPAIGN_RUNS, CAMPAIGN_TARGETS (space-separated; default all), CAMPAIGN_DIR,
# CAMPAIGN_PARALLEL, CAMPAIGN_SANITIZER (default none; `address` reuses the build of
# scripts/fuzz.sh, at 2-5x the cost per execution). Needs cargo-fuzz and a nightly toolchain (or RUSTC_BOOTSTRAP=1), as
# scripts/fuzz.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

max_len_for() {
  case "$1" in
    payload) echo 16384 ;;
    facts | compile) echo 8192 ;;
    *) echo 65536 ;;
  esac
}

dict_for() {
  case "$1" in
    frame | request) echo fuzz/dict/msgpack.dict ;;
    facts | compile) echo fuzz/dict/facts.dict ;;
    payload) echo fuzz/dict/payload.dict ;;
  esac
}

# The table row of one target, from its log and directories.
row() {
  local dir=$1 target=$2 log="$1/$2.log"
  local last execs cov ft time_s rate state crashes units
  # libFuzzer's status lines: "#N<tab>NEW|REDUCE|pulse|DONE  cov: C ft: F corp: ...".
  last=$(grep -aE '^#[0-9]+[[:space:]]' "$log" 2>/dev/null | grep -a 'cov:' | tail -1 || true)
  execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if grep -aq '^Done [0-9]* runs in' "$log" 2>/dev/null; then
    execs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    time_s=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
    state=done
  else
    local now
    now=$(date +%s)
    [ -f "$dir/$target.end" ] && now=$(cat "$dir/$target.end")
    time_s=$((now - $(cat "$dir/$target.start" 2>/dev/null || echo "$now")))
    if [ -f "$dir/$target.end" ]; then state=stopped; else state=running; fi
  fi
  rate=?
  if [ -n "$execs" ] && [ "${time_s:-0}" -gt 0 ]; then rate=$((execs / time_s)); fi
  units=$(find "$dir/corpus/$target" -type f 2>/dev/null | wc -l)
  crashes=$(find "$dir/artifacts/$target" -type f 2>/dev/null | wc -l)
  printf '%-8s %-8s execs %-9s time %-6ss exec/s %-6s cov %-6s ft %-6s corpus %-6s crashes %s\n' \
    "$target" "$state" "${execs:-0}" "${time_s:-0}" "$rate" "${cov:-?}" "${ft:-?}" "$units" "$crashes"
}

summary() {
  local dir=$1
  echo "-- fuzz campaign in $dir ($(cat "$dir/runs" 2>/dev/null || echo ?) runs per target, sanitizer $(cat "$dir/sanitizer" 2>/dev/null || echo ?))"
  for target in $(cat "$dir/targets"); do row "$dir" "$target"; done
}

if [ "${1:-}" = "--summary" ]; then
  summary "${2:?--summary DIR}"
  exit 0
fi

export PATH="$HOME/.cargo/bin:$PATH"
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

runs=${CAMPAIGN_RUNS:-1000000}
parallel=${CAMPAIGN_PARALLEL:-1}
dir=${CAMPAIGN_DIR:-/var/tmp/tsim-fuzz-campaign/$(date -u +%Y%m%dT%H%M%SZ)}
if [ -n "${CAMPAIGN_TARGETS:-}" ]; then
  read -r -a targets <<<"$CAMPAIGN_TARGETS"
else
  targets=(payload frame request compile facts)
fi
mkdir -p "$dir/corpus" "$dir/artifacts"
echo "$runs" >"$dir/runs"
echo "${targets[*]}" >"$dir/targets"
echo "fuzz campaign: ${targets[*]}, $runs runs each, results in $dir" >&2

sanitizer=${CAMPAIGN_SANITIZER:-none}
echo "$sanitizer" >"$dir/sanitizer"
# A build without sanitizer goes to a target directory of its own, so it does not replace the
# ASan build of scripts/fuzz.sh.
target_dir=fuzz/target
if [ "$sanitizer" != address ]; then target_dir=fuzz/target/campaign-$sanitizer; fi
nice -n 19 "${fuzz[@]}" build -s "$sanitizer" --debug-assertions --target-dir "$target_dir" \
  >"$dir/build.log" 2>&1
host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$host/release

run_one() {
  local target=$1
  local corpus="$dir/corpus/$target" artifacts="$dir/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/seeds/$target" ]; then cp -f "fuzz/seeds/$target"/* "$corpus"/; fi
  local args=(-runs="$runs" -max_len="$(max_len_for "$target")" -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix="$artifacts/")
  local dict
  dict=$(dict_for "$target")
  if [ -n "$dict" ]; then args+=(-dict="$dict"); fi
  date +%s >"$dir/$target.start"
  nice -n 19 "$bin_dir/$target" "${args[@]}" "$corpus" >"$dir/$target.log" 2>&1 || true
  date +%s >"$dir/$target.end"
  summary "$dir" >"$dir/summary.txt"
}

running=0
for target in "${targets[@]}"; do
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
summary "$dir" | tee "$dir/summary.txt"
