//! Refresh tokens at rest: sealed per org with XChaCha20-Poly1305 and kept by a [`TokenStore`].
//!
//! Sealed format: `key_id (1 byte) ‖ nonce (24 bytes) ‖ ciphertext+tag`, with associated data
//! `org_id ‖ "sf_refresh_token"` (and `‖ "/" ‖ user` for an application user's own connection)
//! so a sealed token cannot move between orgs, nor between users or to the org's connection.
//! Nonces are random: 192 bits make collisions negligible. The key id lets a new key seal while
//! older keys still open what they sealed.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::domain::{AppUser, OrgId, SalesforceId};

const NONCE_LEN: usize = 24;
const AAD_PURPOSE: &[u8] = b"sf_refresh_token";

/// Errors of the token store, whatever backs it.
pub type TokenStoreError = Box<dyn std::error::Error + Send + Sync>;

/// Durable storage of what a connection keeps between runs, one per org: its sealed refresh
/// token (the store sees only sealed bytes) and the Salesforce user it acts as.
///
/// `save_sealed` must be durable when it returns: after a refresh that rotates the refresh
/// token the old one is dead, so losing the new one locks the org out.
pub trait TokenStore: Send + Sync {
    /// The sealed refresh token of `org`, if one was saved.
    fn load_sealed(&self, org: &OrgId) -> Result<Option<Vec<u8>>, TokenStoreError>;
    /// Replaces the sealed refresh token of `org`, durably.
    fn save_sealed(&self, org: &OrgId, sealed: &[u8]) -> Result<(), TokenStoreError>;
    /// The user `org`'s connection acts as, if one was saved.
    fn load_user(&self, org: &OrgId) -> Result<Option<SalesforceId>, TokenStoreError>;
    /// Saves the user `org`'s connection acts as, durably.
    fn save_user(&self, org: &OrgId, user: &SalesforceId) -> Result<(), TokenStoreError>;
    /// The application user whose own connection this store keeps; `None` (the default) for
    /// the org's integration connection. Sealed tokens are bound to it.
    fn owner(&self) -> Option<&AppUser> {
        None
    }
}

/// Why a token could not be sealed or opened. Deliberately vague: it never says more than
/// which step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The key is not 32 bytes of base64.
    #[error("the token key must be 32 bytes, base64-encoded")]
    BadKey,
    /// The sealed value is shorter than a key id, a nonce and a tag.
    #[error("the sealed token is truncated")]
    Truncated,
    /// No key with the sealed value's key id is loaded.
    #[error("no token key with id {0}")]
    UnknownKey(u8),
    /// Authentication failed: wrong key, tampered bytes, or another org's token.
    #[error("the sealed token does not open with this key and org")]
    Open,
    /// Encryption failed.
    #[error("the token could not be sealed")]
    Seal,
    /// The opened token is not UTF-8.
    #[error("the opened token is not utf-8")]
    NotUtf8,
}

/// One 32-byte token key and its id (the first byte of everything it seals).
pub struct TokenKey {
    id: u8,
    key: SecretBox<[u8; 32]>,
}

impl Clone for TokenKey {
    fn clone(&self) -> Self {
        Self::new(self.id, SecretBox::new(Box::new(*self.key.expose_secret())))
    }
}

impl TokenKey {
    /// Wraps a raw key.
    pub fn new(id: u8, key: SecretBox<[u8; 32]>) -> Self {
        Self { id, key }
    }

    /// Decodes a base64 (standard alphabet, padded) 32-byte key, as `SFSYNC_TOKEN_KEY` holds it.
    pub fn from_base64(id: u8, encoded: &SecretString) -> Result<Self, VaultError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.expose_secret().trim())
            .map_err(|_| VaultError::BadKey)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::BadKey)?;
        Ok(Self::new(id, SecretBox::new(Box::new(key))))
    }

    /// This key's id.
    pub fn id(&self) -> u8 {
        self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.expose_secret().into())
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

/// Seals and opens refresh tokens: the current key seals, any loaded key opens.
#[derive(Debug)]
pub struct TokenVault {
    current: TokenKey,
    previous: Vec<TokenKey>,
}

impl TokenVault {
    /// A vault sealing with `current`.
    pub fn new(current: TokenKey) -> Self {
        Self {
            current,
            previous: Vec::new(),
        }
    }

    /// Adds a retired key that still opens what it sealed (key rotation).
    pub fn with_previous(mut self, key: TokenKey) -> Self {
        self.previous.push(key);
        self
    }

    /// Seals `token` for `org`'s integration connection: `key_id ‖ nonce ‖ ciphertext`.
    pub fn seal(&self, org: &OrgId, token: &SecretString) -> Result<Vec<u8>, VaultError> {
        self.seal_for(org, None, token)
    }

    /// Opens a token sealed for `org`'s integration connection.
    pub fn open(&self, org: &OrgId, sealed: &[u8]) -> Result<SecretString, VaultError> {
        self.open_for(org, None, sealed)
    }

