//! Bounded decoding of a client message, and why a body did not decode: precisely enough to
//! answer it, with the request id when one can be read, the failing operation's index, and a
//! stable code.
//!
//! [`decode_client_message`] never builds a tree of the message (serde's internally tagged
//! enums buffer the whole value into one before they choose a variant, and a value can cost
//! 30 to 40 times its encoded size there). A `Walker` finds the top-level keys in place: the
//! `"type"` tag, a request's `"id"`, `"atomic"` and `"progress"`, and the header of its `"ops"`
//! array, which carries the operation count up front. A request with more than `max_ops`
//! operations is refused there, before any operation is decoded. Each operation's bytes are
//! then cut out of the body, its `"op"` name found the same way, and its arguments decoded
//! straight into the variant's struct ([`Op::decode_args`]), which skips unknown keys without
//! keeping them; the lists inside operations are capped, and share a memory budget of four
//! times the frame (`bounded.rs`). So a frame costs its size plus its decoded operations.
//!
//! [`diagnose`] is the same decoder without the operation limit, for a body already known not
//! to decode.

use std::ops::Range;

use crate::error::{ErrorCode, ProtocolError, WireError};
use crate::frame::decode_body;
use crate::message::{Cancel, ClientMessage, Hello, Request};
use crate::ops::Op;
use crate::version;
use crate::walk::{Head, Kind, WalkError, Walker};

/// What to answer to a body that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The request's id, when the body is a request whose `id` could be read; the error then
    /// goes in a `response` with that id, otherwise in a connection-level `error` frame.
    pub request_id: Option<u64>,
    /// The error to send.
    pub error: WireError,
}

/// Decodes a client message body, with at most `max_ops` operations in a request, in time and
/// memory linear in the body's size (see the module's documentation). A body that does not
/// decode gets its [`Diagnosis`]; a request over `max_ops` gets a `bad_request` one with its id
/// (when the id can be read), before any of its operations is decoded.
pub fn decode_client_message(body: &[u8], max_ops: usize) -> Result<ClientMessage, Diagnosis> {
    // The lists inside the operations may take up to 4 times the frame (plus 1 MiB for small
    // frames): plenty for real messages, and a bound for hostile ones.
    let budget = body.len().saturating_mul(4).saturating_add(1 << 20);
    crate::bounded::with_budget(budget, || Decoder { body, max_ops }.message())
}

/// Explains why `body` is not a valid client message.
pub fn diagnose(body: &[u8]) -> Diagnosis {
    match decode_client_message(body, usize::MAX) {
        Err(diagnosis) => diagnosis,
        Ok(_) => Diagnosis {
            request_id: None,
            error: WireError::new(
                ErrorCode::BadRequest,
                "The message decodes: nothing is wrong",
            ),
        },
    }
}

/// The top-level keys the decoder looks at, by their value's byte range.
#[derive(Default)]
struct Fields {
    ty: Option<Range<usize>>,
    id: Option<Range<usize>>,
    ops: Option<Range<usize>>,
    /// The `ops` array's announced length, when `ops` is an array.
    ops_len: Option<u32>,
    atomic: Option<Range<usize>>,
    progress: Option<Range<usize>>,
    /// A known key given twice.
    twice: Option<&'static str>,
}

struct Decoder<'a> {
    body: &'a [u8],
    max_ops: usize,
}

fn no_id(code: ErrorCode, message: String) -> Diagnosis {
    Diagnosis {
        request_id: None,
        error: WireError::new(code, message),
    }
}

fn not_one_value(e: WalkError) -> Diagnosis {
    no_id(
        ErrorCode::BadRequest,
        format!("The frame is not one MessagePack value: {e}"),
    )
}

