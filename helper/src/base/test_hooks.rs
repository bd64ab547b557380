//! Fault injection for the tests, compiled only into debug builds: a release build has none
//! of it (`packaging/check.sh` checks that the release binary does not carry the variable's
//! name).
//!
//! `TSIM_TEST_PANIC=<point>` in the helper's environment makes the code at that point panic,
//! so the tests can show that a panicking operation rolls its request back. Points:
//! `dispatch:<op>` (just before operation `<op>` runs) and `host_add:gateway` (inside
//! `host_add`, right after the router's gateway was added).

/// Panics if `TSIM_TEST_PANIC` names `point` (debug builds only).
#[cfg(debug_assertions)]
pub fn panic_point(point: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let wanted = POINT.get_or_init(|| std::env::var("TSIM_TEST_PANIC").ok());
    if wanted.as_deref() == Some(point) {
        panic!("Injected panic at {point} (TSIM_TEST_PANIC)");
    }
}

/// Does nothing: release builds have no fault injection.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn panic_point(_point: &str) {}
