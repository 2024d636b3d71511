//! JSON request bodies whose errors name the field at fault (`status: invalid type:
//! integer `5`, expected a string`), where actix's extractor gives only a line and
//! column. Limits and content type are as before: over `http.max_body_bytes` is 413,
//! anything but JSON is 400; a body slower than `http.body_timeout_ms` is 408.

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::body_deadline;
use super::errors::ApiError;
use super::AppState;

pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // As actix's own extractor: `application/json` or any `+json` type.
        let content_type = req.content_type();
        let is_json = content_type == "application/json" || content_type.ends_with("+json");
        let (limit, timeout_ms) = req.app_data::<web::Data<AppState>>().map_or((0, 0), |s| {
            (
                s.settings.http.max_body_bytes,
                s.settings.http.body_timeout_ms,
            )
        });
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::Malformed(
                    "invalid JSON body: Content type error: expected `application/json`".into(),
                ));
            }
            let body = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError::TooLarge { limit },
                    Some(e) if body_deadline::is_timeout(e) => {
                        ApiError::BodyTimeout { ms: timeout_ms }
                    }
                    _ => ApiError::Malformed(format!("invalid JSON body: {e}")),
                })?;
            parse(&body).map(Json)
        })
    }
}

/// The body as a `T`, or an error naming the path to the field that is wrong.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A syntax error between fields has no field to name; its line and column are
        // the news. One inside a value (a lone surrogate `\ud800`) is that field's.
        if path == "." || inner.is_eof() {
            ApiError::Malformed(format!("invalid JSON body: {inner}"))
        } else {
            ApiError::Malformed(format!("invalid JSON body: `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("invalid JSON body: {e}")))?;
    if memchr::memmem::find(body, NUL_ESCAPE).is_some() {
        if let Some(path) = serde_json::from_slice(body).ok().and_then(|v| nul_at(&v)) {
            return Err(ApiError::Malformed(format!(
                "invalid JSON body: `{path}`: must not contain U+0000 (NUL)"
            )));
        }
    }
    Ok(value)
}

const NUL_ESCAPE: &[u8] = b"\\u0000";

/// The path of the first string or key holding U+0000, which no column can store.
fn nul_at(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v).map(|rest| format!("[{i}]{}", dotted(&rest)))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(k.replace('\0', "\\u0000"));
            }
            nul_at(v).map(|rest| format!("{k}{}", dotted(&rest)))
        }),
        _ => None,
    }
}

fn dotted(rest: &str) -> String {
    match rest.chars().next() {
        None | Some('[') => rest.to_owned(),
        Some(_) => format!(".{rest}"),
    }
}
