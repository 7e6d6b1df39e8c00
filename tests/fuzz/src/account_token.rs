//! Emailed link tokens (accounts `TokenSigner`): `base64url(claims JSON) "." base64url(HMAC)`,
//! for verifying an email, resetting a password, changing an email, accepting an invitation.
//!
//! * Any text is accepted (or called expired) only when its signature is HMAC-SHA256 of its
//!   payload under our key (computed here, independently), and then its claims are exactly the
//!   signed JSON, for the purpose asked, unexpired.
//! * A signed token verifies to its claims until they expire, only for their purpose, not under
//!   another key, and any one-character edit of it is invalid.
//! * Every token the account flows can write (an email that `Email::parse` accepts, a stamp, a
//!   nonce) fits the verifier's length limit; arbitrary claims verify unless over it.

use arbitrary::Unstructured;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::SecretString;
use sha2::Sha256;
use tenantkit_accounts::{
    Email,
    tokens::{TokenClaims, TokenError, TokenPurpose, TokenSigner, account_stamp},
};

use crate::input::{choice, edit, is_base64url, number, string, text, uuid};

const SECRET: &str = "fuzz secret key, long enough";
const NOW: i64 = 1_700_000_000;
/// The verifier refuses longer tokens before any work (accounts `tokens::MAX_TOKEN_LEN`).
const MAX_TOKEN_LEN: usize = 2048;

const PURPOSES: [TokenPurpose; 4] = [
    TokenPurpose::VerifyEmail,
    TokenPurpose::ResetPassword,
    TokenPurpose::ChangeEmail,
    TokenPurpose::Invitation,
];

pub fn check(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let now = match choice(&mut u, 4) {
        0 => number(&mut u),
        _ => NOW + i64::from(number::<i32>(&mut u)),
    };
    let Some(now) = DateTime::from_timestamp(now, 0) else {
        return;
    };
    let purpose = PURPOSES[usize::from(choice(&mut u, 4))];
    let signer = TokenSigner::new(&SecretString::from(SECRET));
    match choice(&mut u, 3) {
        0 => {
            let token = text(u.take_rest());
            check_answer(&signer, &token, purpose, now);
        }
        mode => {
            let realistic = mode == 1;
            let claims = if realistic {
                flow_claims(&mut u, purpose, now)
            } else {
                any_claims(&mut u, purpose)
            };
            let token = signer.sign(&claims);
            check_signed(&mut u, &signer, &token, &claims, now, realistic);
        }
    }
}

/// Claims as the account flows make them.
fn flow_claims(u: &mut Unstructured, purpose: TokenPurpose, now: DateTime<Utc>) -> TokenClaims {
    // The flows mint tokens now, not in the year 200,000 (where adding a lifetime overflows).
    let now = Some(now)
        .filter(|now| (0..=4_102_444_800).contains(&now.timestamp()))
        .or(DateTime::from_timestamp(NOW, 0))
        .expect("a date");
    // Any local part `Email::parse` takes, up to its 254 characters.
    let local: String = string(u)
        .chars()
        .filter(|&c| c != '@' && !c.is_whitespace() && !c.is_control())
        .collect();
    let email = Email::parse(&format!("{local}@example.com")).ok();
    let address = email.as_ref().map_or("a@example.com", Email::as_str);
    let password_hash = number::<bool>(u).then(|| string(u));
    let mut claims = TokenClaims::new(
        purpose,
        uuid(u),
        account_stamp(password_hash.as_deref(), address),
        now,
    );
    claims.nonce = URL_SAFE_NO_PAD.encode(number::<[u8; 16]>(u));
    if purpose == TokenPurpose::Invitation {
        claims.tenant = Some(uuid(u));
    }
    if purpose == TokenPurpose::ChangeEmail {
        claims.email = email.map(|e| e.as_str().to_owned());
    }
    claims
}

fn any_claims(u: &mut Unstructured, purpose: TokenPurpose) -> TokenClaims {
    TokenClaims {
        purpose,
        subject: uuid(u),
        tenant: number::<bool>(u).then(|| uuid(u)),
        email: number::<bool>(u).then(|| string(u)),
        stamp: string(u),
        expires: number(u),
        nonce: string(u),
    }
}

fn check_signed(
    u: &mut Unstructured,
    signer: &TokenSigner,
    token: &str,
    claims: &TokenClaims,
    now: DateTime<Utc>,
    realistic: bool,
) {
    let (payload, signature) = token.split_once('.').expect("payload.signature");
    assert!(is_base64url(payload) && is_base64url(signature) && signature.len() == 43);
    if realistic {
        assert!(
            token.len() <= MAX_TOKEN_LEN,
            "a token the flows write is refused for its length ({}): {claims:?}",
            token.len()
        );
    }
    let verified = signer.verify(token, claims.purpose, now);
    if token.len() > MAX_TOKEN_LEN {
        assert_eq!(verified, Err(TokenError::Invalid));
        return;
    }
    let answer = if claims.expires < now.timestamp() {
        Err(TokenError::Expired)
    } else {
        Ok(claims.clone())
    };
    assert_eq!(verified, answer);
    for other in PURPOSES.into_iter().filter(|&p| p != claims.purpose) {
        assert_eq!(signer.verify(token, other, now), Err(TokenError::Invalid));
    }
    let other_key = TokenSigner::new(&SecretString::from("another deployment's secret key"));
    assert_eq!(
        other_key.verify(token, claims.purpose, now),
        Err(TokenError::Invalid)
    );
    let edited = edit(u, token);
    if edited != token {
        assert_eq!(
            signer.verify(&edited, claims.purpose, now),
            Err(TokenError::Invalid),
            "{edited:?}, an edit of {token:?}"
        );
    }
}

fn check_answer(signer: &TokenSigner, token: &str, purpose: TokenPurpose, now: DateTime<Utc>) {
    let verified = signer.verify(token, purpose, now);
    if verified == Err(TokenError::Invalid) {
        return;
    }
    let (payload, signature) = token
        .split_once('.')
        .expect("a verified token has two parts");
    assert!(token.len() <= MAX_TOKEN_LEN);
    assert_eq!(
        URL_SAFE_NO_PAD.decode(signature).ok(),
        Some(mac(payload).to_vec()),
        "{token:?} passed without our signature"
    );
    if let Ok(claims) = verified {
        let json = URL_SAFE_NO_PAD.decode(payload).expect("signed base64url");
        let signed: TokenClaims = serde_json::from_slice(&json).expect("signed claims");
        assert_eq!(claims, signed);
        assert_eq!(claims.purpose, purpose);
        assert!(claims.expires >= now.timestamp());
    }
}

/// Our key: HMAC-SHA256 of the purpose under the secret key; the token's MAC under it.
fn mac(payload: &str) -> [u8; 32] {
    let mut key = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    key.update(b"tenantkit/account-tokens/v1");
    let key: [u8; 32] = key.finalize().into_bytes().into();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().into()
}
