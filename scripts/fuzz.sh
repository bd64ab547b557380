#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for FUZZ_SECONDS seconds each (default 60), starting
# from the committed seeds, and fails when a target finds a crash, a timeout or an
# out-of-memory input (its path is printed, with the input in hex when it is short).
#
# Environment:
#   FUZZ_SECONDS  seconds of fuzzing per target (default 60)
#   FUZZ_TARGETS  space-separated targets to run (default: all, as `cargo fuzz list` says)
#   FUZZ_CORPUS   scratch corpus directory, one subdirectory per target (default
#                 fuzz/corpus, which git ignores); the seeds of fuzz/seeds/<target> are
#                 copied into it first, so the committed seeds are never written to
#
# Toolchain: cargo-fuzz needs a nightly compiler (-Zsanitizer=address). The `nightly`
# toolchain is used when rustup has one; otherwise the default (stable) toolchain runs with
# RUSTC_BOOTSTRAP=1, which unlocks the nightly flags on a stable compiler. cargo-fuzz itself
# is installed (`cargo install cargo-fuzz --locked`) only when `cargo fuzz` is missing; if
# another install is already running, this waits for it instead of starting a second one.
#
# Each target runs in fork mode with crashes, timeouts and out-of-memory inputs recorded and
# skipped (so one bug does not hide the next), with -max_len=65536, -rss_limit_mb=2048,
# -timeout=10 and its dictionary (fuzz/dict); crash inputs land in fuzz/artifacts/<target>/
# (ignored by git). Reproduce one with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
corpus_root=${FUZZ_CORPUS:-fuzz/corpus}
artifacts_root=fuzz/artifacts

# cargo-fuzz, installed once.
export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  if pgrep -f "cargo install cargo-fuzz" >/dev/null; then
    echo "fuzz: waiting for the running cargo-fuzz install" >&2
    while pgrep -f "cargo install cargo-fuzz" >/dev/null; do sleep 5; done
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
  fi
fi
if ! command -v c++ >/dev/null 2>&1; then
  echo "fuzz: libFuzzer needs a C++ compiler (apt-get install g++)" >&2
  exit 1
fi

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  echo "fuzz: no nightly toolchain; using RUSTC_BOOTSTRAP=1 on the default one" >&2
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

if [ -n "${FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$FUZZ_TARGETS"
else
  mapfile -t targets < <("${fuzz[@]}" list)
fi

# The fuzz crate is a workspace of its own, so the root `cargo fmt --check` does not see it.
(cd fuzz && cargo fmt --check)

# Build every target once (with debug assertions, so overflows panic), outside the timing.
"${fuzz[@]}" build --debug-assertions

dict_for() {
  case "$1" in
    frame | request) echo fuzz/dict/msgpack.dict ;;
    facts | compile) echo fuzz/dict/facts.dict ;;
    payload) echo fuzz/dict/payload.dict ;;
  esac
}

host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=fuzz/target/$host/release

failed=()
summary=()
for target in "${targets[@]}"; do
  corpus="$corpus_root/$target"
  artifacts="$artifacts_root/$target"
  mkdir -p "$corpus" "$artifacts"
  if [ -d "fuzz/seeds/$target" ]; then
    cp -f "fuzz/seeds/$target"/* "$corpus"/
  fi
  log=$(mktemp)
  marker=$(mktemp)
  # Fork mode with crashes ignored: a crash does not end the run, so the whole budget is
  # spent and every crash input is kept; any new artifact fails the script below.
  args=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10
    -artifact_prefix="$artifacts/")
  dict=$(dict_for "$target")
  if [ -n "$dict" ]; then args+=(-dict="$dict"); fi
  printf '\n-- %s: %s s\n' "$target" "$seconds"
  status=0
  "${fuzz[@]}" run --debug-assertions "$target" "$corpus" -- "${args[@]}" >"$log" 2>&1 || status=$?
  # The last status line: "#N: cov: C ft: F corp: U exec/s: E oom/timeout/crash: a/b/c time: Ts".
  last=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  field() { sed -n "s|.* $1: *\([0-9/]*\).*|\1|p" <<<"$last"; }
  execs=$(sed -n 's/^#\([0-9]*\):.*/\1/p' <<<"$last")
  time_s=$(field time)
  speed=?
  if [ -n "$execs" ] && [ -n "$time_s" ] && [ "$time_s" -gt 0 ]; then speed=$((execs / time_s)); fi
  units=$(find "$corpus" -type f | wc -l)
  # Counted from the artifacts: the status line misses a crash in the last job.
  found=$(find "$artifacts" -type f -newer "$marker" | sort)
  line=$(printf '%-8s execs %-9s exec/s %-6s cov %-6s ft %-6s corpus %-5s crashes %s' \
    "$target" "${execs:-?}" "$speed" "$(field cov)" "$(field ft)" "$units" \
    "$(grep -c . <<<"$found" || true)")
  summary+=("$line")
  echo "$line"
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    failed+=("$target")
    echo "fuzz: $target failed (exit $status, $(grep -c . <<<"$found" || true) new inputs in $artifacts)" >&2
    if [ -z "$found" ]; then tail -40 "$log" >&2; fi
    # The first few inputs, each with its panic.
    for file in $(head -5 <<<"$found"); do
      echo "fuzz: crash input: $file ($(stat -c %s "$file") bytes)" >&2
      if [ "$(stat -c %s "$file")" -le 512 ]; then
        echo "fuzz:   hex: $(od -An -tx1 -v "$file" | tr -d ' \n')" >&2
      fi
      "$bin_dir/$target" "$file" 2>&1 | grep -A2 -m1 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' \
        | sed 's/^/fuzz:   /' >&2 || true
    done
    echo "fuzz: reproduce with: ${fuzz[*]} run $target <input>" >&2
  fi
  rm -f "$log" "$marker"
done

printf '\n-- fuzzing summary (%s s per target)\n' "$seconds"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: crashes found in: ${failed[*]}" >&2
  exit 1
fi
