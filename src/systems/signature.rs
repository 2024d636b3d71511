//! HMAC-SHA256 webhook signatures: checking the ones GitHub, Linear and the agent API
//! send, and making the ones statsync sends to the agent API; and the shared tokens
//! some senders present instead of a signature (A2A push notifications).
//! Compares only in constant time, never accepts a signature that is not exactly 64 hex
//! digits, and never puts the secret or the expected value in an error.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of `X-Hub-Signature-256` and `X-Statsync-Signature` values.
pub const SHA256_PREFIX: &str = "sha256=";

/// Length of a hex-encoded SHA-256 MAC.
const HEX_LEN: usize = 64;

/// Why a delivery's signature was refused (the HTTP layer answers 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is missing")]
    Missing,
    #[error("signature is malformed: {0}")]
    Malformed(String),
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks `provided_hex`, the bare hex HMAC-SHA256 of `body` under `secret`.
pub fn verify_hex_hmac_sha256(
    secret: &[u8],
    body: &[u8],
    provided_hex: &str,
) -> Result<(), SignatureError> {
    // Length first: an empty or truncated value must never reach a comparison.
    if provided_hex.len() != HEX_LEN {
        return Err(SignatureError::Malformed(format!(
            "expected {HEX_LEN} hex digits, got {} characters",
            provided_hex.chars().count()
        )));
    }
    let mut provided = [0u8; HEX_LEN / 2];
    hex::decode_to_slice(provided_hex, &mut provided)
        .map_err(|_| SignatureError::Malformed("not hexadecimal".into()))?;
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&provided)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks a `sha256=<64 hex>` header value. The prefix is matched exactly (lower case);
/// a bare `sha256=` never verifies.
pub fn verify_prefixed(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let value = header.ok_or(SignatureError::Missing)?;
    let hex = value.strip_prefix(SHA256_PREFIX).ok_or_else(|| {
        SignatureError::Malformed(format!(
            "expected `{SHA256_PREFIX}` followed by {HEX_LEN} hex digits"
        ))
    })?;
    verify_hex_hmac_sha256(secret, body, hex)
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`.
pub fn verify_github(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    verify_prefixed(secret, body, header)
}

/// Linear: `Linear-Signature: <hex>`, no prefix.
pub fn verify_linear(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    verify_hex_hmac_sha256(secret, body, header.ok_or(SignatureError::Missing)?)
}

/// Agent API: `X-Statsync-Signature: sha256=<hex>`.
pub fn verify_agentapi(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    verify_prefixed(secret, body, header)
}

/// A shared token presented as it is (A2A's notification token, a Bearer credential):
/// the body is not signed. Both sides are reduced to an HMAC of a fixed text under
/// each as key before they are compared, so the comparison is constant-time and its
/// time says nothing of either length.
pub fn verify_token(
    secret: &[u8],
    _body: &[u8],
    provided: Option<&str>,
) -> Result<(), SignatureError> {
    const PROBE: &[u8] = b"statsync token check";
    let provided = provided.ok_or(SignatureError::Missing)?;
    if provided.is_empty() {
        return Err(SignatureError::Malformed("the token is empty".into()));
    }
    let mut theirs = mac(provided.as_bytes());
    theirs.update(PROBE);
    let mut ours = mac(secret);
    ours.update(PROBE);
    ours.verify_slice(&theirs.finalize().into_bytes())
        .map_err(|_| SignatureError::Mismatch)
}

/// Lower-case hex HMAC-SHA256 of `body` under `secret`.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `sha256=<hex>`, the value of an `X-Statsync-Signature` header.
pub fn sign_prefixed(secret: &[u8], body: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", sign_hex(secret, body))
}

#[allow(clippy::expect_used)]
fn mac(secret: &[u8]) -> HmacSha256 {
    // unwrap: HMAC takes a key of any length (longer ones are hashed), so this never fails.
    HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const GOOD: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_vector_verifies() {
        assert_eq!(verify_github(SECRET, BODY, Some(GOOD)), Ok(()));
        assert_eq!(sign_prefixed(SECRET, BODY), GOOD);
        assert_eq!(sign_hex(SECRET, BODY), &GOOD[SHA256_PREFIX.len()..]);
    }

    #[test]
    fn a_bare_or_empty_signature_never_verifies() {
        for bad in ["", "sha256=", "sha256", "757107ea"] {
            assert!(
                matches!(
                    verify_github(SECRET, BODY, Some(bad)),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            verify_linear(SECRET, BODY, Some("")),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn a_truncated_or_extended_signature_is_malformed() {
        let truncated = &GOOD[..GOOD.len() - 1];
        assert!(matches!(
            verify_github(SECRET, BODY, Some(truncated)),
            Err(SignatureError::Malformed(_))
        ));
        let extended = format!("{GOOD}0");
        assert!(matches!(
            verify_github(SECRET, BODY, Some(&extended)),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn one_changed_digit_is_a_mismatch() {
        let mut changed = GOOD.to_owned();
        changed.replace_range(GOOD.len() - 1.., "f");
        assert_eq!(
            verify_github(SECRET, BODY, Some(&changed)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn non_hex_of_the_right_length_is_malformed() {
        let non_hex = format!("{SHA256_PREFIX}{}", "g".repeat(64));
        assert_eq!(
            verify_github(SECRET, BODY, Some(&non_hex)),
            Err(SignatureError::Malformed("not hexadecimal".into()))
        );
        // 64 bytes but not 64 characters: multibyte text is refused without panicking.
        let multibyte = format!("{SHA256_PREFIX}{}", "é".repeat(32));
        assert!(matches!(
            verify_github(SECRET, BODY, Some(&multibyte)),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn the_prefix_is_matched_exactly() {
        let hex = &GOOD[SHA256_PREFIX.len()..];
        for prefix in ["SHA256=", "Sha256=", "sha1=", " sha256=", "sha256:"] {
            let header = format!("{prefix}{hex}");
            assert!(
                matches!(
                    verify_github(SECRET, BODY, Some(&header)),
                    Err(SignatureError::Malformed(_))
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn a_wrong_secret_or_body_is_a_mismatch() {
        assert_eq!(
            verify_github(b"another secret", BODY, Some(GOOD)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_github(SECRET, b"Hello, World?", Some(GOOD)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_missing_header_is_missing() {
        assert_eq!(
            verify_github(SECRET, BODY, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_linear(SECRET, BODY, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_agentapi(SECRET, BODY, None),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn linear_signatures_are_bare_hex() {
        let hex = sign_hex(SECRET, BODY);
        assert_eq!(verify_linear(SECRET, BODY, Some(&hex)), Ok(()));
        assert!(matches!(
            verify_linear(SECRET, BODY, Some(GOOD)),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn agentapi_signatures_round_trip() {
        let body = br#"{"taskId":"t-1","state":"working","timestamp":"2024-05-01T12:00:00Z"}"#;
        let header = sign_prefixed(b"agent secret", body);
        assert_eq!(
            verify_agentapi(b"agent secret", body, Some(&header)),
            Ok(())
        );
        assert_eq!(
            verify_agentapi(b"agent secret", b"{}", Some(&header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_token_verifies_only_when_it_is_the_secret() {
        let secret = b"a2a notification token";
        assert_eq!(
            verify_token(secret, b"{}", Some("a2a notification token")),
            Ok(())
        );
        for wrong in ["a2a notification toke", "a2a notification token ", "A2A"] {
            assert_eq!(
                verify_token(secret, b"{}", Some(wrong)),
                Err(SignatureError::Mismatch),
                "{wrong}"
            );
        }
        assert_eq!(
            verify_token(secret, b"{}", None),
            Err(SignatureError::Missing)
        );
        assert!(matches!(
            verify_token(secret, b"{}", Some("")),
            Err(SignatureError::Malformed(_))
        ));
    }

    #[test]
    fn errors_never_show_the_expected_value_or_the_secret() {
        let expected = sign_hex(SECRET, BODY);
        let wrong = format!("{SHA256_PREFIX}{}", "0".repeat(64));
        for err in [
            verify_github(SECRET, BODY, Some(&wrong)).unwrap_err(),
            verify_github(SECRET, BODY, Some("sha256=")).unwrap_err(),
            verify_github(SECRET, BODY, None).unwrap_err(),
        ] {
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&expected), "{shown}");
            assert!(!shown.contains("Secret"), "{shown}");
        }
    }
}
