//! What the fuzz targets share: the round-trip checks of wire values, the generator of
//! structured requests, and the reading of fuzz input as facts text.
//!
//! The model of the firewall tools that the `payload` target checks the screen against is
//! [`payload_model`].
//!
//! Every check here panics when an invariant breaks, which libFuzzer reports as a crash.

pub mod payload_model;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Result as ArbResult, Unstructured};
use rmpv::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tsim_protocol::Op;
use tsim_protocol::frame::{body_len, decode_body, encode_body, encode_frame};
use tsim_protocol::version::HEADER_LEN;

/// Whether [`round_trip`] demands `decode(encode(x)) == x` of the first decoded value too
/// (`TSIM_FUZZ_STRICT=1`). By default a value may be normalised by its first encoding (a
/// sysctl key given with slashes goes out with dots) and must be exact from then on.
fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("TSIM_FUZZ_STRICT").is_some_and(|v| v == "1"))
}

/// Checks that a decoded value survives the wire: its encoding decodes, the value decoded
/// from it encodes to the same bytes and decodes back equal (and equals the original value
/// under `TSIM_FUZZ_STRICT=1`), and a frame of it announces its body's length.
pub fn round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let body = encode_body(value).expect("a decoded value encodes");
    let again: T = decode_body(&body)
        .unwrap_or_else(|e| panic!("the encoding of {value:?} does not decode: {}", cause(&e)));
    if strict() {
        assert_eq!(&again, value, "decode(encode(x)) differs from x");
    }
    let body2 = encode_body(&again).expect("a decoded value encodes");
    assert_eq!(
        body, body2,
        "the encoding changes across a round trip of {value:?}"
    );
    let third: T = decode_body(&body2).expect("the same bytes decoded before");
    assert_eq!(
        third, again,
        "a canonical value does not round-trip exactly"
    );
    let frame = encode_frame(value, u32::MAX).expect("a frame within 4 GiB");
    let header: [u8; HEADER_LEN] = frame[..HEADER_LEN].try_into().expect("a header");
    assert_eq!(
        body_len(header, u32::MAX).expect("no limit"),
        frame.len() - HEADER_LEN
    );
    assert_eq!(
        &frame[HEADER_LEN..],
        &body[..],
        "frame body differs from the body"
    );
}

/// Checks that a value survives JSON (the helper's on-disk records, such as `net.json`).
pub fn json_round_trip<T>(value: &T)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let text = serde_json::to_vec(value).expect("a value encodes as JSON");
    let again: T = match serde_json::from_slice(&text) {
        Ok(v) => v,
        Err(e) => panic!(
            "the JSON of {value:?} does not decode: {e} ({})",
            String::from_utf8_lossy(&text)
        ),
    };
    assert_eq!(&again, value, "from_json(to_json(x)) differs from x");
}

/// An error with its causes, for panic messages.
pub fn cause(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Fuzz input as facts text, the way `facts::raw::read_text` reads a file: UTF-8, or
/// latin-1 when it is not valid UTF-8.
pub fn text(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(t) => t.to_owned(),
        Err(_) => data.iter().map(|&b| char::from(b)).collect(),
    }
}

/// A file in the temporary directory, private to this process, for the parsers that only
/// take a path (JSON facts).
pub fn scratch_file(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tsim-fuzz-{}.{ext}", std::process::id()))
}

/// Splits compile input into router files: chunks separated by NUL bytes, each a first line
/// naming the router and the facts text after it.
pub fn routers(data: &[u8]) -> Vec<(String, PathBuf, String)> {
    data.split(|&b| b == 0)
        .take(16)
        .map(|chunk| {
            let all = text(chunk);
            let (name, rest) = all.split_once('\n').unwrap_or((all.as_str(), ""));
            let name = name.trim_end_matches('\r').to_owned();
            let source = Path::new("fuzz").join(format!("{name}_facts.txt"));
            (name, source, rest.to_owned())
        })
        .collect()
}

/// Every field name of the protocol's messages, operations, results and topology, so the
/// structured generator builds maps the decoder recognises.
#[rustfmt::skip]
pub const KEYS: &[&str] = &[
    "action", "addr", "addrs", "after", "limit", "since_ms", "admin", "ageing_time", "atomic", "bridge", "bridges",
    "broadcast", "client", "code", "count", "counters", "delay_ms", "delay_us", "dev", "dport",
    "dst", "family", "from", "fwmark", "fwmask", "gateway", "hidden_end", "id", "iif",
    "interfaces", "internet", "interval_ms", "ip", "ipproto", "ipset", "iptables", "ipv6", "key", "kind",
    "lladdr", "mac", "master", "max_hops", "message", "metric", "mode", "mtu", "name",
    "nexthops", "noflush", "nomaster", "ns", "oif", "onlink", "op", "op_index", "ops", "owner",
    "payload", "peer_master", "peer_name", "peer_ns", "policy", "policy_tables", "port",
    "ports", "pref", "progress", "proto", "protocol", "rename", "router", "router_if",
    "routers", "routes", "rules", "scope", "secondaries", "secondary", "sport", "src", "subnet",
    "sysctls", "table", "tag", "timeout_ms", "to", "topology", "tos", "type", "up", "value",
    "via", "weight",
];

