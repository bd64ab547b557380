//! Properties of the payload screen: for every payload it accepts, a model of the tools
//! (`fuzz/src/payload_model.rs`, shared with the fuzz target `payload`) reads the same lines
//! and words, none of them refused; and neither check ever panics.

#[path = "../../fuzz/src/payload_model.rs"]
#[allow(dead_code)]
mod payload_model;

use proptest::prelude::*;

/// Pieces that matter to the tools' splitters and to the screen's refusals, and padding that
/// brings lines to the buffers' edges.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            " ", "\t", "\n", "\"", "\\", "#", "*filter", ":INPUT ACCEPT [0:0]", "COMMIT", "[", "]",
            ":", "0", "-A", "INPUT", "-j", "-g", "--jump=", "IDLETIMER", "LED", "ACCEPT", "-M",
            "-vM", "--modp", "--object-pinned", "-m", "comment", "--comment", "add", "s", "flush",
            "create", "hash:ip", "10.0.0.1", "-file", "-f", "save", "list", "-exist", "x", "\r",
            "\0", "\u{b}", "é", "\u{a0}",
        ]).prop_map(str::to_owned),
        1 => (1usize..1100).prop_map(|n| " ".repeat(n)),
        1 => (1usize..1100).prop_map(|n| "x".repeat(n)),
        1 => (1010usize..1030).prop_map(|n| "y".repeat(n)),
        1 => (10230usize..10245).prop_map(|n| "z".repeat(n)),
        1 => (25usize..35).prop_map(|n| vec!["w"; n].join(" ")),
    ]
}

fn payload() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..40).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_screen_agrees_with_the_tools(p in payload()) {
        payload_model::agree(&p);
    }

    #[test]
    fn any_text_is_screened_without_panic(p in any::<String>()) {
        payload_model::agree(&p);
    }

    #[test]
    fn accepted_lines_keep_agreeing_at_the_buffer_edges(
        pad in 1015usize..1030,
        head in prop::sample::select(vec!["add s 10.0.0.1", "flush", "# c", "-A INPUT", "flush s \""]),
        tail in prop::sample::select(vec!["-file /x save s", "-A INPUT -j LED", "-M /x", "s", "\""]),
    ) {
        let line = format!("{head:<pad$}{tail}\n");
        payload_model::agree(&format!("create s hash:ip\n{line}"));
        let wide = format!("{head:<width$}{tail}\n", width = pad + 9216);
        payload_model::agree(&format!("*filter\n{wide}COMMIT\n"));
    }
}

/// The attacks of issue 14 and the seeds of the fuzz target agree too (they are refused).
#[test]
fn the_seeds_agree() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/payload");
    for entry in std::fs::read_dir(dir).expect("the payload seeds") {
        let bytes = std::fs::read(entry.expect("a seed").path()).expect("a seed");
        payload_model::agree(&String::from_utf8_lossy(&bytes));
    }
}

/// The model sees what the attacks of issue 14 do (so the agreement above means something):
/// the padded ipset line is two lines to it, the second `-file ... save`; the padded comment
/// is a comment and then an `IDLETIMER` rule. And the real payloads among the seeds pass.
#[test]
fn the_model_sees_the_attacks() {
    let flush = format!(
        "create s hash:ip\n{:<1022}s-file /etc/passwd save s\n",
        "flush"
    );
    let lines = payload_model::ipset_restore(flush.as_bytes());
    assert_eq!(lines.len(), 3, "{lines:?}");
    let payload_model::IpsetLine::Command(words) = &lines[2].1 else {
        panic!("{lines:?}")
    };
    assert_eq!(payload_model::ipset_danger(words).as_deref(), Some("-file"));
    assert!(tsim_helper::payload::check_ipset(&flush).is_err());

    let idle = format!("*filter\n{:<10239}-A INPUT -j IDLETIMER\nCOMMIT\n", "#");
    let lines = payload_model::iptables_restore(idle.as_bytes());
    assert_eq!(lines.len(), 4, "{lines:?}");
    let payload_model::IptablesLine::Rule(words) = &lines[2].1 else {
        panic!("{lines:?}")
    };
    assert_eq!(payload_model::iptables_danger(words).as_deref(), Some("-j"));
    assert!(tsim_helper::payload::check_iptables(&idle).is_err());

    // Counters: strtok's NULs end the counters, not the rule (the campaign's first finding was
    // this model's strtok getting it wrong).
    let counted = "*filter\n[0:0] -A INPUT -j ACCEPT\nCOMMIT\n";
    let lines = payload_model::iptables_restore(counted.as_bytes());
    let words: Vec<&[u8]> = vec![b"-A", b"INPUT", b"-j", b"ACCEPT"];
    assert!(
        matches!(&lines[1].1, payload_model::IptablesLine::Rule(w) if w.iter().map(Vec::as_slice).eq(words.iter().copied())),
        "{lines:?}"
    );
    payload_model::agree(counted);

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/seeds/payload");
    for entry in std::fs::read_dir(dir).expect("the payload seeds") {
        let path = entry.expect("a seed").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with("-iptables.txt") && name.starts_with("real-") {
            tsim_helper::payload::check_iptables(&text).unwrap();
        } else if name.ends_with("-ipset.txt") && name.starts_with("real-") {
            tsim_helper::payload::check_ipset(&text).unwrap();
        }
    }
}
