//! cargo-fuzz target `scim_response`: see `schemas/tests/targets/mod.rs`, shared with
//! the property test that runs it on stable in `make test`.
#![no_main]

#[path = "../../schemas/tests/targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::scim_response(data));
