//! Fuzz target `facts`: the facts parsers of `tsimctl net plan` on arbitrary text.
//!
//! The input is read as a facts file is (UTF-8, else latin-1) and goes through the raw
//! section parser and the whole raw reader (`facts::parse_raw`); every line through the
//! `ip route` / `ip rule` parsers and the `ip addr` parser; the text through the firewall
//! payload transforms; and, when it looks like JSON, through the JSON facts reader. What
//! the parsers produce for the wire (routes, rules) must survive it.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tsim_facts::{self as facts, firewall, ipaddr, iproute, json, raw};
use tsim_fuzz::{round_trip, scratch_file, text};

fn lines(text: &str) {
    let numbered: Vec<(usize, String)> = text
        .lines()
        .take(512)
        .enumerate()
        .map(|(i, l)| (i + 1, l.to_owned()))
        .collect();
    let mut problems = Vec::new();
    for iface in ipaddr::parse(&numbered, &mut problems) {
        for addr in &iface.addrs {
            round_trip(&addr.cidr);
        }
    }
    for (_, line) in &numbered {
        let cleaned = iproute::clean(line);
        assert_eq!(iproute::clean(&cleaned), cleaned, "clean is not idempotent");
        if let Ok(parsed) = iproute::route(&cleaned) {
            round_trip(&parsed.route);
        }
        iproute::default_rule(line);
        if let Ok(parsed) = iproute::rule(&cleaned) {
            round_trip(&parsed.rule);
        }
        if let Some(id) = iproute::table_id(line.trim()) {
            assert_ne!(id.id(), 0, "table 0 came out of table_id");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let path = Path::new("fuzz_facts.txt");
    if let Ok(sections) = raw::parse(path, &text) {
        for section in &sections {
            let _ = section.text();
        }
    }
    if let Ok(router) = facts::parse_raw(path, "r1", &text) {
        let _ = facts::compile(&[router]);
    }
    lines(&text);
    let _ = firewall::iptables(&text);
    let _ = firewall::ipset(&text);
    if text.trim_start().starts_with('{') {
        let file = scratch_file("json");
        std::fs::write(&file, data).expect("the scratch file is writable");
        let loaded = json::load(&file, "r1");
        let _ = std::fs::remove_file(&file);
        if let Ok(router) = loaded {
            let _ = facts::compile(&[router]);
        }
    }
});
