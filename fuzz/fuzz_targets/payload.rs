//! Fuzz target `payload`: the firewall payload screen (`tsim_helper::payload`) on arbitrary
//! text, against a model of the tools.
//!
//! The input, read as UTF-8 (lossily: the helper only ever sees strings), goes through both
//! checks, which must never panic; for every payload a check accepts, the model of its tool
//! (`fgets` with the tool's buffer, then iptables' `add_param_to_argv` or ipset's
//! `build_argv`) must read the same lines and words as the screen did, and none of the words
//! the screen exists to refuse (see `tsim_fuzz::payload_model`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tsim_fuzz::payload_model::agree;

fuzz_target!(|data: &[u8]| {
    agree(&String::from_utf8_lossy(data));
});
