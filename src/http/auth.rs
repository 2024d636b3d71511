//! Bearer-token authentication for `/api/*` and `/ws`. With no token configured every
//! request is refused: the API is closed by default, never open.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use hmac::Mac;
use secrecy::ExposeSecret;

use super::errors::ApiError;
use super::AppState;

/// Proof that the request carried a valid `Authorization: Bearer` token.
pub struct Authenticated;

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(check(req))
    }
}

fn check(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Unexpected(anyhow::anyhow!("application state missing")))?;
    let header = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>`".into()))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::Unauthorized("`Authorization` must be `Bearer <token>`".into()))?;
    if token_matches(token, &state.settings.secrets.api_tokens) {
        Ok(Authenticated)
    } else {
        Err(ApiError::Unauthorized("invalid token".into()))
    }
}

/// Constant-time in the token's content: both sides are reduced to MACs under a
/// per-process key before comparison, so lengths and prefixes leak nothing.
pub fn token_matches(token: &str, valid: &[secrecy::SecretString]) -> bool {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let mac = |s: &str| {
        // unwrap: HMAC takes keys of any length
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        m.update(s.as_bytes());
        m
    };
    let presented = mac(token).finalize().into_bytes();
    let mut ok = false;
    for v in valid {
        ok |= mac(v.expose_secret()).verify_slice(&presented).is_ok();
    }
    ok && !token.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_configured_token_matches() {
        let valid = vec![secrecy::SecretString::from("abc123".to_owned())];
        assert!(token_matches("abc123", &valid));
        assert!(!token_matches("abc12", &valid));
        assert!(!token_matches("abc1234", &valid));
        assert!(!token_matches("", &valid));
        assert!(!token_matches("abc123", &[]));
    }
}
