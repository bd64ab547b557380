#!/usr/bin/env bash
# Checks the service unit's system call, address family and namespace filters against what
# the helper (and the tools it runs) really use: runs a workload under strace (the 10-router
# test network with its firewalls and sets, hosts from the pool and made fresh, echo services,
# echo, ping and trace probes, verify, status, teardown) and fails if anything it did would be refused by the unit.
# Needs root (it creates namespaces); run by packaging/check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=packaging/systemd/tsim-helper.service
bin=${1:-target/release}
source scripts/deps.sh
need strace strace

work=$(mktemp -d /tmp/tsim-syscalls.XXXXXX)
prefix="sc$$-"
pid=
cleanup() {
  if [ -n "$pid" ]; then pkill -KILL -P "$pid" || true; kill "$pid" 2>/dev/null || true; fi
  for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix" || true); do ip netns del "$ns" || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export TSIM_SOCKET=$work/helper.sock
strace -f -qq -o "$work/trace" "$bin/tsim-helper" --socket "$TSIM_SOCKET" --state-dir "$work/state" \
  --group 0 --hidden-ns "${prefix}hidden" --pool-prefix "${prefix}pool-" --pool-size 2 --log text 2>"$work/log" &
pid=$!
for _ in $(seq 200); do [ -S "$TSIM_SOCKET" ] && break; sleep 0.05; done
ctl() { "$bin/tsimctl" "$@" >/dev/null 2>&1 || { echo "syscalls: tsimctl $* failed" >&2; exit 1; }; }
facts=tests/data/facts10/raw
ctl ping
ctl net setup --facts "$facts" --prefix "$prefix"
sleep 0.5 # the pool fills
ctl host add "${prefix}h1" --ip 10.1.10.50/24 --router "${prefix}hq-lab" --secondary 192.0.2.9/32
ctl host add "${prefix}h2" --ip 10.77.0.5/24 --router "${prefix}hq-gw" --router-if eth1
ctl host add "${prefix}h3" --ip 10.1.10.51/24 --router "${prefix}hq-lab"
ctl svc start --ns "${prefix}h3" --ip 10.1.10.51 --port 8080
ctl svc start --ns "${prefix}h3" --ip 10.1.10.51 --port 5353 --proto udp
ctl probe tcp --from "${prefix}h1" 10.1.10.51:8080
ctl probe udp --from "${prefix}h1" 10.1.10.51:5353
ctl probe ping --from "${prefix}h1" 10.1.10.51 -c 2 -i 0.05
ctl probe trace --from "${prefix}h1" 10.1.10.51
ctl probe trace --from "${prefix}h1" 10.1.10.51 --udp
ctl probe reach --from "${prefix}h1" 10.2.1.1 -p 22,10000,53/udp -w 0.2
"$bin/tsimctl" net verify --facts "$facts" --prefix "$prefix" >/dev/null 2>&1 || true
ctl --json net status
ctl host del "${prefix}h1"
ctl net teardown
ctl status
pkill -TERM -P "$pid" # the helper: strace -o blocks fatal signals for itself
wait "$pid" || true
pid=

# What the unit allows, line by line as systemd reads them.
expand() {
  systemd-analyze syscall-filter "$1" | awk 'NR > 1 && $1 !~ /^#/ && NF {print $1}' |
    while read -r x; do case "$x" in @*) expand "$x" ;; *) echo "$x" ;; esac; done
}
# systemd's rule: the first SystemCallFilter= line (an allow list here, so @default is in)
# sets the default; each later line then adds (allow) or takes away (~deny), in order.
names() { for g in "$@"; do case "$g" in @*) expand "$g" ;; *) echo "$g" ;; esac; done | sort -u; }
expand @default | sort -u >"$work/allowed"
while IFS= read -r line; do
  case "$line" in
    "~"*) names ${line#\~} >"$work/set"; comm -23 "$work/allowed" "$work/set" >"$work/next" ;;
    *) { cat "$work/allowed"; names $line; } | sort -u >"$work/next" ;;
  esac
  mv "$work/next" "$work/allowed"
done < <(sed -n 's/^SystemCallFilter=//p' "$unit")
awk '{ if ($2 ~ /^[a-z_0-9]+\(/) { split($2, a, "("); print a[1] } }' "$work/trace" | sort -u >"$work/used"
refused=$(comm -23 "$work/used" "$work/allowed")
[ -z "$refused" ] || { echo "syscalls: the unit's SystemCallFilter= would refuse: $refused" >&2; exit 1; }

families=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit")
for f in $(grep -o 'socket(AF_[A-Z0-9]*' "$work/trace" | sed 's/socket(//' | sort -u); do
  [[ " $families " == *" $f "* ]] || { echo "syscalls: RestrictAddressFamilies= would refuse $f" >&2; exit 1; }
done
namespaces=$(sed -n 's/^RestrictNamespaces=//p' "$unit")
[ "$namespaces" = "mnt net" ] || { echo "syscalls: expected RestrictNamespaces=mnt net, not $namespaces" >&2; exit 1; }
other=$(grep -oE '(unshare|setns)\([^)]*' "$work/trace" | grep -oE 'CLONE_NEW[A-Z]+' | grep -vE '^CLONE_NEW(NET|NS)$' | sort -u || true)
[ -z "$other" ] || { echo "syscalls: RestrictNamespaces=mnt net would refuse $other" >&2; exit 1; }

echo "$(wc -l <"$work/used") system calls, socket families $(grep -o 'socket(AF_[A-Z0-9]*' "$work/trace" | sed 's/socket(//' | sort -u | tr '\n' ' ')and network and mount namespaces only: all allowed by the unit"
