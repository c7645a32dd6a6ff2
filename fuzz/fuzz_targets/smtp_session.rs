//! cargo fuzz run smtp_session — see faxmta_proto::fuzzing::smtp_session for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta_proto::fuzzing::smtp_session(data));
