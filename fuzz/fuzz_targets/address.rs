//! cargo fuzz run address — see faxmta_proto::fuzzing::address for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta_proto::fuzzing::address(data));
