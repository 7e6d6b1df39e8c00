//! Presented API keys, `tk_<tenant>_<id>_<secret>` (tenancy `api_keys::presented_tenant`, which
//! picks the tenant whose row level security the key is then looked up under).
//!
//! * A key as `api_keys::create` writes it (simple UUIDs, a 43-character base64url secret,
//!   which may itself hold `_` and `-`) names its own tenant.
//! * Any text that names a tenant has the key's shape: `tk_`, a tenant UUID (the one returned),
//!   a key UUID, both as 32 lowercase hex digits, and a 43-byte secret, split at the first two
//!   `_` after the prefix. Never another tenant than the one written in the text.
//! * Any one-character insertion or removal in a written key makes it name no tenant.

use arbitrary::Unstructured;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tenantkit_kernel::TenantId;
use tenantkit_tenancy::api_keys::presented_tenant;
use uuid::Uuid;

use crate::input::{choice, number, text, uuid};

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if choice(&mut u, 2) == 0 {
        let text = text(u.take_rest());
        check_answer(&text);
        return;
    }
    let (tenant, id) = (uuid(&mut u), uuid(&mut u));
    let secret = URL_SAFE_NO_PAD.encode(number::<[u8; 32]>(&mut u));
    let key = format!("tk_{}_{}_{secret}", tenant.simple(), id.simple());
    assert_eq!(
        presented_tenant(&key),
        Some(TenantId::from_uuid(tenant)),
        "{key}"
    );

    let mut chars: Vec<char> = key.chars().collect();
    let at = u.choose_index(chars.len() + 1).unwrap_or(0);
    if choice(&mut u, 2) == 0 {
        chars.insert(at, number(&mut u));
    } else if at < chars.len() {
        chars.remove(at);
    } else {
        chars.pop();
    }
    let edited: String = chars.into_iter().collect();
    assert_eq!(
        presented_tenant(&edited),
        None,
        "{edited:?}, an edit of {key}"
    );
    check_answer(&edited);
}

fn check_answer(text: &str) {
    let Some(tenant) = presented_tenant(text) else {
        return;
    };
    let shape = text.strip_prefix("tk_").and_then(|rest| {
        let (tenant, rest) = rest.split_once('_')?;
        let (id, secret) = rest.split_once('_')?;
        let simple = |text: &str| {
            let hex = text.len() == 32 && text.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
            hex.then(|| Uuid::try_parse(text).ok()).flatten()
        };
        Some((simple(tenant)?, simple(id)?, secret))
    });
    let Some((named, _, secret)) = shape else {
        panic!("{text:?} named {tenant:?} without the shape of a key");
    };
    assert_eq!(tenant, TenantId::from_uuid(named), "{text:?}");
    assert_eq!(secret.len(), 43, "{text:?}");
}
