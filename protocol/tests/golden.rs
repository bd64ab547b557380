//! Golden bytes for every message kind, decoding compatibility, and operation name checks.
//!
//! The hex strings below are the wire format: a change to any of them is a protocol change
//! and must come with a version bump and an update of PROTOCOL.md.

use tsim_protocol::error::{ErrorCode, WireError};
use tsim_protocol::frame::{decode_body, encode_body, encode_frame};
use tsim_protocol::ops::*;
use tsim_protocol::version::{self, ProtocolVersion};
use tsim_protocol::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn name(s: &str) -> NsName {
    s.parse().unwrap()
}

/// Checks that `msg` encodes to exactly `golden` and that `golden` decodes back to `msg`.
fn golden_client(msg: ClientMessage, golden: &str) {
    assert_eq!(
        hex(&encode_body(&msg).unwrap()),
        golden,
        "encoding of {msg:?}"
    );
    assert_eq!(decode_body::<ClientMessage>(&unhex(golden)).unwrap(), msg);
}

fn golden_server(msg: ServerMessage, golden: &str) {
    assert_eq!(
        hex(&encode_body(&msg).unwrap()),
        golden,
        "encoding of {msg:?}"
    );
    assert_eq!(decode_body::<ServerMessage>(&unhex(golden)).unwrap(), msg);
}

fn sample_messages() -> (Vec<ClientMessage>, Vec<ServerMessage>) {
    let client = vec![
        ClientMessage::Hello(Hello {
            protocol: version::CURRENT,
            client: "tsimctl/0.1.0".into(),
        }),
        ClientMessage::Request(Request {
            id: 1,
            ops: vec![
                Op::Ping(Ping::default()),
                Op::Ping(Ping {
                    delay_ms: Some(250),
                }),
                Op::Status(Status {}),
                Op::NsCreate(NsCreate {
                    name: name("r1"),
                    tag: Some("job-7".parse().unwrap()),
                }),
                Op::NsDelete(NsDelete { name: name("r1") }),
                Op::NsList(NsList {}),
            ],
            atomic: true,
            progress: false,
        }),
        ClientMessage::Cancel(Cancel { id: 1 }),
    ];
    let server = vec![
        ServerMessage::Welcome(Welcome {
            protocol: ProtocolVersion { major: 1, minor: 0 },
            helper_version: "0.1.0".into(),
            limits: Limits {
                max_frame: 16777216,
                max_ops: 10000,
                max_in_flight: 64,
                max_connections: 256,
            },
            peer: PeerInfo {
                uid: 1000,
                gid: 1000,
                pid: 4242,
                authorized: true,
                admin: false,
            },
        }),
        ServerMessage::Response(Response {
            id: 1,
            results: vec![
                OpResult::Ping(Pong {}),
                OpResult::NsCreate(NsCreated { name: name("r1") }),
                OpResult::NsDelete(NsDeleted { name: name("r1") }),
                OpResult::NsList(NsListing {
                    namespaces: vec![NsInfo {
                        name: name("r2"),
                        owner_uid: 0,
                        tag: None,
                        created_ms: 1_700_000_000_000,
                    }],
                }),
                OpResult::Status(StatusReport {
                    helper_version: "0.1.0".into(),
                    protocol: version::CURRENT,
                    pid: 1,
                    uptime_ms: 5,
                    state_dir: "/run/tsim".into(),
                    hidden_ns: "tsim-hidden".into(),
                    namespaces: 2,
                    connections: 1,
                    in_flight: 1,
                    requests: 3,
                    ops: vec![OpStats {
                        op: "ping".into(),
                        count: 3,
                        errors: 0,
                        p50_us: 4,
                        p90_us: 5,
                        p99_us: 6,
                        max_us: 7,
                    }],
                }),
            ],
            error: None,
        }),
        ServerMessage::Response(Response {
            id: 2,
            results: vec![],
            error: Some(WireError::new(ErrorCode::NotManaged, "x").at(3)),
        }),
        ServerMessage::Event(Event {
            id: 2,
            done: 1,
            total: 4,
            stage: "ns_create".into(),
        }),
        ServerMessage::Error(WireError::new(ErrorCode::PermissionDenied, "no")),
    ];
    (client, server)
}

