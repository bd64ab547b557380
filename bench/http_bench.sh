#!/usr/bin/env bash
# The web back end over real HTTP, beside the same jobs called directly, in one run: a
# release helper on a private socket with the 10-router test network, the example WSGI app
# under Apache with mod_wsgi (scripts/apache-wsgi.sh: 4 processes x 8 threads, as the web
# user), and bench/http_load.py. Prints a Markdown table for bench/RESULTS.md. As root.
#
#   bash bench/http_bench.sh            (builds the release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "http_bench: run as root" >&2; exit 1; }
cargo build --release --locked -q -p tsim-helper -p tsim-client
export TSIM_WEB_GROUP=tsim-http-bench
bash scripts/apache-wsgi.sh install
getent group "$TSIM_WEB_GROUP" >/dev/null || groupadd --system "$TSIM_WEB_GROUP"
gid=$(getent group "$TSIM_WEB_GROUP" | cut -d: -f3)
dir=$(mktemp -d /tmp/tsim-http-bench.XXXXXX)
chmod 755 "$dir"
prefix="hb$$-"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/release/tsim-helper --socket "$dir/helper.sock" --state-dir "$dir/state" --group "$gid" \
  --hidden-ns "${prefix}hidden" --pool-prefix "${prefix}pool-" --quota-reach-jobs 32 --log text \
  2>"$dir/helper.log" &
helper=$!
cleanup() {
  bash scripts/apache-wsgi.sh down "$dir/web" || true
  target/release/tsimctl --socket "$dir/helper.sock" net teardown >/dev/null 2>&1 || true
  kill "$helper" 2>/dev/null || true
  wait "$helper" 2>/dev/null || true
  ip netns list | awk '{print $1}' | grep "^$prefix" | xargs -r -n1 ip netns del 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 200); do [ -S "$dir/helper.sock" ] && break; sleep 0.05; done
target/release/tsimctl --socket "$dir/helper.sock" net setup --facts tests/data/facts10/raw \
  --prefix "$prefix" --quiet 2>/dev/null
bash scripts/apache-wsgi.sh up "$dir/web" "$port" "$dir/helper.sock" "$prefix"
url="http://127.0.0.1:$port"

# The same quick job called directly (in this process, no HTTP), median of 9.
direct=$(cd client/python && python3 - "$dir/helper.sock" "$prefix" <<'EOF'
import statistics, sys, time
sys.path.insert(0, "examples")
sys.path.insert(0, "../../bench")
import http_load, wsgi_app
from tsim_client import Client
c = Client(sys.argv[1])
times = []
for _ in range(9):
    t = time.perf_counter()
    wsgi_app.quick_job(c, http_load.SOURCES[0], http_load.DST, http_load.ROUTERS, http_load.PORTS, sys.argv[2])
    times.append(time.perf_counter() - t)
print(f"{statistics.median(times) * 1000:.1f}")
EOF
)
row() {
  python3 -c '
import json, sys
r = json.loads(sys.argv[1]); what = sys.argv[2]
cols = [what] + [str(r[k]) + " ms" for k in ("alone_p50_ms", "wall_ms")]
cols += [str(r["p50_ms"]) + " / " + str(r["p99_ms"]) + " ms"]
cols += [str(r[k]) for k in ("jobs_per_s", "errors", "mismatches")]
print("| " + " | ".join(cols) + " |")' "$1" "$2"
}
echo "| jobs at once, over HTTP | one job alone over HTTP (p50) | wall | per job p50 / p99 | jobs/s | errors | verdicts unlike alone |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row "$(python3 bench/http_load.py --url "$url" --jobs 32 --sources same)" "32 quick jobs, one source"
row "$(python3 bench/http_load.py --url "$url" --jobs 32 --sources mix)" "32 quick jobs, four sources"
row "$(python3 bench/http_load.py --url "$url" --jobs 8 --kind detailed)" "8 detailed jobs"
echo
echo "The same quick job called directly (no HTTP, one Python client): p50 ${direct} ms."
left=$(target/release/tsimctl --socket "$dir/helper.sock" --json host list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))')
echo "Hosts left after the run: $left."
