//! Console sessions: random ids in an `HttpOnly`, `SameSite=Strict` cookie, held in memory with
//! an absolute expiry, each with its own CSRF token that every form carries back.
//!
//! Ids and CSRF tokens are 32 random bytes. The store keys sessions by the SHA-256 of their id,
//! and tokens are compared as digests, so neither a lookup's nor a comparison's timing says
//! anything about a secret. Secrets are never logged. Sessions live in memory: a restart signs
//! everyone out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub(super) const COOKIE: &str = "sfsync_console";

/// The most sessions held at once; past it the one closest to expiry goes.
const MAX_SESSIONS: usize = 1_000;

/// A fresh random secret: 32 bytes, base64url.
pub(super) fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether two secrets are equal, compared as digests.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    !a.is_empty() && digest(a) == digest(b)
}

/// A note shown once on the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flash {
    /// Whether it reports a failure.
    pub(super) error: bool,
    /// What happened.
    pub(super) message: String,
}

struct Session {
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The signed-in session of a request, as the middleware found it.
#[derive(Clone)]
pub(super) struct Signed {
    id: String,
    /// The token every form of this session carries.
    pub(super) csrf: String,
}

/// The sessions of one app.
pub(super) struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Sessions that last `ttl` from sign-in.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            map: Mutex::default(),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long a session lasts.
    pub(super) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns its id (for the cookie).
    pub(super) fn start(&self) -> String {
        let id = random_token();
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            let soonest = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k);
            if let Some(k) = soonest {
                map.remove(&k);
            }
        }
        map.insert(
            digest(&id),
            Session {
                csrf: random_token(),
                expires: now + self.ttl,
                flash: None,
            },
        );
        id
    }

    /// The live session with this id.
    pub(super) fn find(&self, id: &str) -> Option<Signed> {
        let key = digest(id);
        let mut map = self.map();
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => Some(Signed {
                id: id.to_string(),
                csrf: s.csrf.clone(),
            }),
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub(super) fn end(&self, signed: &Signed) {
        self.map().remove(&digest(&signed.id));
    }

    /// Leaves a note for the session's next page.
    pub(super) fn flash(&self, signed: &Signed, error: bool, message: impl Into<String>) {
        if let Some(s) = self.map().get_mut(&digest(&signed.id)) {
            s.flash = Some(Flash {
                error,
                message: message.into(),
            });
        }
    }

    /// Takes the session's note, if any.
    pub(super) fn take_flash(&self, signed: &Signed) -> Option<Flash> {
        self.map()
            .get_mut(&digest(&signed.id))
            .and_then(|s| s.flash.take())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, on `path`, for `max_age` (zero:
/// removed), `Secure` when the console is served over TLS.
pub(super) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        max_age.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.start();

        let signed = sessions.find(&id).expect("live");
        assert!(sessions.find("another-id").is_none());
        sessions.end(&signed);

        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO);
        let id = sessions.start();

        assert!(sessions.find(&id).is_none());
    }

    #[test]
    fn a_flash_is_shown_once() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let signed = sessions.find(&sessions.start()).expect("live");
        sessions.flash(&signed, false, "retried");

        assert_eq!(
            sessions.take_flash(&signed).map(|f| f.message).as_deref(),
            Some("retried")
        );
        assert!(sessions.take_flash(&signed).is_none());
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; sfsync_console=abc".parse().expect("v"),
        );
        headers.append(header::COOKIE, "b=2".parse().expect("v"));

        assert_eq!(cookie(&headers, COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "b").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_when_asked() {
        let plain = set_cookie(COOKIE, "v", "/", Duration::from_secs(5), false);
        let secure = set_cookie(COOKIE, "v", "/", Duration::from_secs(5), true);

        assert_eq!(
            plain,
            "sfsync_console=v; Path=/; Max-Age=5; HttpOnly; SameSite=Strict"
        );
        assert!(secure.ends_with("; Secure"));
    }
}
