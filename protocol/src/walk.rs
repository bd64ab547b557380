//! A small MessagePack walker: reads container headers and strings in place and skips whole
//! values without building anything, iteratively and with nesting limited to [`MAX_DEPTH`].
//!
//! The bounded decoder ([`crate::frame::decode_client_message`]) uses it to find a message's
//! `"type"`, a request's `"id"` and the length of its `"ops"` array before any operation is
//! decoded, and to cut each operation's bytes out of the body so that the operation is decoded
//! straight into its argument struct, with no intermediate tree.

use std::ops::Range;

use crate::version::MAX_DEPTH;

/// Why the walker stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WalkError {
    /// The body ends inside a value.
    Truncated,
    /// The reserved marker byte `0xc1`.
    Reserved(usize),
    /// Containers nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::Truncated => write!(f, "the body ends inside a value"),
            WalkError::Reserved(at) => write!(f, "the reserved marker 0xc1 at byte {at}"),
            WalkError::TooDeep => write!(f, "containers nest deeper than {MAX_DEPTH}"),
        }
    }
}

/// What a value's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// A map of this many entries; the entries follow.
    Map(u32),
    /// An array of this many elements; they follow.
    Array(u32),
    /// A string, whose bytes are at this range of the body (already skipped).
    Str(usize, usize),
    /// Anything else (nil, booleans, numbers, binary, extensions), already skipped.
    Scalar(Kind),
}

/// The kind of a scalar, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// nil.
    Nil,
    /// true or false.
    Bool,
    /// An integer.
    Int,
    /// A float.
    Float,
    /// Binary data.
    Bin,
    /// An extension value.
    Ext,
}

