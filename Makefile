# Builds and installs tsim-helper without Debian packaging:
#   make                      build the binaries, man pages and shell completions
#   make install DESTDIR=…    install them, the systemd units, sysusers.d and tmpfiles.d files
#   make deb                  the Debian package (needs cargo-deb)
# After installing into / : systemd-sysusers; systemd-tmpfiles --create tsim-helper.conf;
# systemctl daemon-reload; systemctl enable --now tsim-helper.socket
PREFIX ?= /usr
DESTDIR ?=
CARGO ?= cargo
BINDIR := $(PREFIX)/bin
LIBDIR := $(PREFIX)/lib
DATADIR := $(PREFIX)/share
GEN := target/release/gen

.PHONY: all build gen install deb clean

all: build gen

# tsimctl starts once per command: relinked statically and not position-independent, it
# starts without the dynamic loader and its relocations (about 0.3 ms of each start; see
# bench/RESULTS.md). It needs no NSS (it resolves no user, group or host names).
build:
	$(CARGO) build --release --locked -p tsim-helper -p tsim-client
	$(CARGO) rustc --release --locked -p tsim-client --bin tsimctl -- \
	  -C target-feature=+crt-static -C relocation-model=static

# Man pages and completions, generated from the binaries' clap definitions.
gen:
	rm -rf $(GEN)
	$(CARGO) run --release --locked --quiet -p tsim-gen -- $(GEN)
	gzip -9n $(GEN)/man/man1/*.1 $(GEN)/man/man8/*.8

install: all
	install -D -m 755 target/release/tsim-helper $(DESTDIR)$(BINDIR)/tsim-helper
	install -D -m 755 target/release/tsimctl $(DESTDIR)$(BINDIR)/tsimctl
	install -d $(DESTDIR)$(LIBDIR)/systemd/system
	sed 's|/usr/bin/tsim-helper|$(BINDIR)/tsim-helper|' packaging/systemd/tsim-helper.service \
		> $(DESTDIR)$(LIBDIR)/systemd/system/tsim-helper.service
	chmod 644 $(DESTDIR)$(LIBDIR)/systemd/system/tsim-helper.service
	install -D -m 644 packaging/systemd/tsim-helper.socket $(DESTDIR)$(LIBDIR)/systemd/system/tsim-helper.socket
	install -D -m 644 packaging/sysusers.d/tsim-helper.conf $(DESTDIR)$(LIBDIR)/sysusers.d/tsim-helper.conf
	install -D -m 644 packaging/tmpfiles.d/tsim-helper.conf $(DESTDIR)$(LIBDIR)/tmpfiles.d/tsim-helper.conf
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/man/man1 $(GEN)/man/man1/*.1.gz
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/man/man8 $(GEN)/man/man8/*.8.gz
	install -D -m 644 $(GEN)/completions/bash/tsimctl.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/tsimctl
	install -D -m 644 $(GEN)/completions/bash/tsim-helper.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/tsim-helper
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/zsh/vendor-completions $(GEN)/completions/zsh/_tsimctl $(GEN)/completions/zsh/_tsim-helper
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/fish/vendor_completions.d $(GEN)/completions/fish/tsimctl.fish $(GEN)/completions/fish/tsim-helper.fish
	install -D -m 644 -t $(DESTDIR)$(DATADIR)/doc/tsim-helper README.md LICENSE

deb: all
	$(CARGO) deb --no-build --locked --strip -p tsim-helper

clean:
	rm -rf $(GEN)