const GOLDEN_CLIENT: [&str; 3] = [
    "83a474797065a568656c6c6fa870726f746f636f6c920100a6636c69656e74ad7473696d63746c2f302e312e30",
    "85a474797065a772657175657374a2696401a36f70739681a26f70a470696e6782a26f70a470696e67a864656c61795f6d73ccfa81a26f70a673746174757383a26f70a96e735f637265617465a46e616d65a27231a3746167a56a6f622d3782a26f70a96e735f64656c657465a46e616d65a2723181a26f70a76e735f6c697374a661746f6d6963c3a870726f6772657373c2",
    "82a474797065a663616e63656ca2696401",
];

const GOLDEN_SERVER: [&str; 5] = [
    "85a474797065a777656c636f6d65a870726f746f636f6c920100ae68656c7065725f76657273696f6ea5302e312e30a66c696d69747384a96d61785f6672616d65ce01000000a76d61785f6f7073cd2710ad6d61785f696e5f666c6967687440af6d61785f636f6e6e656374696f6e73cd0100a47065657285a3756964cd03e8a3676964cd03e8a3706964cd1092aa617574686f72697a6564c3a561646d696ec2",
    "83a474797065a8726573706f6e7365a2696401a7726573756c74739581a26f70a470696e6782a26f70a96e735f637265617465a46e616d65a2723182a26f70a96e735f64656c657465a46e616d65a2723182a26f70a76e735f6c697374aa6e616d657370616365739183a46e616d65a27232a96f776e65725f75696400aa637265617465645f6d73cf0000018bcfe568008ca26f70a6737461747573ae68656c7065725f76657273696f6ea5302e312e30a870726f746f636f6c920100a370696401a9757074696d655f6d7305a973746174655f646972a92f72756e2f7473696da968696464656e5f6e73ab7473696d2d68696464656eaa6e616d6573706163657302ab636f6e6e656374696f6e7301a9696e5f666c6967687401a8726571756573747303a36f70739187a26f70a470696e67a5636f756e7403a66572726f727300a67035305f757304a67039305f757305a67039395f757306a66d61785f757307",
    "84a474797065a8726573706f6e7365a2696402a7726573756c747390a56572726f7283a4636f6465ab6e6f745f6d616e61676564a76d657373616765a178a86f705f696e64657803",
    "85a474797065a56576656e74a2696402a4646f6e6501a5746f74616c04a57374616765a96e735f637265617465",
    "83a474797065a56572726f72a4636f6465b17065726d697373696f6e5f64656e696564a76d657373616765a26e6f",
];

#[test]
fn golden_bytes_of_every_message_kind() {
    let (client, server) = sample_messages();
    for (msg, golden) in client.into_iter().zip(GOLDEN_CLIENT) {
        golden_client(msg, golden);
    }
    for (msg, golden) in server.into_iter().zip(GOLDEN_SERVER) {
        golden_server(msg, golden);
    }
}

#[test]
fn hello_frame_matches_protocol_md() {
    // The byte-level example in PROTOCOL.md, header included.
    let hello = ClientMessage::Hello(Hello {
        protocol: version::CURRENT,
        client: "tsimctl/0.1.0".into(),
    });
    let frame = encode_frame(&hello, version::DEFAULT_MAX_FRAME).unwrap();
    let expected = "0000002d83a474797065a568656c6c6fa870726f746f636f6c920100a6636c69656e74ad7473696d63746c2f302e312e30";
    assert_eq!(hex(&frame), expected);
    let doc = include_str!("../PROTOCOL.md");
    let example = doc
        .split("### Byte-level example")
        .nth(1)
        .expect("example section");
    let block = example.split("```").nth(1).expect("code block");
    let shown: String = block
        .lines()
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect();
    assert_eq!(
        shown, expected,
        "PROTOCOL.md must show the Hello frame bytes"
    );
}

