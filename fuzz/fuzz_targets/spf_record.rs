//! cargo fuzz run spf_record — see faxmta_spf::fuzzing::spf_record for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| faxmta_spf::fuzzing::spf_record(data));
