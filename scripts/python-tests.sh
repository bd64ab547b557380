#!/usr/bin/env bash
# The Python client's tests (client/python/tests), against the real helper built here.
# Installs what they need (msgpack, pytest) when it is missing. Needs root, like the Rust
# kernel tests; with TSIM_REQUIRE_PRIV_TESTS=1 they fail instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
pip_install() {
  echo "deps: installing $1 (pip)" >&2
  python3 -m pip install -q "$1" 2>/dev/null || python3 -m pip install -q --break-system-packages "$1"
}
python3 -c 'import msgpack' 2>/dev/null || pip_install msgpack
python3 -c 'import pytest' 2>/dev/null || pip_install pytest
cargo build --locked --quiet -p tsim-helper -p tsim-client
cd client/python
TSIM_BIN_DIR="$PWD/../../target/debug" python3 -m pytest -q -p no:cacheprovider
