//! Query strings whose errors name the parameter at fault (`limit: invalid digit found
//! in string`), where actix's extractor names none. Every value is checked before it
//! reaches a handler: text with U+0000 (which PostgreSQL cannot hold) or longer than
//! any parameter needs is refused with a 400 naming the parameter, never a 500 later.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use serde::de::DeserializeOwned;

use super::errors::ApiError;

/// Longer than any id, room list or cursor a client sends.
pub const MAX_PARAMETER_LEN: usize = 4096;

pub struct Query<T>(pub T);

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(Query))
    }
}

fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if let Err(why) = super::text::acceptable(&value, MAX_PARAMETER_LEN) {
            return Err(ApiError::Malformed(format!(
                "invalid query: `{name}`: {why}"
            )));
        }
    }
    let pairs = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(pairs).map_err(|e| ApiError::malformed_at("query", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Q {
        system: String,
        limit: Option<i64>,
    }

    #[test]
    fn errors_name_the_parameter() {
        for (query, field) in [
            ("system=github&limit=abc", "`limit`"),
            ("system=a%00b", "`system`"),
            ("limit=1", "`system`"),
        ] {
            let err = parse::<Q>(query).unwrap_err().to_string();
            assert!(err.contains(field), "{query}: {err}");
        }
        let long = format!("system={}", "x".repeat(MAX_PARAMETER_LEN + 1));
        let err = parse::<Q>(&long).unwrap_err().to_string();
        assert!(err.contains("`system`"), "{err}");
        assert_eq!(parse::<Q>("system=github&limit=5").unwrap().limit, Some(5));
    }
}
