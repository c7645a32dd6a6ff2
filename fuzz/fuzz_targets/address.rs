//! cargo fuzz run address — see faxmta::fuzzing::address for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta::fuzzing::address(data));
