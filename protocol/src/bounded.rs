//! Lists in client messages, bounded while they are decoded: each has a maximum length,
//! checked against the array header before anything is allocated, and while a message is
//! decoded by [`crate::diagnose::decode_client_message`] every list draws its elements' size
//! from one budget proportional to the frame, so that no mix of small elements (an empty map
//! is one byte on the wire and a `NextHop` of 56 bytes in memory) can make a frame cost much
//! more memory than its size.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, Error, SeqAccess, Visitor};

thread_local! {
    /// Bytes the lists of the message being decoded on this thread may still take.
    static BUDGET: Cell<Option<usize>> = const { Cell::new(None) };
}

/// What each element costs beyond its own size (a heap block of its own, typically).
const PER_ELEMENT: usize = 16;

/// Runs `f` with `bytes` of budget for the lists it decodes on this thread.
pub(crate) fn with_budget<T>(bytes: usize, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BUDGET.with(|b| b.replace(Some(bytes))));
    f()
}

fn charge<E: Error>(items: usize, size: usize) -> Result<(), E> {
    BUDGET.with(|b| match b.get() {
        None => Ok(()),
        Some(left) => {
            let cost = items.saturating_mul(size + PER_ELEMENT);
            match left.checked_sub(cost) {
                Some(rest) => {
                    b.set(Some(rest));
                    Ok(())
                }
                None => Err(E::custom(
                    "the message's lists would take far more memory than its size once decoded",
                )),
            }
        }
    })
}

/// Deserializes a list of at most `MAX` elements (`#[serde(deserialize_with = "…")]`).
pub(crate) fn vec<'de, D, T, const MAX: usize>(de: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Capped<T, const MAX: usize>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for Capped<T, MAX> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX} items")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let announced = seq.size_hint().unwrap_or(0);
            if announced > MAX {
                return Err(A::Error::custom(format_args!(
                    "a list of {announced} items, more than the {MAX} allowed"
                )));
            }
            charge::<A::Error>(announced, std::mem::size_of::<T>())?;
            let mut out = Vec::with_capacity(announced);
            while let Some(item) = seq.next_element()? {
                if out.len() == MAX {
                    return Err(A::Error::custom(format_args!(
                        "a list of more than the {MAX} items allowed"
                    )));
                }
                if out.len() >= announced {
                    charge::<A::Error>(1, std::mem::size_of::<T>())?;
                }
                out.push(item);
            }
            Ok(out)
        }
    }
    de.deserialize_seq(Capped::<T, MAX>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "vec::<_, _, 3>")]
        items: Vec<u8>,
    }

    #[test]
    fn caps_and_budget() {
        let ok: Holder = serde_json::from_str(r#"{"items": [1, 2, 3]}"#).unwrap();
        assert_eq!(ok.items, [1, 2, 3]);
        let e = serde_json::from_str::<Holder>(r#"{"items": [1, 2, 3, 4]}"#).unwrap_err();
        assert!(e.to_string().contains("more than the 3 items"), "{e}");
        let e = with_budget(20, || {
            serde_json::from_str::<Holder>(r#"{"items": [1, 2]}"#)
        })
        .unwrap_err();
        assert!(e.to_string().contains("more memory"), "{e}");
        assert!(serde_json::from_str::<Holder>(r#"{"items": [1, 2]}"#).is_ok());
    }
}
