#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantkit_fuzz::link_token::check(data));