impl<'a> Decoder<'a> {
    fn message(&self) -> Result<ClientMessage, Diagnosis> {
        let mut w = Walker::new(self.body);
        let entries = match w.head().map_err(not_one_value)? {
            Head::Map(n) => n,
            other => {
                // Say it is not a map only for a well-formed value.
                let mut again = Walker::new(self.body);
                again.skip(0).map_err(not_one_value)?;
                self.trailing(&again)?;
                return Err(no_id(
                    ErrorCode::BadRequest,
                    format!(
                        "A message must be a map with string keys, not {}",
                        kind(other)
                    ),
                ));
            }
        };
        let mut fields = Fields::default();
        for _ in 0..entries {
            let key = w.str_or_skip(1).map_err(not_one_value)?;
            let name: Option<&'static str> = match key {
                Some(b"type") => Some("type"),
                Some(b"id") => Some("id"),
                Some(b"ops") => Some("ops"),
                Some(b"atomic") => Some("atomic"),
                Some(b"progress") => Some("progress"),
                _ => None,
            };
            let start = w.pos();
            if name == Some("ops") {
                if let Head::Array(n) = w.head().map_err(not_one_value)? {
                    fields.ops_len = Some(n);
                    // Over the limit, in the usual key order (type and id first): refuse now,
                    // without looking at the operations at all.
                    if n as usize > self.max_ops {
                        if let Some(refusal) = self.too_many(&fields, n) {
                            return Err(refusal);
                        }
                    }
                }
                w = Walker::at(self.body, start);
            }
            let range = w.skip(1).map_err(not_one_value)?;
            let slot = match name {
                Some("type") => &mut fields.ty,
                Some("id") => &mut fields.id,
                Some("ops") => &mut fields.ops,
                Some("atomic") => &mut fields.atomic,
                Some("progress") => &mut fields.progress,
                _ => continue,
            };
            // A key given twice: the first one counts (as in the value the client built).
            if slot.is_some() {
                fields.twice = fields.twice.or(name);
            } else {
                *slot = Some(range);
            }
        }
        self.trailing(&w)?;
        let Some(ty) = fields.ty.clone().and_then(|r| self.str_at(r)) else {
            return Err(no_id(
                ErrorCode::BadRequest,
                "The message has no \"type\" string".to_owned(),
            ));
        };
        // A key given twice, `type` among them, is refused below: the first one counts, so a
        // request still answers with its id (found by fuzzing: a second `type` lost it).
        match ty {
            "hello" => self.whole::<Hello>("hello").map(ClientMessage::Hello),
            "cancel" => self.whole::<Cancel>("cancel").map(ClientMessage::Cancel),
            "request" => self.request(&fields).map(ClientMessage::Request),
            other => Err(no_id(
                ErrorCode::BadRequest,
                format!("Unknown message type {other:?}; expected one of hello, request, cancel"),
            )),
        }
    }

    fn trailing(&self, w: &Walker<'_>) -> Result<(), Diagnosis> {
        let extra = self.body.len() - w.pos();
        if extra == 0 {
            return Ok(());
        }
        Err(no_id(
            ErrorCode::BadRequest,
            format!(
                "The frame is not one MessagePack value: {extra} trailing bytes after the message"
            ),
        ))
    }

    fn str_at(&self, range: Range<usize>) -> Option<&'a str> {
        let mut w = Walker::new(&self.body[range]);
        match w.head() {
            Ok(Head::Str(a, b)) => std::str::from_utf8(&w.buf()[a..b]).ok(),
            _ => None,
        }
    }

    /// A message whose struct has all its fields at the top level, decoded from the whole body
    /// (the `"type"` key is an unknown field to it, and skipped).
    fn whole<T: serde::de::DeserializeOwned>(&self, ty: &str) -> Result<T, Diagnosis> {
        decode_body::<T>(self.body).map_err(|e| {
            no_id(
                ErrorCode::BadRequest,
                format!("Invalid {ty} message: {}", syntax(&e)),
            )
        })
    }

    /// The refusal of a request over `max_ops`, if its id can be read.
    fn too_many(&self, fields: &Fields, n: u32) -> Option<Diagnosis> {
        let ty = fields.ty.clone().and_then(|r| self.str_at(r))?;
        let id = fields.id.clone().and_then(|r| self.u64_at(r))?;
        (ty == "request").then(|| Diagnosis {
            request_id: Some(id),
            error: WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "The request has {n} operations; the limit is {}",
                    self.max_ops
                ),
            ),
        })
    }

    fn u64_at(&self, range: Range<usize>) -> Option<u64> {
        decode_body::<u64>(&self.body[range]).ok()
    }

    fn request(&self, fields: &Fields) -> Result<Request, Diagnosis> {
        let Some(id) = fields.id.clone().and_then(|r| self.u64_at(r)) else {
            return Err(no_id(
                ErrorCode::BadRequest,
                "The request has no unsigned integer \"id\"".to_owned(),
            ));
        };
        let fail = |message: String| Diagnosis {
            request_id: Some(id),
            error: WireError::new(ErrorCode::BadRequest, message),
        };
        if let Some(name) = fields.twice {
            return Err(fail(format!("Invalid request: duplicate field `{name}`")));
        }
        let flag = |range: &Option<Range<usize>>| -> Result<bool, Diagnosis> {
            match range {
                None => Ok(false),
                Some(r) => decode_body::<bool>(&self.body[r.clone()])
                    .map_err(|e| fail(format!("Invalid request: {}", syntax(&e)))),
            }
        };
        let atomic = flag(&fields.atomic)?;
        let progress = flag(&fields.progress)?;
        let Some(ops_range) = fields.ops.clone() else {
            return Err(fail("The request has no \"ops\" array".to_owned()));
        };
        let Some(count) = fields.ops_len else {
            let mut w = Walker::new(&self.body[ops_range]);
            let what = w.head().map(kind).unwrap_or("a broken value");
            return Err(fail(format!(
                "The request's \"ops\" must be an array, not {what}"
            )));
        };
        if count as usize > self.max_ops {
            return Err(fail(format!(
                "The request has {count} operations; the limit is {}",
                self.max_ops
            )));
        }
        let mut w = Walker::at(self.body, ops_range.start);
        w.head().map_err(not_one_value)?;
        // The count is at most max_ops, and at most the bytes left (checked by the walk).
        let mut ops = Vec::with_capacity((count as usize).min(self.body.len() - w.pos()));
        for index in 0..count as usize {
            let range = w.skip(2).map_err(not_one_value)?;
            let op = decode_op(&self.body[range]).map_err(|error| Diagnosis {
                request_id: Some(id),
                error: error.at(index),
            })?;
            ops.push(op);
        }
        Ok(Request {
            id,
            ops,
            atomic,
            progress,
        })
    }
}