/// A cursor over a MessagePack body.
#[derive(Debug, Clone)]
pub(crate) struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Walker<'a> {
    /// A walker at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// A walker at offset `pos` of `buf`, a value boundary found by an earlier walk.
    pub(crate) fn at(buf: &'a [u8], pos: usize) -> Self {
        Self {
            buf,
            pos: pos.min(buf.len()),
        }
    }

    /// The offset of the next byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes of the body.
    pub(crate) fn buf(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WalkError> {
        let end = self.pos.checked_add(n).ok_or(WalkError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(WalkError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn uint(&mut self, n: usize) -> Result<u64, WalkError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, WalkError> {
        // At most 4 bytes of length: fits a usize on every platform this runs on.
        Ok(self.uint(n)? as usize)
    }

    /// Reads one value's head: a container's header (its contents follow), or a whole string
    /// or scalar.
    pub(crate) fn head(&mut self) -> Result<Head, WalkError> {
        let at = self.pos;
        let marker = self.take(1)?[0];
        let skip = |w: &mut Self, n: usize, kind| w.take(n).map(|_| Head::Scalar(kind));
        let str = |w: &mut Self, n: usize| {
            let start = w.pos;
            w.take(n).map(|_| Head::Str(start, start + n))
        };
        match marker {
            0x00..=0x7f | 0xe0..=0xff => Ok(Head::Scalar(Kind::Int)),
            0x80..=0x8f => Ok(Head::Map(u32::from(marker & 0x0f))),
            0x90..=0x9f => Ok(Head::Array(u32::from(marker & 0x0f))),
            0xa0..=0xbf => str(self, usize::from(marker & 0x1f)),
            0xc0 => Ok(Head::Scalar(Kind::Nil)),
            0xc1 => Err(WalkError::Reserved(at)),
            0xc2 | 0xc3 => Ok(Head::Scalar(Kind::Bool)),
            0xc4..=0xc6 => {
                let n = self.len(1 << (marker - 0xc4))?;
                skip(self, n, Kind::Bin)
            }
            0xc7..=0xc9 => {
                let n = self.len(1 << (marker - 0xc7))?;
                skip(self, n + 1, Kind::Ext)
            }
            0xca => skip(self, 4, Kind::Float),
            0xcb => skip(self, 8, Kind::Float),
            0xcc..=0xcf => skip(self, 1 << (marker - 0xcc), Kind::Int),
            0xd0..=0xd3 => skip(self, 1 << (marker - 0xd0), Kind::Int),
            0xd4..=0xd8 => skip(self, 1 + (1 << (marker - 0xd4)), Kind::Ext),
            0xd9..=0xdb => {
                let n = self.len(1 << (marker - 0xd9))?;
                str(self, n)
            }
            0xdc => Ok(Head::Array(self.uint(2)? as u32)),
            0xdd => Ok(Head::Array(self.uint(4)? as u32)),
            0xde => Ok(Head::Map(self.uint(2)? as u32)),
            0xdf => Ok(Head::Map(self.uint(4)? as u32)),
        }
    }

    /// Skips one whole value, which sits inside `depth` containers; returns its byte range.
    /// Iterative: the stack holds one counter per open container, at most [`MAX_DEPTH`].
    pub(crate) fn skip(&mut self, depth: usize) -> Result<Range<usize>, WalkError> {
        let start = self.pos;
        let mut stack: Vec<u64> = Vec::new();
        let mut pending: u64 = 1;
        loop {
            if pending == 0 {
                match stack.pop() {
                    Some(outer) => {
                        pending = outer;
                        continue;
                    }
                    None => return Ok(start..self.pos),
                }
            }
            pending -= 1;
            let items = match self.head()? {
                Head::Map(n) => 2 * u64::from(n),
                Head::Array(n) => u64::from(n),
                Head::Str(..) | Head::Scalar(_) => continue,
            };
            if depth + stack.len() + 1 > MAX_DEPTH {
                return Err(WalkError::TooDeep);
            }
            // A container cannot hold more values than there are bytes left: refuse a header
            // that lies early (it would only fail later, at the end of the body).
            if items > (self.buf.len() - self.pos) as u64 {
                return Err(WalkError::Truncated);
            }
            stack.push(pending);
            pending = items;
        }
    }

    /// Reads a string value, or returns `None` (and skips the value) if it is something else.
    pub(crate) fn str_or_skip(&mut self, depth: usize) -> Result<Option<&'a [u8]>, WalkError> {
        let start = self.pos;
        match self.head()? {
            Head::Str(a, b) => Ok(Some(&self.buf[a..b])),
            Head::Scalar(_) => Ok(None),
            Head::Map(_) | Head::Array(_) => {
                self.pos = start;
                self.skip(depth)?;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_body;

    #[test]
    fn skips_what_it_reads() {
        let value = serde_json::json!({"a": [1, -1, 300, -300, 70000, 1.5, null, true, "x"],
            "b": {"c": "y".repeat(300), "d": [[], {}]}, "e": u64::MAX, "f": i64::MIN});
        let body = encode_body(&value).unwrap();
        let mut w = Walker::new(&body);
        assert_eq!(w.skip(0).unwrap(), 0..body.len());
        let mut w = Walker::new(&body);
        assert_eq!(w.head().unwrap(), Head::Map(4));
        assert_eq!(w.str_or_skip(1).unwrap(), Some(&b"a"[..]));
        assert_eq!(w.str_or_skip(1).unwrap(), None);
        assert_eq!(w.str_or_skip(1).unwrap(), Some(&b"b"[..]));
    }

    #[test]
    fn refuses_truncation_depth_and_reserved() {
        assert_eq!(
            Walker::new(&[0x92, 0x01]).skip(0),
            Err(WalkError::Truncated)
        );
        assert_eq!(
            Walker::new(&[0xdb, 0xff, 0xff, 0xff]).skip(0),
            Err(WalkError::Truncated)
        );
        assert_eq!(Walker::new(&[0xc1]).skip(0), Err(WalkError::Reserved(0)));
        // An array header announcing 4 billion elements in a 5-byte body.
        assert_eq!(
            Walker::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip(0),
            Err(WalkError::Truncated)
        );
        let mut deep = vec![0x91u8; MAX_DEPTH];
        deep.push(0xc0);
        assert!(Walker::new(&deep).skip(0).is_ok());
        let mut deeper = vec![0x91u8; 10_000];
        deeper.push(0xc0);
        assert_eq!(Walker::new(&deeper).skip(0), Err(WalkError::TooDeep));
    }
}
