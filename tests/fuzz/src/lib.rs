//! Fuzz targets for the parsers Tenantkit owns: text that arrives from outside and is read by our
//! own code. Each module's `check(data)` turns the fuzzer's bytes into an input, runs the parser
//! and asserts properties of its answer, not only that it does not panic. The libFuzzer binaries
//! (`fuzz_targets/`, nightly, run by `scripts/fuzz`) and the stable replay (`cargo test
//! --no-default-features`, the fallback without nightly) call the same checks.
//!
//! | target             | parser                                              |
//! |--------------------|-----------------------------------------------------|
//! | `stripe_signature` | `Stripe-Signature` header (billing `signature`)     |
//! | `byte_range`       | download `Range` header (storage `ByteRange`)       |
//! | `file_name`        | upload file names (storage `FileName`) and the `Content-Disposition` written from them |
//! | `folder`           | folder paths (storage `Folder`)                     |
//! | `file_cursor`      | file listing cursors (storage `FileCursor`)         |
//! | `link_token`       | signed download link tokens (storage)               |
//! | `account_token`    | emailed link tokens: verify, reset, invite (accounts `TokenSigner`) |
//! | `api_key`          | presented API keys `tk_<tenant>_<id>_<secret>` (tenancy) |
//! | `tenant_cursor`    | the admin tenant directory's cursors (platform)     |
//!
//! A crash found by the fuzzer is fixed in the parser, with a unit test there, and its input is
//! kept in `corpus/<target>/` so every later run replays it.

pub mod account_token;
pub mod api_key;
pub mod byte_range;
pub mod file_cursor;
pub mod file_name;
pub mod folder;
pub mod link_token;
pub mod stripe_signature;
pub mod tenant_cursor;

mod input;
#[cfg(test)]
mod replay;

/// A target's check: any bytes in, a panic when a property does not hold.
pub type Check = fn(&[u8]);

/// Every target by name (its `fuzz_targets/<name>.rs` and `corpus/<name>/`).
pub const TARGETS: &[(&str, Check)] = &[
    ("account_token", account_token::check),
    ("api_key", api_key::check),
    ("byte_range", byte_range::check),
    ("file_cursor", file_cursor::check),
    ("file_name", file_name::check),
    ("folder", folder::check),
    ("link_token", link_token::check),
    ("stripe_signature", stripe_signature::check),
    ("tenant_cursor", tenant_cursor::check),
];