/// Decodes one operation from its bytes, or says why it does not decode.
fn decode_op(bytes: &[u8]) -> Result<Op, WireError> {
    let mut w = Walker::new(bytes);
    let entries = match w.head() {
        Ok(Head::Map(n)) => n,
        other => {
            let what = other.map(kind).unwrap_or("a broken value");
            let msg = format!("An operation must be a map with an \"op\" key, not {what}");
            return Err(WireError::new(ErrorCode::BadRequest, msg));
        }
    };
    let mut name = None;
    for _ in 0..entries {
        let key = w.str_or_skip(3).ok().flatten();
        if key == Some(b"op") && name.is_none() {
            name = w.str_or_skip(3).ok().flatten();
        } else if w.skip(3).is_err() {
            break;
        }
    }
    let Some(name) = name.and_then(|n| std::str::from_utf8(n).ok()) else {
        let msg = "The operation has no \"op\" string naming it".to_owned();
        return Err(WireError::new(ErrorCode::BadRequest, msg));
    };
    match Op::decode_args(name, bytes) {
        Some(Ok(op)) => Ok(op),
        Some(Err(e)) => Err(WireError::new(
            ErrorCode::InvalidArgument,
            format!("{name}: {}", syntax(&e)),
        )),
        None => Err(WireError::new(
            ErrorCode::Unsupported,
            format!(
                "Unknown operation {:?}: this helper speaks protocol {}",
                shorten(name),
                version::CURRENT
            ),
        )),
    }
}

