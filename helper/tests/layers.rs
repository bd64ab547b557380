//! The helper's folders are layers, and a layer uses only the layers before it: this test
//! reads every source file and fails on any `crate::` path from a lower layer to a higher
//! one (so no circle of imports between folders can exist). Needs no root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A file's layer is its top folder under `src/` (or its own name
/// for a top-level file).
const LAYERS: &[&str] = &[
    "base", "pure", "kernel", "managed", "txn", "ops", "serve", "daemon",
];

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == top)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line, without a `//` comment (doc links name modules without using them).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(i) => &line[..i],
        None => line,
    }
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules named by `crate::` paths in `text`, with the line they are on;
/// a grouped `use crate::{a::x, b}` names `a` and `b`.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().map(code).collect();
    let joined = lines.join("\n");
    let line_of = |pos: usize| joined[..pos].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = joined[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `tsim_protocol::crate::` cannot occur; skip identifiers that end in `crate`.
        if at > 0 {
            let before = joined.as_bytes()[at - 1];
            if before.is_ascii_alphanumeric() || before == b'_' {
                continue;
            }
        }
        let rest = &joined[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        start = false;
                        let name = ident_at(&group[j..]);
                        if !name.is_empty() {
                            found.push((line_of(from + 1 + j), name.to_owned()));
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.push((line_of(at), name.to_owned()));
            }
        }
    }
    found
}

#[test]
fn no_folder_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut seen_layers = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a path")
            .trim_end_matches(".rs");
        let Some(own) = layer_of(top) else {
            // lib.rs and main.rs sit above every layer.
            assert!(
                matches!(top, "lib" | "main"),
                "{} is in no layer: add its folder to LAYERS (and to ARCHITECTURE.md)",
                rel.display()
            );
            continue;
        };
        seen_layers.insert(own);
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (line, name) in crate_paths(&text) {
            match layer_of(&name) {
                Some(used) if used > own => violations.push(format!(
                    "{}:{line}: `{top}` uses `crate::{name}`, a layer above it",
                    rel.display()
                )),
                Some(_) => {}
                // The re-exports in lib.rs (`crate::config`, ...) lead into a lower layer
                // anyway; anything else is a module this test does not know.
                None if matches!(name.as_str(), "config" | "payload" | "network" | "codec") => {}
                None => violations.push(format!(
                    "{}:{line}: `crate::{name}` is in no known layer",
                    rel.display()
                )),
            }
        }
    }
    assert_eq!(
        seen_layers.len(),
        LAYERS.len(),
        "some layer has no file: the test reads the wrong tree"
    );
    assert!(
        violations.is_empty(),
        "imports against the layers (order: {}):\n{}",
        LAYERS.join(" < "),
        violations.join("\n")
    );
}

#[test]
fn the_parser_sees_grouped_and_plain_paths() {
    let text = "use crate::kernel::netns;\nuse crate::{\n    base::error::X,\n    managed::{a, b},\n};\n// crate::serve in a comment\nlet x = crate::ops::f();\n";
    let names: Vec<(usize, String)> = crate_paths(text);
    assert_eq!(
        names,
        vec![
            (1, "kernel".to_owned()),
            (3, "base".to_owned()),
            (4, "managed".to_owned()),
            (7, "ops".to_owned()),
        ]
    );
}
