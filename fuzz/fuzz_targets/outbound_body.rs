//! cargo fuzz run outbound_body — see faxmta_proto::fuzzing::outbound_body for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta_proto::fuzzing::outbound_body(data));
