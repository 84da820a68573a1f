//! Standard Webhooks verification: HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{raw body}"`, base64 signatures tagged `v1,`, keys given as
//! `whsec_` + base64. Several signatures per header and several secrets per org are accepted so keys
//! rotate without downtime. Comparisons use `hmac::Mac::verify_slice`, which is constant-time and
//! checks the length (an empty or truncated signature never verifies).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};

use crate::domain::WebhookSecret;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signed request was refused. Messages carry no secret and no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header is absent.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but malformed.
    #[error("malformed header {0}")]
    MalformedHeader(&'static str),
    /// The timestamp is outside the allowed window.
    #[error("webhook-timestamp outside the allowed window")]
    Stale,
    /// No signature matched any configured secret.
    #[error("no signature matches")]
    NoMatch,
}

/// The three Standard Webhooks headers, as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedHeaders<'a> {
    /// `webhook-id`.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`.
    pub signature: Option<&'a str>,
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Verifies a signed request against every secret; on success returns the `webhook-id`.
///
/// `now` is seconds since the epoch; a timestamp more than `tolerance_s` away from it, in either
/// direction, is refused. The body is not parsed here.
pub fn verify<'a>(
    headers: SignedHeaders<'a>,
    body: &[u8],
    secrets: &[WebhookSecret],
    now: i64,
    tolerance_s: u64,
) -> Result<&'a str, SignatureError> {
    let id = headers
        .id
        .ok_or(SignatureError::MissingHeader("webhook-id"))?;
    let ts = headers
        .timestamp
        .ok_or(SignatureError::MissingHeader("webhook-timestamp"))?;
    let sigs = headers
        .signature
        .ok_or(SignatureError::MissingHeader("webhook-signature"))?;
    if !valid_id(id) {
        return Err(SignatureError::MalformedHeader("webhook-id"));
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedHeader("webhook-timestamp"));
    }
    let ts_value: i64 = ts
        .parse()
        .map_err(|_| SignatureError::MalformedHeader("webhook-timestamp"))?;
    if ts_value.abs_diff(now) > tolerance_s {
        return Err(SignatureError::Stale);
    }
    let candidates: Vec<Vec<u8>> = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    for secret in secrets {
        let mut mac = match HmacSha256::new_from_slice(secret.key()) {
            Ok(m) => m,
            Err(_) => continue,
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(body);
        for candidate in &candidates {
            if mac.clone().verify_slice(candidate).is_ok() {
                return Ok(id);
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// Signs a request as a Standard Webhooks sender does: returns the `webhook-signature` value.
/// Used by `sfsync replay`, the benchmarks and the tests.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).expect("secret")
    }

    fn from_key(key: &[u8]) -> WebhookSecret {
        secret(&format!("whsec_{}", STANDARD.encode(key)))
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SVIX_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const REF_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const REF_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const REF_TS: i64 = 1_649_367_553;
    const REF_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const REF_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    const REF_WRONG: &str = "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE=";

    #[test]
    fn the_svix_documentation_vector_verifies() {
        let s = [secret(SVIX_SECRET)];
        let h = headers(SVIX_ID, "1614265330", SVIX_SIG);
        assert_eq!(verify(h, SVIX_BODY, &s, 1_614_265_330, 300), Ok(SVIX_ID));
        assert_eq!(
            sign(s[0].key(), SVIX_ID, 1_614_265_330, SVIX_BODY),
            SVIX_SIG
        );
    }

    #[test]
    fn the_reference_library_vector_verifies_and_its_negatives_fail() {
        let s = [secret(REF_SECRET)];
        let ts = REF_TS.to_string();
        assert_eq!(
            verify(headers(REF_ID, &ts, REF_SIG), REF_BODY, &s, REF_TS, 300),
            Ok(REF_ID)
        );
        let wrong = "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=";
        assert_eq!(
            verify(headers(REF_ID, &ts, wrong), REF_BODY, &s, REF_TS, 300),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(headers(REF_ID, &ts, REF_WRONG), REF_BODY, &s, REF_TS, 300),
            Err(SignatureError::NoMatch)
        );
        let with_valid = format!("{REF_WRONG} {REF_SIG}");
        assert_eq!(
            verify(headers(REF_ID, &ts, &with_valid), REF_BODY, &s, REF_TS, 300),
            Ok(REF_ID)
        );
    }

    #[test]
    fn the_window_is_exact_at_both_edges() {
        let s = [secret(REF_SECRET)];
        let ts = REF_TS.to_string();
        let h = headers(REF_ID, &ts, REF_SIG);
        for (now, ok) in [
            (REF_TS + 300, true),
            (REF_TS - 300, true),
            (REF_TS + 301, false),
            (REF_TS - 301, false),
        ] {
            let got = verify(h, REF_BODY, &s, now, 300);
            assert_eq!(got.is_ok(), ok, "now = ts {:+}", now - REF_TS);
            if !ok {
                assert_eq!(got, Err(SignatureError::Stale));
            }
        }
    }

    #[test]
    fn empty_truncated_and_garbage_signatures_fail_without_panicking() {
        let s = [secret(REF_SECRET)];
        let ts = REF_TS.to_string();
        for sig in [
            "v1,",
            "v1,tZ1I4/hDygAJgO5T",
            "v1,!!!not-base64!!!",
            "v1a,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "v0,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
            "",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17a",
        ] {
            assert_eq!(
                verify(headers(REF_ID, &ts, sig), REF_BODY, &s, REF_TS, 300),
                Err(SignatureError::NoMatch),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let s = [secret(REF_SECRET)];
        let none = SignedHeaders {
            id: None,
            timestamp: Some("1"),
            signature: Some(REF_SIG),
        };
        assert_eq!(
            verify(none, REF_BODY, &s, REF_TS, 300),
            Err(SignatureError::MissingHeader("webhook-id"))
        );
        for (id, ts, which) in [
            ("msg.with.dots", "1649367553", "webhook-id"),
            ("msg", "-1649367553", "webhook-timestamp"),
            ("msg", "16493675530000000000000", "webhook-timestamp"),
            ("msg", "1649367553.0", "webhook-timestamp"),
        ] {
            assert_eq!(
                verify(headers(id, ts, REF_SIG), REF_BODY, &s, REF_TS, 300),
                Err(SignatureError::MalformedHeader(which))
            );
        }
    }

    #[test]
    fn any_of_several_secrets_verifies_so_keys_rotate() {
        let old = secret(SVIX_SECRET);
        let new = secret(REF_SECRET);
        let ts = REF_TS.to_string();
        let old_sig = sign(old.key(), REF_ID, REF_TS, REF_BODY);
        let both = format!("{old_sig} {REF_SIG}");
        let with = |keys: &[WebhookSecret], sig: &str| {
            verify(headers(REF_ID, &ts, sig), REF_BODY, keys, REF_TS, 300).map(str::to_string)
        };
        let rotating = [secret(SVIX_SECRET), secret(REF_SECRET)];
        assert!(with(&rotating, &both).is_ok());
        assert!(with(&rotating, REF_SIG).is_ok());
        assert!(with(&rotating, &old_sig).is_ok());
        let rotated = [new];
        assert_eq!(with(&rotated, &old_sig), Err(SignatureError::NoMatch));
    }

    #[test]
    fn a_single_flipped_byte_anywhere_fails() {
        let key = secret(REF_SECRET).key().to_vec();
        let s = [from_key(&key)];
        let ts = REF_TS.to_string();
        for i in 0..REF_BODY.len() {
            let mut body = REF_BODY.to_vec();
            body[i] ^= 0x01;
            assert!(verify(headers(REF_ID, &ts, REF_SIG), &body, &s, REF_TS, 300).is_err());
        }
        for i in 0..key.len() {
            let mut k = key.clone();
            k[i] ^= 0x01;
            let flipped = [from_key(&k)];
            assert!(
                verify(
                    headers(REF_ID, &ts, REF_SIG),
                    REF_BODY,
                    &flipped,
                    REF_TS,
                    300
                )
                .is_err()
            );
        }
        let other_ts = (REF_TS + 1).to_string();
        assert!(
            verify(
                headers(REF_ID, &other_ts, REF_SIG),
                REF_BODY,
                &s,
                REF_TS,
                300
            )
            .is_err()
        );
        assert!(
            verify(
                headers("msg_27UH4WbU6Z5A5EzD8u03UvzRbpK", &ts, REF_SIG),
                REF_BODY,
                &s,
                REF_TS,
                300
            )
            .is_err()
        );
    }
}
