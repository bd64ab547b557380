//! Explains why a frame body did not decode as a [`ClientMessage`], precisely enough to answer
//! it: the request id when one can be read, the failing operation's index, and a stable code.
//!
//! The helper decodes the fast way first and calls [`diagnose`] only when that fails, so the
//! common path pays nothing for good error messages.
//!
//! [`ClientMessage`]: crate::message::ClientMessage

use rmpv::Value;
use serde::Deserialize;

use crate::error::{ErrorCode, WireError};
use crate::frame::decode_body;
use crate::message::ClientMessage;
use crate::ops::Op;
use crate::version;

/// What to answer to a body that failed to decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The request's id, when the body is a request whose `id` could be read; the error then
    /// goes in a `response` with that id, otherwise in a connection-level `error` frame.
    pub request_id: Option<u64>,
    /// The error to send.
    pub error: WireError,
}

/// The envelope fields of a request, without its operations.
#[derive(Deserialize)]
struct Envelope {
    #[allow(dead_code)] // Read only to check its type.
    id: u64,
    #[serde(default)]
    #[allow(dead_code)] // Read only to check its type.
    atomic: bool,
    #[serde(default)]
    #[allow(dead_code)] // Read only to check its type.
    progress: bool,
}

/// Explains why `body` is not a valid client message.
pub fn diagnose(body: &[u8]) -> Diagnosis {
    let no_id = |code, message: String| Diagnosis {
        request_id: None,
        error: WireError::new(code, message),
    };
    let value: Value = match decode_body(body) {
        Ok(v) => v,
        Err(e) => {
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            return no_id(
                ErrorCode::BadRequest,
                format!("The frame is not one MessagePack value: {cause}"),
            );
        }
    };
    let Value::Map(entries) = &value else {
        return no_id(
            ErrorCode::BadRequest,
            format!(
                "A message must be a map with string keys, not {}",
                kind(&value)
            ),
        );
    };
    let Some(msg_type) = field(entries, "type").and_then(Value::as_str) else {
        return no_id(
            ErrorCode::BadRequest,
            "The message has no \"type\" string".to_owned(),
        );
    };
    if !ClientMessage::TYPES.contains(&msg_type) {
        return no_id(
            ErrorCode::BadRequest,
            format!("Unknown message type {msg_type:?}; expected one of hello, request, cancel"),
        );
    }
    if msg_type != "request" {
        let why = match rmpv::ext::from_value::<ClientMessage>(value.clone()) {
            Err(e) => syntax(e),
            Ok(_) => "it is valid as a value but not as a frame body".to_owned(),
        };
        return no_id(
            ErrorCode::BadRequest,
            format!("Invalid {msg_type} message: {why}"),
        );
    }
    diagnose_request(entries, &value)
}

fn diagnose_request(entries: &[(Value, Value)], value: &Value) -> Diagnosis {
    let request_id = field(entries, "id").and_then(Value::as_u64);
    let fail = |code, message: String| Diagnosis {
        request_id,
        error: WireError::new(code, message),
    };
    if request_id.is_none() {
        return fail(
            ErrorCode::BadRequest,
            "The request has no unsigned integer \"id\"".to_owned(),
        );
    }
    if let Err(e) = rmpv::ext::from_value::<Envelope>(value.clone()) {
        return fail(
            ErrorCode::BadRequest,
            format!("Invalid request: {}", syntax(e)),
        );
    }
    let ops = match field(entries, "ops") {
        Some(Value::Array(ops)) => ops,
        Some(other) => {
            let msg = format!(
                "The request's \"ops\" must be an array, not {}",
                kind(other)
            );
            return fail(ErrorCode::BadRequest, msg);
        }
        None => {
            return fail(
                ErrorCode::BadRequest,
                "The request has no \"ops\" array".to_owned(),
            );
        }
    };
    for (index, op) in ops.iter().enumerate() {
        if let Some(error) = diagnose_op(op) {
            return Diagnosis {
                request_id,
                error: error.at(index),
            };
        }
    }
    fail(
        ErrorCode::BadRequest,
        "The request could not be decoded".to_owned(),
    )
}

/// Explains why one operation does not decode, or `None` if it does.
fn diagnose_op(op: &Value) -> Option<WireError> {
    let Value::Map(entries) = op else {
        let msg = format!(
            "An operation must be a map with an \"op\" key, not {}",
            kind(op)
        );
        return Some(WireError::new(ErrorCode::BadRequest, msg));
    };
    let Some(name) = field(entries, "op").and_then(Value::as_str) else {
        let msg = "The operation has no \"op\" string naming it".to_owned();
        return Some(WireError::new(ErrorCode::BadRequest, msg));
    };
    if !Op::NAMES.contains(&name) {
        let msg = format!(
            "Unknown operation {name:?}: this helper speaks protocol {}",
            version::CURRENT
        );
        return Some(WireError::new(ErrorCode::Unsupported, msg));
    }
    match rmpv::ext::from_value::<Op>(op.clone()) {
        Ok(_) => None,
        Err(e) => Some(WireError::new(
            ErrorCode::InvalidArgument,
            format!("{name}: {}", syntax(e)),
        )),
    }
}

fn field<'a>(entries: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn syntax(e: rmpv::ext::Error) -> String {
    let rmpv::ext::Error::Syntax(message) = e;
    message
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary data",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
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
}