/// Strings that are valid somewhere in the protocol (names, addresses, named numbers), or
/// close to it.
#[rustfmt::skip]
pub const WORDS: &[&str] = &[
    "r1", "eth0", "web1", "hidden", "br0", "v1", "job-7", "..", "-x", "a/b", "eth%d",
    "10.1.1.1", "10.1.1.0/24", "0.0.0.0/0", "2001:db8::1/64", "::1", "10.1.1.1/33",
    "02:00:00:00:00:01", "main", "local", "default", "0", "100", "80", "1000-2000", "2000-1000",
    "22,80/tcp,53/udp", "net.ipv4.ip_forward", "net/ipv4/ip_forward",
    "net.ipv4.conf.all.rp_filter", "net/ipv4/conf/eth0.5/rp_filter",
    "net.ipv6.conf.x.disable_ipv6", "1", "0 2147483647", "global", "link", "host", "unicast",
    "blackhole", "static", "kernel", "tcp", "udp", "icmp", "inet", "inet6", "lookup",
    "prohibit", "filter", "mangle", "nat", "request", "hello", "cancel", "permanent",
    "reachable", "*filter\nCOMMIT\n", "hosts0", "internet", "8.8.8.8/32",
];

/// A sysctl key put together from its parts, with dots or slashes between them, and an
/// interface part that may hold dots of its own.
pub fn sysctl_key(u: &mut Unstructured<'_>) -> ArbResult<String> {
    const FAMILIES: &[&str] = &["ipv4", "ipv6", "core"];
    const LEAVES: &[&str] = &[
        "rp_filter",
        "arp_ignore",
        "arp_announce",
        "accept_local",
        "forwarding",
        "disable_ipv6",
        "ip_forward",
        "icmp_ratelimit",
    ];
    const DEV_CHARS: &[u8] = b"ae0._@-";
    let sep = if u.arbitrary()? { "/" } else { "." };
    let dev: String = match u.choose_index(4)? {
        0 => "all".to_owned(),
        1 => "eth0.5".to_owned(),
        _ => {
            let n = u.int_in_range(1..=6)?;
            (0..n)
                .map(|_| u.choose(DEV_CHARS).map(|&b| char::from(b)))
                .collect::<ArbResult<_>>()?
        }
    };
    let mut parts = vec!["net", u.choose(FAMILIES)?];
    if u.ratio(7, 8)? {
        parts.push("conf");
        parts.push(&dev);
    }
    parts.push(u.choose(LEAVES)?);
    Ok(parts.join(sep))
}

/// How deep the generator nests arrays and maps.
const MAX_DEPTH: u32 = 4;

/// A MessagePack value shaped like the protocol's: maps keyed by known field names, holding
/// known words, numbers and nested values.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<Value> {
    let choices = if depth >= MAX_DEPTH { 9 } else { 12 };
    Ok(match u.choose_index(choices)? {
        0 => Value::Nil,
        1 => Value::Boolean(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<u64>()?),
        3 => Value::from(u.arbitrary::<i64>()?),
        4 => Value::from(u.int_in_range(0u64..=300)?),
        5 => Value::from(*u.choose(WORDS)?),
        6 => Value::from(u.arbitrary::<String>()?),
        7 => Value::Binary(u.arbitrary::<Vec<u8>>()?),
        8 => Value::from(sysctl_key(u)?),
        9 | 10 => map(u, depth + 1)?,
        _ => {
            let n = u.int_in_range(0..=4)?;
            Value::Array(
                (0..n)
                    .map(|_| value(u, depth + 1))
                    .collect::<ArbResult<_>>()?,
            )
        }
    })
}

fn key(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    Ok(if u.ratio(1, 16)? {
        Value::from(u.arbitrary::<String>()?)
    } else {
        Value::from(*u.choose(KEYS)?)
    })
}