#[test]
fn every_op_name_matches_its_serde_tag() {
    let (client, _) = sample_messages();
    let ClientMessage::Request(req) = &client[1] else {
        unreachable!()
    };
    let mut seen: Vec<&str> = Vec::new();
    for op in &req.ops {
        let value: rmpv::Value = decode_body(&encode_body(op).unwrap()).unwrap();
        let tag = value.as_map().unwrap()[0].1.as_str().unwrap().to_owned();
        assert_eq!(tag, op.name());
        seen.push(op.name());
    }
    for name in Op::NAMES {
        assert!(seen.contains(&name), "sample request lacks op {name}");
    }
}

#[test]
fn protocol_md_documents_every_code_and_op() {
    let doc = include_str!("../PROTOCOL.md");
    for code in ErrorCode::ALL {
        assert!(
            doc.contains(&format!("`{}`", code.as_str())),
            "PROTOCOL.md lacks code {code}"
        );
        let wire: String = rmp_decode_str(&encode_body(&code).unwrap());
        assert_eq!(wire, code.as_str());
    }
    for op in Op::NAMES {
        assert!(
            doc.contains(&format!("`{op}`")),
            "PROTOCOL.md lacks op {op}"
        );
    }
}

fn rmp_decode_str(bytes: &[u8]) -> String {
    decode_body::<String>(bytes).unwrap()
}

#[test]
fn newer_fields_are_ignored_by_this_version() {
    // A newer peer adds fields at every level; this version must still decode the message.
    let newer = serde_json::json!({
        "type": "request", "id": 5, "atomic": false, "deadline_ms": 100,
        "ops": [{"op": "ns_create", "name": "r9", "mtu": 9000, "labels": {"a": 1}}],
    });
    let msg: ClientMessage = decode_body(&encode_body(&newer).unwrap()).unwrap();
    let ClientMessage::Request(req) = msg else {
        panic!("not a request")
    };
    assert_eq!(
        req.ops,
        vec![Op::NsCreate(NsCreate {
            name: name("r9"),
            tag: None
        })]
    );
    assert!(!req.progress);

    let newer_hello =
        serde_json::json!({"type": "hello", "protocol": [1, 7], "client": "py", "features": ["x"]});
    let msg: ClientMessage = decode_body(&encode_body(&newer_hello).unwrap()).unwrap();
    assert_eq!(
        msg,
        ClientMessage::Hello(Hello {
            protocol: (1, 7).into(),
            client: "py".into()
        })
    );

    let newer_welcome = serde_json::json!({
        "type": "welcome", "protocol": [1, 3], "helper_version": "9", "motd": "hi",
        "limits": {"max_frame": 1, "max_ops": 2, "max_in_flight": 3, "max_connections": 4, "max_quota": 5},
        "peer": {"uid": 0, "gid": 0, "pid": 1, "authorized": true, "admin": true, "groups": [1]},
    });
    let msg: ServerMessage = decode_body(&encode_body(&newer_welcome).unwrap()).unwrap();
    assert!(matches!(msg, ServerMessage::Welcome(w) if w.protocol.minor == 3));
}

#[test]
fn integers_of_any_width_decode() {
    // Other encoders may use wider integer formats than needed: uint64 id, uint32 delay.
    let mut body = unhex(
        "84a474797065a772657175657374a26964cf0000000000000007a36f70739182a26f70a470696e67a864656c61795f6d73ce00000005a661746f6d6963c2",
    );
    let msg: ClientMessage = decode_body(&body).unwrap();
    let ClientMessage::Request(req) = msg else {
        panic!("not a request")
    };
    assert_eq!(req.id, 7);
    assert_eq!(req.ops, vec![Op::Ping(Ping { delay_ms: Some(5) })]);
    body.truncate(body.len() - 3);
    assert!(decode_body::<ClientMessage>(&body).is_err());
}

#[test]
fn invalid_names_cannot_be_decoded() {
    for bad in ["../x", "", "a/b", "a\0b", &"n".repeat(300)] {
        let op = serde_json::json!({"op": "ns_create", "name": bad});
        let err = decode_body::<Op>(&encode_body(&op).unwrap()).unwrap_err();
        let msg = std::error::Error::source(&err).unwrap().to_string();
        assert!(msg.contains("invalid namespace name"), "{msg}");
    }
}