/// A client's string cut short for an error message.
fn shorten(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The message of a decoding error, without the wrapping.
fn syntax(e: &ProtocolError) -> String {
    match e {
        ProtocolError::Decode(rmp_serde::decode::Error::Syntax(message)) => message.clone(),
        ProtocolError::Decode(other) => other.to_string(),
        other => other.to_string(),
    }
}

fn kind(head: Head) -> &'static str {
    match head {
        Head::Map(_) => "a map",
        Head::Array(_) => "an array",
        Head::Str(..) => "a string",
        Head::Scalar(Kind::Nil) => "nil",
        Head::Scalar(Kind::Bool) => "a boolean",
        Head::Scalar(Kind::Int) => "an integer",
        Head::Scalar(Kind::Float) => "a float",
        Head::Scalar(Kind::Bin) => "binary data",
        Head::Scalar(Kind::Ext) => "an extension value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_body;

    fn diag(value: serde_json::Value) -> Diagnosis {
        diagnose(&encode_body(&value).unwrap())
    }

    #[test]
    fn garbage_and_wrong_shapes() {
        let d = diagnose(&[0xc1, 0x00]);
        assert_eq!(d.request_id, None);
        assert_eq!(d.error.code, ErrorCode::BadRequest);
        let d = diag(serde_json::json!([1, 2]));
        assert!(
            d.error.message.contains("not an array"),
            "{}",
            d.error.message
        );
        let d = diag(serde_json::json!({"type": "bogus"}));
        assert!(d.error.message.contains("\"bogus\""), "{}", d.error.message);
        let d = diag(serde_json::json!({"id": 3}));
        assert!(
            d.error.message.contains("no \"type\""),
            "{}",
            d.error.message
        );
    }

    #[test]
    fn request_errors_carry_id_and_index() {
        let d = diag(serde_json::json!({"type": "request", "id": 9, "ops": [
            {"op": "ping"}, {"op": "ns_create", "name": "../x"}]}));
        assert_eq!(d.request_id, Some(9));
        assert_eq!(d.error.code, ErrorCode::InvalidArgument);
        assert_eq!(d.error.op_index, Some(1));
        assert!(d.error.message.contains("\"../x\""), "{}", d.error.message);

        let d = diag(serde_json::json!({"type": "request", "id": 9, "ops": [{"op": "fly"}]}));
        assert_eq!(
            (d.error.code, d.error.op_index),
            (ErrorCode::Unsupported, Some(0))
        );

        let d = diag(serde_json::json!({"type": "request", "id": 9, "ops": [
            {"op": "ns_create", "name": 5}]}));
        assert_eq!(d.error.code, ErrorCode::InvalidArgument);
        assert!(d.error.message.contains("ns_create"), "{}", d.error.message);

        let d = diag(serde_json::json!({"type": "request", "id": 9, "ops": [{"op": "ns_delete"}]}));
        assert!(
            d.error.message.contains("missing field `name`"),
            "{}",
            d.error.message
        );

        let d = diag(serde_json::json!({"type": "request", "id": 9, "ops": {}}));
        assert_eq!(
            (d.request_id, d.error.code),
            (Some(9), ErrorCode::BadRequest)
        );

        let d = diag(serde_json::json!({"type": "request", "id": 9, "atomic": "yes", "ops": []}));
        assert_eq!(
            (d.request_id, d.error.code),
            (Some(9), ErrorCode::BadRequest)
        );

        let d = diag(serde_json::json!({"type": "request", "id": -1, "ops": []}));
        assert_eq!((d.request_id, d.error.code), (None, ErrorCode::BadRequest));
    }

    /// `type` given twice: the first counts, so a request is refused with its id (a second
    /// `type` used to lose it: found by the fuzz campaign).
    #[test]
    fn a_type_given_twice_keeps_the_request_id() {
        let mut body = vec![0x84];
        for part in [
            encode_body(&"type").unwrap(),
            encode_body(&"request").unwrap(),
            encode_body(&"id").unwrap(),
            encode_body(&5u64).unwrap(),
            encode_body(&"type").unwrap(),
            encode_body(&"hello").unwrap(),
            encode_body(&"ops").unwrap(),
            encode_body(&Vec::<u8>::new()).unwrap(),
        ] {
            body.extend(part);
        }
        let d = diagnose(&body);
        assert_eq!(
            (d.request_id, d.error.code),
            (Some(5), ErrorCode::BadRequest)
        );
        assert!(d.error.message.contains("type"), "{}", d.error.message);
        assert!(decode_client_message(&body, 10).is_err());
    }

    #[test]
    fn any_key_order_and_unknown_keys() {
        let msg = serde_json::json!({"ops": [{"delay_ms": 5, "x": [1, {"y": 2}], "op": "ping"}],
            "future": {"a": [1, 2, 3]}, "progress": true, "id": 4, "type": "request"});
        let Ok(ClientMessage::Request(r)) = decode_client_message(&encode_body(&msg).unwrap(), 10)
        else {
            panic!("does not decode");
        };
        assert_eq!(
            (r.id, r.progress, r.atomic, r.ops.len()),
            (4, true, false, 1)
        );
        assert_eq!(r.ops[0].name(), "ping");
        let hello = serde_json::json!({"client": "x", "protocol": [1, 1], "type": "hello", "z": 1});
        assert!(matches!(
            decode_client_message(&encode_body(&hello).unwrap(), 10),
            Ok(ClientMessage::Hello(_))
        ));
    }

    /// An ops array whose header announces more operations than the limit is refused before
    /// any of them is read: here the operations that follow are not even there (the body
    /// ends), or are each invalid, and the answer is still the limit, with the id.
    #[test]
    fn the_operation_limit_holds_before_any_operation_is_decoded() {
        // {"type": "request", "id": 7, "ops": [<1 000 000 announced, 2 present>]}
        let mut body = vec![0x83];
        body.extend(encode_body(&"type").unwrap());
        body.extend(encode_body(&"request").unwrap());
        body.extend(encode_body(&"id").unwrap());
        body.push(7);
        body.extend(encode_body(&"ops").unwrap());
        body.extend([0xdd, 0x00, 0x0f, 0x42, 0x40]);
        body.extend(encode_body(&serde_json::json!({"op": "ns_create", "name": 5})).unwrap());
        body.extend(encode_body(&serde_json::json!({"op": "ping"})).unwrap());
        let d = decode_client_message(&body, 10_000).unwrap_err();
        assert_eq!(d.request_id, Some(7));
        assert_eq!(
            (d.error.code, d.error.op_index),
            (ErrorCode::BadRequest, None)
        );
        assert!(
            d.error.message.contains("1000000 operations") && d.error.message.contains("10000"),
            "{}",
            d.error.message
        );
        // The same with every operation present but invalid: still the limit, not the first
        // operation's error.
        let bad = serde_json::json!({"op": "ns_create", "name": 5});
        let msg = serde_json::json!({"type": "request", "id": 8, "ops": vec![bad; 11]});
        let d = decode_client_message(&encode_body(&msg).unwrap(), 10).unwrap_err();
        assert_eq!((d.request_id, d.error.op_index), (Some(8), None));
        assert!(
            d.error.message.contains("11 operations"),
            "{}",
            d.error.message
        );
        // With the id after the ops, the limit still holds (the id is found by skipping).
        let msg = serde_json::json!({"type": "request", "ops": vec![serde_json::json!({"op": "ping"}); 11], "id": 9});
        let d = decode_client_message(&encode_body(&msg).unwrap(), 10).unwrap_err();
        assert_eq!(d.request_id, Some(9));
        assert!(
            d.error.message.contains("limit is 10"),
            "{}",
            d.error.message
        );
    }
}
