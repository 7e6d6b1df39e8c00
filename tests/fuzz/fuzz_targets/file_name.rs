#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tenantkit_fuzz::file_name::check(data));
