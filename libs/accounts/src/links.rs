//! Links in emails: always built from the configured public URL, never from a request's Host
//! header (which an attacker controls), and carrying signed tokens.

use secrecy::SecretString;
use url::Url;

use crate::tokens::TokenSigner;

#[derive(Clone)]
pub struct Links {
    base: Url,
    signer: TokenSigner,
}

impl Links {
    pub fn new(public_url: &Url, secret_key: &SecretString) -> Self {
        Self {
            base: public_url.clone(),
            signer: TokenSigner::new(secret_key),
        }
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// `public_url` + `path`, with `?token=` when given.
    pub fn to(&self, path: &str, token: Option<&str>) -> String {
        let mut url = self.base.join(path).unwrap_or_else(|_| self.base.clone());
        if let Some(token) = token {
            url.query_pairs_mut().append_pair("token", token);
        }
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_start_at_the_public_url() {
        let links = Links::new(
            &Url::parse("https://app.example.com/").unwrap(),
            &SecretString::from("key"),
        );
        assert_eq!(
            links.to("/verify", Some("a.b")),
            "https://app.example.com/verify?token=a.b"
        );
        assert_eq!(links.to("/login", None), "https://app.example.com/login");
    }
}
