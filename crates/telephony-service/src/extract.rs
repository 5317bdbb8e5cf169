//! Extractors whose rejections answer in the API's error format, never axum's plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// A JSON request body.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                Self::invalid_request("expected a JSON body with content-type application/json")
            }
            JsonRejection::BytesRejection(_) => Self::new(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large or could not be read",
            ),
            // serde's message names the field and what was expected, but can quote the value it
            // refused, which may be a credential typed into the wrong field: quote nothing.
            other => Self::invalid_request(scrub(&other.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        Self::not_found("resource")
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::invalid_request(scrub(&rejection.body_text()))
    }
}

/// Replaces every quoted fragment (between backticks or double quotes) of a parser's message
/// with `…`, so the message keeps the field name and the expectation but never a value.
#[must_use]
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut closing: Option<char> = None;
    for c in message.chars() {
        match closing {
            Some(end) if c == end => {
                out.push('…');
                out.push(c);
                closing = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                closing = Some(c);
            }
            None => out.push(c),
        }
    }
    if closing.is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrub_keeps_field_names_and_drops_values() {
        assert_eq!(
            scrub("auth_token: invalid type: string \"hunter2\", expected u32 at line 1"),
            "auth_token: invalid type: string \"…\", expected u32 at line 1"
        );
        assert_eq!(
            scrub("unknown variant `plivo`, expected one of `twilio`"),
            "unknown variant `…`, expected one of `…`"
        );
        assert_eq!(scrub("unterminated \"secret"), "unterminated \"…");
    }
}
