//! GitHub App authentication: statsync acts as the team's own App, with least
//! privilege, instead of a person's token. It signs a short JWT with the App's private
//! key (RS256; `iss` the App id, `iat` 60 s in the past against clock drift, `exp` nine
//! minutes on, under GitHub's ten), finds the installation that covers a repository
//! (`GET /repos/{owner}/{repo}/installation`, cached per owner), and exchanges the JWT
//! for an installation token (`POST /app/installations/{id}/access_tokens`), cached
//! until five minutes before it expires. The App's bot (`<slug>[bot]`, from `GET /app`)
//! is statsync's identity on GitHub.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::Value;

use super::refs::segment;
use super::rest::{as_github, classify};
use crate::systems::outbound::{
    classify_status, excerpt, exchange, time_at, ErrorCode, Exchange, OutboundError,
};

/// A token is replaced this long before it expires.
const RENEW_BEFORE: TimeDelta = TimeDelta::minutes(5);

#[derive(Serialize)]
struct Claims<'a> {
    iat: i64,
    exp: i64,
    iss: &'a str,
}

/// Which installation a call needs: the owner of the repository it touches, or, for a
/// call that names no repository (a project item), the App's first installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Repo { owner: &'a str, repo: &'a str },
    Any,
}

pub struct AppAuth {
    app_id: String,
    key: EncodingKey,
    http: reqwest::Client,
    api_url: String,
    /// Owner (lower-cased, or "" for `Scope::Any`) → installation id.
    installations: Mutex<HashMap<String, u64>>,
    /// Installation id → token and its expiry.
    tokens: Mutex<HashMap<u64, (SecretString, DateTime<Utc>)>>,
}

impl AppAuth {
    /// The App `app_id` with its private key (PEM, PKCS#1 as GitHub issues it, or
    /// PKCS#8).
    pub fn new(
        app_id: &str,
        private_key: &SecretString,
        http: reqwest::Client,
        api_url: &str,
    ) -> Result<AppAuth, String> {
        let key = EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
            .map_err(|e| format!("GITHUB_APP_PRIVATE_KEY is not an RSA private key in PEM: {e}"))?;
        Ok(AppAuth {
            app_id: app_id.to_owned(),
            key,
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            installations: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The App's own JWT, valid from a minute ago for nine minutes.
    pub fn jwt(&self, now: DateTime<Utc>) -> Result<String, OutboundError> {
        let claims = Claims {
            iat: (now - TimeDelta::seconds(60)).timestamp(),
            exp: (now + TimeDelta::minutes(9)).timestamp(),
            iss: &self.app_id,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).map_err(|e| {
            OutboundError::new(ErrorCode::Unauthorized, format!("signing the App JWT: {e}"))
        })
    }

    /// A call authenticated as the App itself; a non-2xx answer is its classified error.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Exchange, OutboundError> {
        let mut request = as_github(
            self.http.request(method, format!("{}{path}", self.api_url)),
            &self.jwt(Utc::now())?,
        );
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = exchange(request).await?;
        if classify_status(answer.status).is_some() {
            return Err(classify(answer.status, &answer.headers, &answer.body));
        }
        Ok(answer)
    }

    async fn as_app(&self, method: reqwest::Method, path: &str) -> Result<Value, OutboundError> {
        let answer = self.call(method, path, None).await?;
        json_of(path, &answer.body)
    }

    /// The App's bot login, statsync's identity on GitHub.
    pub async fn bot_login(&self) -> Result<String, OutboundError> {
        let app = self.as_app(reqwest::Method::GET, "/app").await?;
        let slug = app["slug"].as_str().ok_or_else(|| {
            OutboundError::new(
                ErrorCode::ValidationFailed,
                "GET /app answered without a slug",
            )
        })?;
        Ok(format!("{slug}[bot]"))
    }

    async fn installation(&self, scope: Scope<'_>) -> Result<u64, OutboundError> {
        let key = match scope {
            Scope::Repo { owner, .. } => owner.to_lowercase(),
            Scope::Any => String::new(),
        };
        if let Some(id) = self.lock_installations().get(&key) {
            return Ok(*id);
        }
        let id = match scope {
            Scope::Repo { owner, repo } => {
                let path = format!("/repos/{}/{}/installation", segment(owner), segment(repo));
                self.as_app(reqwest::Method::GET, &path).await?["id"].as_u64()
            }
            Scope::Any => {
                let all = self
                    .as_app(reqwest::Method::GET, "/app/installations")
                    .await?;
                all.as_array()
                    .and_then(|a| a.first())
                    .and_then(|i| i["id"].as_u64())
            }
        }
        .ok_or_else(|| {
            OutboundError::new(
                ErrorCode::NotFound,
                format!(
                    "the GitHub App {} is not installed for {scope:?}",
                    self.app_id
                ),
            )
        })?;
        self.lock_installations().insert(key, id);
        Ok(id)
    }

    /// An installation token for `scope`, from the cache while it has five minutes
    /// left.
    pub async fn token(&self, scope: Scope<'_>) -> Result<SecretString, OutboundError> {
        let installation = self.installation(scope).await?;
        let now = Utc::now();
        if let Some((token, expires)) = self.lock_tokens().get(&installation) {
            if *expires - RENEW_BEFORE > now {
                return Ok(token.clone());
            }
        }
        let path = format!("/app/installations/{installation}/access_tokens");
        let answer = self.as_app(reqwest::Method::POST, &path).await?;
        let (Some(token), Some(expires)) =
            (answer["token"].as_str(), time_at(&answer, "/expires_at"))
        else {
            return Err(OutboundError::new(
                ErrorCode::Upstream5xx,
                format!("{path} answered without a token and its expires_at"),
            ));
        };
        let token = SecretString::from(token.to_owned());
        self.lock_tokens()
            .insert(installation, (token.clone(), expires));
        Ok(token)
    }

    /// Forgets `scope`'s token (GitHub refused it): the next call gets a new one.
    pub fn forget(&self, scope: Scope<'_>) {
        let key = match scope {
            Scope::Repo { owner, .. } => owner.to_lowercase(),
            Scope::Any => String::new(),
        };
        if let Some(id) = self.lock_installations().get(&key).copied() {
            self.lock_tokens().remove(&id);
        }
    }

    // Poisoned caches only lose cached ids and tokens: start them afresh.
    fn lock_installations(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.installations.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_tokens(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, (SecretString, DateTime<Utc>)>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A 2xx answer's body as JSON.
pub(crate) fn json_of(path: &str, body: &[u8]) -> Result<Value, OutboundError> {
    serde_json::from_slice(body).map_err(|e| {
        OutboundError::new(
            ErrorCode::Upstream5xx,
            format!("{path} answered with no JSON ({e}): {}", excerpt(body)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_is_not_pem_is_refused_naming_the_variable() {
        let err = AppAuth::new(
            "1",
            &SecretString::from("not a key".to_owned()),
            reqwest::Client::new(),
            "http://127.0.0.1:9",
        )
        .err()
        .expect("refused");
        assert!(err.contains("GITHUB_APP_PRIVATE_KEY"), "{err}");
    }
}
