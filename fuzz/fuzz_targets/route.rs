//! cargo fuzz run --features daemon route corpus/route corpus/address —
//! see faxmta::fuzzing::route for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta::fuzzing::route(data));
