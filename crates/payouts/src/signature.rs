//! Verifying a provider event's `Stripe-Signature` header (`t=<unix seconds>,v1=<hex>[,v1=…]`):
//! HMAC-SHA-256 under the endpoint secret of `"{t}.{raw body}"`, compared in constant time with
//! every `v1` value (several during a secret rotation) under every configured secret, and the
//! timestamp within a tolerance of now (replays of an old, validly signed event are refused).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a signature was refused (each logged; the sender only learns "400").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No `t=` or no `v1=` in the header, or a timestamp that is not a number.
    Malformed,
    /// The timestamp is further than the tolerance from now.
    Stale { age_seconds: i64 },
    /// No v1 value matches under any secret.
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureError::Malformed => write!(f, "malformed signature header"),
            SignatureError::Stale { age_seconds } => {
                write!(f, "signature timestamp {age_seconds} s away from now")
            }
            SignatureError::Mismatch => write!(f, "no signature matches"),
        }
    }
}

/// The hex HMAC-SHA-256 of `"{timestamp}.{body}"` under `secret` (what the provider sends).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    mac(secret, timestamp, body)
        .map(|mac| hex::encode(mac.finalize().into_bytes()))
        .unwrap_or_default()
}

/// The MAC state over the signed payload (HMAC takes keys of any length, so this is always
/// `Some`).
fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// Checks `header` against `body` under any of `secrets` at `now` (unix seconds).
pub fn verify(
    header: &str,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            Some(("v1", value)) => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age_seconds = now.saturating_sub(timestamp);
    if age_seconds.abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale { age_seconds });
    }
    for secret in secrets {
        for signature in &signatures {
            // `verify_slice` compares in constant time.
            if mac(secret, timestamp, body).is_some_and(|mac| mac.verify_slice(signature).is_ok()) {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    const T: i64 = 1_492_774_577;
    /// Stripe's published example signature of BODY at T under `whsec_test_secret`.
    const PUBLISHED: &str = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";

    fn secrets(list: &[&str]) -> Vec<String> {
        list.iter().map(|secret| (*secret).to_owned()).collect()
    }

    #[test]
    fn stripes_published_example_signs_and_verifies() {
        assert_eq!(sign("whsec_test_secret", T, BODY), PUBLISHED);
        let header = format!("t={T},v1={PUBLISHED}");
        assert_eq!(
            verify(&header, BODY, &secrets(&["whsec_test_secret"]), T + 10),
            Ok(())
        );
    }

    #[test]
    fn any_v1_under_any_secret_matches_during_a_rotation() {
        let header = format!("t={T},v1={},v1={PUBLISHED},v0=ignored", "00".repeat(32));
        assert_eq!(
            verify(
                &header,
                BODY,
                &secrets(&["whsec_new", "whsec_test_secret"]),
                T
            ),
            Ok(())
        );
    }

    #[test]
    fn stale_tampered_and_malformed_signatures_are_refused() {
        let header = format!("t={T},v1={PUBLISHED}");
        let known = secrets(&["whsec_test_secret"]);
        assert_eq!(
            verify(&header, BODY, &known, T + 301),
            Err(SignatureError::Stale { age_seconds: 301 })
        );
        assert_eq!(
            verify(
                &header,
                br#"{"id":"evt_test_webhook","object":"evil"}"#,
                &known,
                T
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&header, BODY, &secrets(&["whsec_other"]), T),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&format!("v1={PUBLISHED}"), BODY, &known, T),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&format!("t={T}"), BODY, &known, T),
            Err(SignatureError::Malformed)
        );
    }
}