fn map(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<Value> {
    let n = u.int_in_range(0..=8)?;
    let entries = (0..n)
        .map(|_| Ok((key(u)?, value(u, depth)?)))
        .collect::<ArbResult<_>>()?;
    Ok(Value::Map(entries))
}

/// The operations of the golden requests (every operation, most optional fields set) and of
/// the slash-separated sysctl key seed, as the templates that [`op`] mutates.
fn templates() -> &'static [Value] {
    static TEMPLATES: OnceLock<Vec<Value>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let bodies: [&[u8]; 6] = [
            include_bytes!("../seeds/request/client-request-basic.msgpack"),
            include_bytes!("../seeds/request/client-request-net.msgpack"),
            include_bytes!("../seeds/request/client-request-netdef.msgpack"),
            include_bytes!("../seeds/request/client-request-host.msgpack"),
            include_bytes!("../seeds/request/client-request-svc.msgpack"),
            include_bytes!("../seeds/request/sysctl-slashes.msgpack"),
        ];
        let mut ops = Vec::new();
        for body in bodies {
            let value: Value = decode_body(body).expect("a golden body");
            let Value::Map(entries) = value else {
                panic!("a golden body is a map")
            };
            for (k, v) in entries {
                if let (Some("ops"), Value::Array(list)) = (k.as_str(), v) {
                    ops.extend(list);
                }
            }
        }
        ops
    })
}

/// Changes one thing somewhere inside `v`: a value replaced, an entry or element removed or
/// added, or the same one level deeper.
pub fn mutate(v: &mut Value, u: &mut Unstructured<'_>, depth: u32) -> ArbResult<()> {
    match v {
        Value::Map(entries) if !entries.is_empty() => {
            let i = u.choose_index(entries.len())?;
            match u.choose_index(5)? {
                0 => entries[i].1 = value(u, depth + 1)?,
                1 => {
                    entries.remove(i);
                }
                2 => entries.push((key(u)?, value(u, depth + 1)?)),
                _ => mutate(&mut entries[i].1, u, depth + 1)?,
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = u.choose_index(items.len())?;
            match u.choose_index(4)? {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => mutate(&mut items[i], u, depth + 1)?,
            }
        }
        Value::String(text) if u.arbitrary()? => {
            if let Some(text) = text.as_str() {
                *v = Value::from(edit(text, u)?);
            }
        }
        other => *other = value(u, depth)?,
    }
    Ok(())
}

/// Characters at the edges of the names' and addresses' grammars.
const EDGE_CHARS: &[char] = &[
    '.', '/', '-', ':', '%', '@', '_', ' ', '\t', '\n', '\0', 'é', '0', '9', 'a', 'Z',
];

/// A string with one to three characters inserted, removed or replaced.
fn edit(text: &str, u: &mut Unstructured<'_>) -> ArbResult<String> {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..u.int_in_range(1..=3)? {
        let at = u.int_in_range(0..=chars.len())?;
        let c = *u.choose(EDGE_CHARS)?;
        match u.choose_index(3)? {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => chars.push(c),
        }
    }
    Ok(chars.into_iter().collect())
}

/// One operation: mostly a golden operation with a few changes (so its required fields are
/// there and each field's validation is reached), otherwise `"op"` naming an operation and
/// random fields.
pub fn op(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    if u.ratio(3, 4)? {
        let mut op = u.choose(templates())?.clone();
        for _ in 0..u.int_in_range(1..=3)? {
            mutate(&mut op, u, 1)?;
        }
        return Ok(op);
    }
    let name = if u.ratio(1, 32)? {
        Value::from(u.arbitrary::<String>()?)
    } else {
        Value::from(*u.choose(Op::NAMES)?)
    };
    let mut entries = vec![(Value::from("op"), name)];
    let n = u.int_in_range(0..=8)?;
    for _ in 0..n {
        entries.push((key(u)?, value(u, 1)?));
    }
    if u.ratio(1, 8)? {
        let i = u.choose_index(entries.len())?;
        let j = u.choose_index(entries.len())?;
        entries.swap(i, j);
    }
    Ok(Value::Map(entries))
}

/// A `request` message of generated operations, with its envelope sometimes broken.
pub fn request(u: &mut Unstructured<'_>) -> ArbResult<Value> {
    let mut entries = vec![
        (Value::from("type"), Value::from("request")),
        (Value::from("id"), Value::from(u.arbitrary::<u64>()?)),
    ];
    let n = u.int_in_range(0..=4)?;
    let ops = (0..n).map(|_| op(u)).collect::<ArbResult<Vec<_>>>()?;
    entries.push((Value::from("ops"), Value::Array(ops)));
    if u.arbitrary()? {
        entries.push((Value::from("atomic"), Value::Boolean(u.arbitrary()?)));
    }
    if u.arbitrary()? {
        entries.push((Value::from("progress"), Value::Boolean(u.arbitrary()?)));
    }
    if u.ratio(1, 8)? {
        let i = u.choose_index(entries.len())?;
        entries[i].1 = value(u, 1)?;
    }
    if u.ratio(1, 16)? {
        entries.push((key(u)?, value(u, 1)?));
    }
    Ok(Value::Map(entries))
}

/// Encodes a generated value as a frame body.
pub fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
    out
}
