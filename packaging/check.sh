#!/usr/bin/env bash
# The packaging checks (run by scripts/test.sh, and so by CI): `make install DESTDIR=…`, the
# units (systemd-analyze verify, and the security exposure at most 5.0), sysusers.d and
# tmpfiles.d, and the Debian package built with cargo-deb and its file list.
# The socket-activation end-to-end test is tests/tests/systemd.rs (cargo test).
# The filters of the unit are checked against a real workload under strace (syscalls.sh,
# root only). Installs cargo-deb and the Debian tools it lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
need make make
need dpkg-deb dpkg
need gzip gzip
need file file
command -v cargo-deb >/dev/null 2>&1 || {
  echo "packaging: installing cargo-deb" >&2
  cargo install --quiet --locked cargo-deb --version 3.8.0
}

work=$(mktemp -d /tmp/tsim-packaging.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "packaging: $*" >&2; exit 1; }

echo "-- make install DESTDIR=$work/root"
make --quiet install DESTDIR="$work/root" >/dev/null
root=$work/root
for f in usr/bin/tsim-helper usr/bin/tsimctl \
  usr/lib/systemd/system/tsim-helper.service usr/lib/systemd/system/tsim-helper.socket \
  usr/lib/sysusers.d/tsim-helper.conf usr/lib/tmpfiles.d/tsim-helper.conf \
  usr/share/man/man1/tsimctl.1.gz usr/share/man/man1/tsimctl-host-add.1.gz \
  usr/share/man/man8/tsim-helper.8.gz \
  usr/share/bash-completion/completions/tsimctl usr/share/zsh/vendor-completions/_tsimctl \
  usr/share/fish/vendor_completions.d/tsimctl.fish \
  usr/share/doc/tsim-helper/README.md usr/share/doc/tsim-helper/LICENSE; do
  [ -s "$root/$f" ] || fail "make install did not install $f"
done
"$root/usr/bin/tsimctl" --version >/dev/null
# The CLI ships statically linked (it starts without the dynamic loader: see the Makefile).
file -b "$root/usr/bin/tsimctl" | grep -q "statically linked" || fail "tsimctl is not statically linked"
# The test-only hooks (helper/src/base/test_hooks.rs and the --test-* options) exist only in debug
# builds; the installed (release) binary must carry none of them.
if grep -aqE 'TSIM_TEST_PANIC|--test-[a-z-]+' "$root/usr/bin/tsim-helper"; then
  fail "the installed tsim-helper carries a test-only hook"
fi
man -l "$root/usr/share/man/man8/tsim-helper.8.gz" >/dev/null 2>&1 || [ ! -x "$(command -v man)" ] ||
  fail "tsim-helper.8 does not render"

echo "-- systemd-analyze verify"
# verify wants the ExecStart binary where the unit says: point it at the installed one.
mkdir "$work/units"
sed "s|/usr/bin/tsim-helper|$root/usr/bin/tsim-helper|" packaging/systemd/tsim-helper.service >"$work/units/tsim-helper.service"
cp packaging/systemd/tsim-helper.socket "$work/units/"
if command -v man >/dev/null 2>&1; then
  # Documentation= must name the man pages we install.
  MANPATH="$root/usr/share/man" systemd-analyze verify "$work/units/tsim-helper.socket" "$work/units/tsim-helper.service"
else
  systemd-analyze verify --man=no "$work/units/tsim-helper.socket" "$work/units/tsim-helper.service"
fi

echo "-- systemd-analyze security (exposure at most 5.0)"
systemd-analyze security --offline=true --threshold=50 packaging/systemd/tsim-helper.service | tail -1
# Mount-namespace sandboxing would hide the helper's /run/netns entries from everyone else.
if grep -Eq '^(ProtectSystem|ProtectHome|PrivateTmp|PrivateDevices|PrivateMounts|ProtectKernelTunables|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups|ProtectProc|ProcSubset|ProtectHostname|ReadWritePaths|ReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem|IPAddressDeny)=' packaging/systemd/tsim-helper.service; then
  fail "tsim-helper.service sets an option that gives it a mount namespace (or filters its traffic)"
fi

echo "-- the unit's filters against what the helper really calls"
if [ "$(id -u)" -eq 0 ]; then
  packaging/syscalls.sh "$root/usr/bin"
elif [ "${TSIM_REQUIRE_PRIV_TESTS:-}" = 1 ]; then
  fail "the system call check needs root (TSIM_REQUIRE_PRIV_TESTS=1)"
else
  echo "skipped: needs root"
fi

echo "-- systemd-sysusers and systemd-tmpfiles"
systemd-sysusers --dry-run "$PWD"/packaging/sysusers.d/tsim-helper.conf
mkdir -p "$work/sysroot/etc"
systemd-sysusers --root="$work/sysroot" "$PWD"/packaging/sysusers.d/tsim-helper.conf
grep -q '^tsim-users:' "$work/sysroot/etc/group" || fail "sysusers did not create tsim-users"
systemd-tmpfiles --root="$work/sysroot" --create "$PWD"/packaging/tmpfiles.d/tsim-helper.conf
gid=$(awk -F: '$1 == "tsim-users" {print $3}' "$work/sysroot/etc/group")
[ "$(stat -c '%a %u %g' "$work/sysroot/run/tsim")" = "750 0 $gid" ] ||
  fail "/run/tsim is $(stat -c '%a %u %g' "$work/sysroot/run/tsim"), not 750 0 $gid"

echo "-- the Debian package"
make --quiet deb >/dev/null
deb=$(ls -t target/debian/tsim-helper_*.deb | head -1)
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' | grep -v '/$' | sort >"$work/deb-files"
(cd "$root" && find . -type f | sed 's|^\.||' | sort) | sed 's|/usr/share/doc/tsim-helper/LICENSE|/usr/share/doc/tsim-helper/copyright|' | sort >"$work/installed-files"
if ! diff -u "$work/installed-files" "$work/deb-files"; then
  fail "the .deb does not hold what make install installs (- make install, + .deb)"
fi
info=$(dpkg-deb -I "$deb")
grep -q 'Depends:.*iptables' <<<"$info" || fail "the .deb does not depend on iptables"
for script in postinst prerm postrm; do
  dpkg-deb -I "$deb" "$script" >/dev/null || fail "the .deb has no $script"
done
echo "$deb: $(wc -l <"$work/deb-files") files, the same as make install"
