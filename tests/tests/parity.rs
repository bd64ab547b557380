//! The clients agree with the protocol's table of operations (`define_ops!` in
//! `protocol/src/ops/mod.rs`), so that adding an operation, or a convenience method to one
//! client, cannot forget the others: the Python client's `IDEMPOTENT` set is exactly the
//! operations that change nothing (`Op::KINDS`), and the Rust async client, the Rust
//! blocking client and the Python client have a method for the same operations, and the
//! Python client has an exception class for every error code. No root needed.

use std::collections::BTreeSet;
use std::path::Path;

use tsim_client::protocol::Op;

fn source(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The operation names among the identifiers after `prefix` in `text` (method names), with
/// the Rust clients' `probe_echo` standing for `probe_tcp` and `probe_udp`.
fn methods(text: &str, prefix: &str) -> BTreeSet<String> {
    let names: BTreeSet<&str> = Op::KINDS.iter().map(|(n, _)| *n).collect();
    let mut out = BTreeSet::new();
    for rest in text.split(prefix).skip(1) {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident == "probe_echo" {
            out.insert("probe_tcp".to_string());
            out.insert("probe_udp".to_string());
        } else if names.contains(ident.as_str()) {
            out.insert(ident);
        }
    }
    out
}

#[test]
fn the_python_idempotent_set_is_the_operations_that_change_nothing() {
    let wire = source("client/python/tsim_client/_wire.py");
    let start = wire
        .find("IDEMPOTENT = frozenset(")
        .expect("_wire.py defines IDEMPOTENT");
    let end = start + wire[start..].find(')').expect("the set ends");
    let python: BTreeSet<String> = wire[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let table: BTreeSet<String> = Op::KINDS
        .iter()
        .filter(|(_, mutating)| !mutating)
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(
        python, table,
        "IDEMPOTENT in client/python/tsim_client/_wire.py against the operations define_ops! marks as not mutating"
    );
}

#[test]
fn the_clients_have_methods_for_the_same_operations() {
    let rust_async = methods(&source("client/src/client.rs"), "pub async fn ");
    let rust_blocking = methods(&source("client/src/blocking.rs"), "pub fn ");
    let python = methods(&source("client/python/tsim_client/_ops.py"), "    def ");
    assert!(rust_async.len() >= 20, "{rust_async:?}");
    assert_eq!(rust_async, rust_blocking, "client.rs against blocking.rs");
    assert_eq!(rust_async, python, "client.rs against _ops.py");
}

#[test]
fn the_python_client_has_an_exception_for_every_error_code() {
    let errors = source("client/python/tsim_client/errors.py");
    let start = errors
        .find("BY_CODE = {")
        .expect("errors.py defines BY_CODE");
    let end = start + errors[start..].find('}').expect("the map ends");
    let python: BTreeSet<String> = errors[start..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect();
    let codes: BTreeSet<String> = tsim_client::protocol::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(
        python, codes,
        "BY_CODE in client/python/tsim_client/errors.py against ErrorCode::ALL"
    );
}

#[test]
fn every_operation_is_named_once_in_the_table() {
    let names: BTreeSet<&str> = Op::KINDS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), Op::KINDS.len());
    assert_eq!(Op::NAMES.len(), Op::KINDS.len());
}
