#!/usr/bin/env bash
# The main job: build, start the helper on a private socket, use it, and tear everything
# down again. Needs root (the helper creates network namespaces).
#
# It shows: handshake and round trips; namespaces visible to `ip netns list`; an atomic batch
# that fails and leaves nothing behind; the bundled example network (examples/facts) built
# from facts, verified against them, probed from inside (ping, traceroute), test hosts added
# (from the pool), an echo service probed over TCP, ping and trace from a host, a probe that says which
# firewall rule dropped it (--explain), the outside
# world (an external host at 8.8.8.8, reached through the edge's NAT both ways), and the
# network torn down;
# status with per-operation latencies; a clean shutdown.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

cargo build --release --locked --quiet -p tsim-helper -p tsim-client
bin=$PWD/target/release
work=$(mktemp -d /tmp/tsim-demo.XXXXXX)
prefix="demo$$-"
export TSIM_SOCKET=$work/helper.sock
helper_pid=
cleanup() {
  if [ -n "$helper_pid" ]; then kill "$helper_pid" 2>/dev/null || true; wait "$helper_pid" 2>/dev/null || true; fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" || true); do ip netns del "$ns" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

show() { printf '\n$ %s\n' "$*"; "$@"; }

"$bin/tsim-helper" --socket "$TSIM_SOCKET" --state-dir "$work/state" --group 0 \
  --hidden-ns "${prefix}hidden" --pool-prefix "${prefix}pool-" --pool-size 2 --log text 2>"$work/helper.log" &
helper_pid=$!
for _ in $(seq 100); do [ -S "$TSIM_SOCKET" ] && break; sleep 0.05; done

show "$bin/tsimctl" ping --count 1000
show "$bin/tsimctl" ns add "${prefix}r1" --tag demo
show "$bin/tsimctl" ns add "${prefix}r2" --tag demo
show "$bin/tsimctl" ns list
show ip netns list
show ip -n "${prefix}r1" -br link
echo "[{\"op\":\"ns_create\",\"name\":\"${prefix}r3\"},{\"op\":\"ns_create\",\"name\":\"${prefix}r1\"}]" > "$work/batch.json"
printf '\n$ tsimctl batch --atomic %s   # fails at op 1; r3 is rolled back\n' "$work/batch.json"
"$bin/tsimctl" batch --atomic "$work/batch.json" || echo "(exit status $?)"
show "$bin/tsimctl" ns list
show "$bin/tsimctl" ns del "${prefix}r1"
show "$bin/tsimctl" ns del "${prefix}r2"

# The example network, its routers' namespaces prefixed so that nothing else is touched.
facts=examples/facts
show "$bin/tsimctl" net setup --facts "$facts" --prefix "$prefix" --internet
show "$bin/tsimctl" net verify --facts "$facts" --prefix "$prefix" --internet
show "$bin/tsimctl" net status
show "$bin/tsimctl" net status "${prefix}edge"
# Probes from inside the namespaces (the helper's own probes come with the probe commands).
show ip netns exec "${prefix}lab" ping -c 3 -i 0.2 -I 10.0.3.1 192.0.2.1
show ip netns exec "${prefix}lab" traceroute -I -n -q 1 -w 1 -s 10.0.3.1 192.0.2.1
# Test hosts: one behind lab, one behind edge; the first packet gets through.
show "$bin/tsimctl" host add "${prefix}web" --ip 10.0.3.100/24 --router "${prefix}lab" --tag demo
show "$bin/tsimctl" host add "${prefix}cli" --ip 192.0.2.50/24 --router "${prefix}edge" --tag demo
show "$bin/tsimctl" host add "${prefix}db" --ip 10.7.7.10/24 --router "${prefix}lab" --router-if eth1 --tag demo
show "$bin/tsimctl" host list
show ip netns exec "${prefix}cli" ping -c 1 -W 1 10.0.3.100
# The helper's own services and probes: an echo service on web, probed from cli.
show "$bin/tsimctl" svc start --ns "${prefix}web" --ip 10.0.3.100 --port 80 --tag demo
show "$bin/tsimctl" probe tcp --from "${prefix}cli" 10.0.3.100:80 -m "hello through three routers"
show "$bin/tsimctl" probe ping --from "${prefix}cli" 10.0.3.100 -c 3 -i 0.05
show "$bin/tsimctl" probe trace --from "${prefix}cli" 10.0.3.100
printf '\n$ tsimctl probe udp --from cli 10.0.3.100:53   # lab forwards no UDP to its subnet\n'
"$bin/tsimctl" probe udp --from "${prefix}cli" 10.0.3.100:53 --wait 0.3 || echo "(exit status $?)"
printf '\n$ tsimctl probe udp --from cli 10.0.3.100:53 --explain   # which rule of which router\n'
"$bin/tsimctl" probe udp --from "${prefix}cli" 10.0.3.100:53 --wait 0.3 --explain || echo "(exit status $?)"
# The outside world: an external host at 8.8.8.8, behind the internet namespace that owns
# edge's upstream gateway 192.0.2.254. Out through edge's MASQUERADE; in through its DNAT of
# 8080 to web:80.
show "$bin/tsimctl" host add "${prefix}ext" --ip 8.8.8.8/32 --internet --tag demo
show "$bin/tsimctl" probe trace --from "${prefix}web" 8.8.8.8
show "$bin/tsimctl" probe ping --from "${prefix}web" 8.8.8.8 -c 2 -i 0.05
show "$bin/tsimctl" probe tcp --from "${prefix}ext" 192.0.2.1:8080 -m "from the internet, DNATed"
printf '\n$ tsimctl probe ping --from ext 10.0.3.100   # the inside is not routed from outside\n'
"$bin/tsimctl" probe ping --from "${prefix}ext" 10.0.3.100 -c 1 -W 0.3 || echo "(exit status $?)"
# What edge's firewall logged (its LOG rule for dropped input, applied as NFLOG).
show "$bin/tsimctl" probe tcp --from "${prefix}cli" 192.0.2.1:23 --wait 0.2 || echo "(exit status $?)"
show "$bin/tsimctl" net log "${prefix}edge"
show "$bin/tsimctl" svc list
show ip -n "${prefix}lab" -br addr show eth1     # 10.7.7.1 was added for db
show "$bin/tsimctl" host del "${prefix}db"
show ip -n "${prefix}lab" -br addr show eth1     # and went with it
show "$bin/tsimctl" host clean --tag demo
show "$bin/tsimctl" net setup --facts "$facts" --prefix "$prefix" --internet   # the same: nothing to do
show "$bin/tsimctl" net setup --facts "$facts" --prefix "$prefix"   # without the outside world: it alone goes
show "$bin/tsimctl" net teardown
show "$bin/tsimctl" status
kill -TERM "$helper_pid"; wait "$helper_pid"; helper_pid=
printf '\nhelper stopped cleanly; namespaces left: %s\n' "$(ip netns list | grep -c "^$prefix" || true)"
