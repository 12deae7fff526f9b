#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tollgate_proxy::fuzz::pii_stream(data));
