//! Salesforce record ids: 15-character case-sensitive or 18-character checksummed forms,
//! always held as 18 characters.
//!
//! The 18-character suffix: split the first 15 characters into three chunks of five; for each,
//! set bit i when character i is an uppercase ASCII letter, and map the 5-bit value through
//! `A–Z0–5`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// A Salesforce record id, normalized to its 18-character form.
///
/// Equality and hashing use the normalized form, so an id received as 15 characters equals the
/// same id received as 18.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SalesforceId([u8; 18]);

/// Why a string is not a Salesforce id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is neither 15 nor 18 characters long.
    #[error("a salesforce id has 15 or 18 characters, this one has {0}")]
    Length(usize),
    /// The id holds a character outside `[A-Za-z0-9]`.
    #[error("a salesforce id holds only letters and digits")]
    Charset,
    /// The 18-character id's suffix does not match its first 15 characters.
    #[error("the checksum suffix of this salesforce id does not match")]
    Checksum,
    /// The id is well formed but names another kind of record.
    #[error("expected an id with key prefix {0}")]
    Prefix(&'static str),
}

/// The three-character checksum suffix of a 15-character id.
fn suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (chunk_no, chunk) in id15.chunks(5).enumerate() {
        let bits = chunk
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        out[chunk_no] = SUFFIX_ALPHABET[bits];
    }
    out
}

impl SalesforceId {
    /// Parses a 15- or 18-character id; an 18-character id must carry a valid suffix
    /// (compared case-insensitively, as Salesforce does).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let bytes = s.as_bytes();
        if bytes.len() != 15 && bytes.len() != 18 {
            return Err(IdError::Length(s.chars().count()));
        }
        if !bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(IdError::Charset);
        }
        let computed = suffix(&bytes[..15]);
        if bytes.len() == 18 && !bytes[15..].eq_ignore_ascii_case(&computed) {
            return Err(IdError::Checksum);
        }
        let mut out = [0u8; 18];
        out[..15].copy_from_slice(&bytes[..15]);
        out[15..].copy_from_slice(&computed);
        Ok(Self(out))
    }

    /// Builds an id from a three-character key prefix and a number, as the simulator mints them.
    pub fn mint(prefix: &str, pod: &str, n: u64) -> Self {
        let body = format!(
            "{prefix}{pod}{n:0>width$}",
            width = 15 - prefix.len() - pod.len()
        );
        Self::parse(&body[..15]).unwrap_or_else(|_| unreachable!("minted ids are alphanumeric"))
    }

    /// The 18-character form.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The 15-character case-sensitive form.
    pub fn as_15(&self) -> &str {
        &self.as_str()[..15]
    }

    /// The three-character key prefix (`001` Account, `003` Contact, …).
    pub fn key_prefix(&self) -> &str {
        &self.as_str()[..3]
    }

    /// The object type the key prefix names, for the standard objects sfsync knows.
    pub fn object_type(&self) -> Option<&'static str> {
        Some(match self.key_prefix() {
            "001" => "Account",
            "003" => "Contact",
            "00Q" => "Lead",
            "006" => "Opportunity",
            "00T" => "Task",
            "00U" => "Event",
            "00D" => "Organization",
            "005" => "User",
            _ => return None,
        })
    }
}

impl fmt::Display for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SalesforceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SalesforceId({})", self.as_str())
    }
}

impl std::str::FromStr for SalesforceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SalesforceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SalesforceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_vectors_gain_their_suffix() {
        for (id15, id18) in [
            ("0031I0000081tbP", "0031I0000081tbPQAQ"),
            ("0031I0000081tb0", "0031I0000081tb0QAA"),
            ("0067F000003pmdW", "0067F000003pmdWQAQ"),
            ("00D7F00000107Xs", "00D7F00000107XsUAI"),
            ("00558000001N0Ke", "00558000001N0KeAAK"),
            ("a0D30000001n7Pi", "a0D30000001n7PiEAI"),
        ] {
            assert_eq!(
                SalesforceId::parse(id15).map(|i| i.to_string()),
                Ok(id18.to_string())
            );
            assert_eq!(
                SalesforceId::parse(id18).map(|i| i.to_string()),
                Ok(id18.to_string())
            );
        }
    }

    #[test]
    fn the_widely_copied_wrong_suffix_is_rejected() {
        assert_eq!(
            SalesforceId::parse("a0D30000001n7PiEAC"),
            Err(IdError::Checksum)
        );
    }

    #[test]
    fn the_suffix_is_compared_case_insensitively() {
        assert!(SalesforceId::parse("0031I0000081tbPqaq").is_ok());
    }

    #[test]
    fn fifteen_and_eighteen_character_forms_are_equal() {
        assert_eq!(
            SalesforceId::parse("0031I0000081tbP"),
            SalesforceId::parse("0031I0000081tbPQAQ")
        );
    }

    #[test]
    fn bad_lengths_and_characters_are_named() {
        assert_eq!(SalesforceId::parse("003"), Err(IdError::Length(3)));
        assert_eq!(
            SalesforceId::parse("0031I0000081tb-"),
            Err(IdError::Charset)
        );
    }

    #[test]
    fn minted_ids_carry_the_prefix_and_a_valid_suffix() {
        let id = SalesforceId::mint("001", "5g", 42);
        assert_eq!(id.key_prefix(), "001");
        assert_eq!(id.object_type(), Some("Account"));
        assert!(SalesforceId::parse(id.as_str()).is_ok());
    }
}
