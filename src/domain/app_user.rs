//! The application's own user id: whom a write is made for, and whose Salesforce connection
//! (when they connected one) makes it.

use serde::{Deserialize, Serialize};

/// The longest application user id.
const MAX_LEN: usize = 64;

/// An application user id: 1 to 64 characters of ASCII letters, digits and `.`, `_`, `-`, `@`,
/// `+` (an id, a login name or an email address). The character set keeps it safe in store keys,
/// URLs and logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AppUser(String);

/// Why a string is not an application user id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a user id is 1 to 64 characters of letters, digits and . _ - @ +")]
pub struct AppUserError;

impl AppUser {
    /// Checks and wraps a user id.
    pub fn parse(s: &str) -> Result<Self, AppUserError> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_@+".contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(AppUserError)
        }
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AppUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AppUser {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_logins_and_emails_are_user_ids() {
        for ok in ["u42", "alice", "alice.smith+sales@example.com", "A_B-C"] {
            assert_eq!(AppUser::parse(ok).map(|u| u.to_string()), Ok(ok.into()));
        }
    }

    #[test]
    fn empty_long_or_key_unsafe_ids_are_refused() {
        let long = "a".repeat(65);
        for bad in ["", long.as_str(), "a/b", "a b", "a\0b", "ä", "a%2F"] {
            assert_eq!(AppUser::parse(bad), Err(AppUserError), "{bad:?}");
        }
        assert!(serde_json::from_str::<AppUser>("\"a/b\"").is_err());
    }
}