    /// Seals `token` for `org` and `owner` (`None`: the org's integration connection).
    pub fn seal_for(
        &self,
        org: &OrgId,
        owner: Option<&AppUser>,
        token: &SecretString,
    ) -> Result<Vec<u8>, VaultError> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let aad = aad(org, owner);
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(self.current.id);
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Opens a token sealed for `org` and `owner`.
    pub fn open_for(
        &self,
        org: &OrgId,
        owner: Option<&AppUser>,
        sealed: &[u8],
    ) -> Result<SecretString, VaultError> {
        const TAG_LEN: usize = 16;
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(VaultError::Truncated);
        }
        let (key_id, rest) = (sealed[0], &sealed[1..]);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or(VaultError::UnknownKey(key_id))?;
        let aad = aad(org, owner);
        let plain = key
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Open)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| VaultError::NotUtf8)
    }
}

fn aad(org: &OrgId, owner: Option<&AppUser>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(18 + AAD_PURPOSE.len() + 65);
    aad.extend_from_slice(org.as_str().as_bytes());
    aad.extend_from_slice(AAD_PURPOSE);
    if let Some(user) = owner {
        aad.push(b'/');
        aad.extend_from_slice(user.as_str().as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8, byte: u8) -> TokenKey {
        TokenKey::new(id, SecretBox::new(Box::new([byte; 32])))
    }

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).expect("org id")
    }

    fn token() -> SecretString {
        SecretString::from("5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJrkCw1uUOdIS1cHCu0iA.some.refresh")
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_key_and_org() {
        let vault = TokenVault::new(key(1, 7));
        let o = org("00D7F00000107XsUAI");
        let sealed = vault.seal(&o, &token()).expect("seal");
        assert_eq!(sealed[0], 1);
        assert_eq!(sealed.len(), 1 + 24 + token().expose_secret().len() + 16);
        let opened = vault.open(&o, &sealed).expect("open");
        assert_eq!(opened.expose_secret(), token().expose_secret());
    }

    #[test]
    fn two_seals_of_one_token_differ() {
        let vault = TokenVault::new(key(1, 7));
        let o = org("00D7F00000107XsUAI");
        assert_ne!(vault.seal(&o, &token()).ok(), vault.seal(&o, &token()).ok());
    }

    #[test]
    fn the_wrong_key_does_not_open() {
        let o = org("00D7F00000107XsUAI");
        let sealed = TokenVault::new(key(1, 7)).seal(&o, &token()).expect("seal");
        let other = TokenVault::new(key(1, 8));
        assert_eq!(other.open(&o, &sealed).err(), Some(VaultError::Open));
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_key_id_does_not_open() {
        let vault = TokenVault::new(key(1, 7));
        let o = org("00D7F00000107XsUAI");
        let sealed = vault.seal(&o, &token()).expect("seal");
        for i in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert_eq!(
                vault.open(&o, &tampered).err(),
                Some(VaultError::Open),
                "byte {i}"
            );
        }
    }

    #[test]
    fn another_orgs_token_does_not_open() {
        let vault = TokenVault::new(key(1, 7));
        let sealed = vault
            .seal(&org("00D7F00000107XsUAI"), &token())
            .expect("seal");
        let swapped = org("00D000000000001");
        assert_eq!(vault.open(&swapped, &sealed).err(), Some(VaultError::Open));
    }

    #[test]
    fn a_users_token_opens_only_for_that_user() {
        let vault = TokenVault::new(key(1, 7));
        let o = org("00D7F00000107XsUAI");
        let alice = AppUser::parse("alice").expect("user");
        let bob = AppUser::parse("bob").expect("user");
        let sealed = vault.seal_for(&o, Some(&alice), &token()).expect("seal");
        assert!(vault.open_for(&o, Some(&alice), &sealed).is_ok());
        assert_eq!(
            vault.open_for(&o, Some(&bob), &sealed).err(),
            Some(VaultError::Open)
        );
        assert_eq!(vault.open(&o, &sealed).err(), Some(VaultError::Open));
        let orgs = vault.seal(&o, &token()).expect("seal");
        assert_eq!(
            vault.open_for(&o, Some(&alice), &orgs).err(),
            Some(VaultError::Open)
        );
    }

    #[test]
    fn a_truncated_or_unknown_key_value_is_named() {
        let vault = TokenVault::new(key(1, 7));
        let o = org("00D7F00000107XsUAI");
        assert_eq!(
            vault.open(&o, &[1, 2, 3]).err(),
            Some(VaultError::Truncated)
        );
        let mut sealed = vault.seal(&o, &token()).expect("seal");
        sealed[0] = 9;
        assert_eq!(
            vault.open(&o, &sealed).err(),
            Some(VaultError::UnknownKey(9))
        );
    }

    #[test]
    fn a_retired_key_still_opens_after_rotation() {
        let o = org("00D7F00000107XsUAI");
        let sealed = TokenVault::new(key(1, 7)).seal(&o, &token()).expect("seal");
        let rotated = TokenVault::new(key(2, 9)).with_previous(key(1, 7));
        assert!(rotated.open(&o, &sealed).is_ok());
        assert_eq!(rotated.seal(&o, &token()).expect("seal")[0], 2);
    }

    #[test]
    fn a_base64_key_must_hold_32_bytes() {
        use base64::Engine as _;
        let good = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert!(TokenKey::from_base64(1, &SecretString::from(good)).is_ok());
        let short = base64::engine::general_purpose::STANDARD.encode([3u8; 16]);
        assert_eq!(
            TokenKey::from_base64(1, &SecretString::from(short)).err(),
            Some(VaultError::BadKey)
        );
        assert!(format!("{:?}", key(1, 7)).contains("REDACTED"));
    }
}
