//! Standard Webhooks secrets: `whsec_` followed by the base64 of a 24- to 64-byte key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Deserializer};

/// Why a string is not a Standard Webhooks secret. The messages never hold the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The secret does not start with `whsec_`.
    #[error("a webhook secret starts with whsec_")]
    Prefix,
    /// The part after `whsec_` is not base64.
    #[error("a webhook secret is whsec_ followed by base64")]
    Base64,
    /// The decoded key has the wrong size.
    #[error("a webhook secret decodes to 24 to 64 bytes, this one to {0}")]
    Length(usize),
}

/// A decoded Standard Webhooks signing key. Its `Debug` never shows the key.
pub struct WebhookSecret(SecretBox<Vec<u8>>);

impl WebhookSecret {
    /// Decodes a `whsec_…` secret: the text after the prefix is the base64 of the key.
    pub fn parse(secret: &str) -> Result<Self, SecretError> {
        let b64 = secret.strip_prefix("whsec_").ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(b64).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(SecretBox::new(Box::new(key))))
    }

    /// The key bytes the HMAC is keyed with.
    pub fn key(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl Clone for WebhookSecret {
    fn clone(&self) -> Self {
        Self(SecretBox::new(Box::new(self.key().to_vec())))
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([REDACTED])")
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = secrecy::SecretString::deserialize(d)?;
        Self::parse(text.expose_secret()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_needs_the_prefix_base64_and_a_key_of_24_to_64_bytes() {
        let key = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(key.key().len(), 24);
        assert!(!format!("{key:?}").contains("MfKQ"));
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(SecretError::Prefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_%%%").err(),
            Some(SecretError::Base64)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA").err(),
            Some(SecretError::Length(3))
        );
    }
}
