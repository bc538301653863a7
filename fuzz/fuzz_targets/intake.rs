//! cargo-fuzz target `intake`: see `intake/tests/targets/mod.rs`, shared with
//! the property tests that run it on stable in `make test`.
#![no_main]

#[path = "../../intake/tests/targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::request(data));
