//! SCIM protocol errors (RFC 7644 §3.12) and their one mapping to HTTP.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use super::schema::ERROR_SCHEMA;
use super::SCIM_CONTENT_TYPE;

/// Every error a SCIM client can see. Each variant carries a human-readable `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScimError {
    /// 400 `invalidFilter`.
    #[error("{0}")]
    InvalidFilter(String),
    /// 400 `invalidPath`.
    #[error("{0}")]
    InvalidPath(String),
    /// 400 `invalidValue`: wrong type, missing required attribute, bad format.
    #[error("{0}")]
    InvalidValue(String),
    /// 400 `invalidSyntax`: unparsable body or request message.
    #[error("{0}")]
    InvalidSyntax(String),
    /// 400 `noTarget`: a PATCH path matched nothing where something was required.
    #[error("{0}")]
    NoTarget(String),
    /// 400 `mutability`: an immutable or read-only attribute was changed.
    #[error("{0}")]
    Mutability(String),
    /// 400 `invalidVers`: `If-Match` is not a valid entity tag.
    #[error("{0}")]
    InvalidVersion(String),
    /// 400 `tooMany` (also used by filters that would return too much).
    #[error("{0}")]
    TooMany(String),
    /// 409 `uniqueness`.
    #[error("{0}")]
    Uniqueness(String),
    /// 401 with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403, e.g. a license refusal; `code` is a stable, greppable reason such as `SEAT_LIMIT_REACHED`.
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    /// 404: unknown id, or an id that belongs to another tenant (existence is never leaked).
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406: the client does not accept SCIM JSON.
    #[error("{0}")]
    NotAcceptable(String),
    /// 412: `If-Match` did not match the current version.
    #[error("{0}")]
    PreconditionFailed(String),
    /// 413: body larger than the configured limit, or a bulk request over its limits.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: too many requests.
    #[error("{0}")]
    TooManyRequests(String),
    /// 500: the cause is logged where it happened; the client only gets a generic message.
    #[error("internal server error")]
    Internal,
    /// 501: an optional endpoint this server does not offer (e.g. `/Me`, RFC 7644 §3.11).
    #[error("{0}")]
    NotImplemented(String),
    /// 503: the database is unavailable or locked for longer than the busy timeout.
    #[error("{0}")]
    Unavailable(String),
}

impl ScimError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ScimError::InvalidFilter(_)
            | ScimError::InvalidPath(_)
            | ScimError::InvalidValue(_)
            | ScimError::InvalidSyntax(_)
            | ScimError::NoTarget(_)
            | ScimError::Mutability(_)
            | ScimError::InvalidVersion(_)
            | ScimError::TooMany(_) => StatusCode::BAD_REQUEST,
            ScimError::Uniqueness(_) => StatusCode::CONFLICT,
            ScimError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ScimError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ScimError::NotFound(_) => StatusCode::NOT_FOUND,
            ScimError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ScimError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ScimError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ScimError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ScimError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ScimError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ScimError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ScimError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ScimError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 7644 §3.12 `scimType`, where the RFC defines one.
    pub fn scim_type(&self) -> Option<&'static str> {
        match self {
            ScimError::InvalidFilter(_) => Some("invalidFilter"),
            ScimError::InvalidPath(_) => Some("invalidPath"),
            ScimError::InvalidValue(_) => Some("invalidValue"),
            ScimError::InvalidSyntax(_) => Some("invalidSyntax"),
            ScimError::NoTarget(_) => Some("noTarget"),
            ScimError::Mutability(_) => Some("mutability"),
            ScimError::InvalidVersion(_) => Some("invalidVers"),
            ScimError::TooMany(_) => Some("tooMany"),
            ScimError::Uniqueness(_) => Some("uniqueness"),
            ScimError::PayloadTooLarge(_) => Some("tooMany"),
            _ => None,
        }
    }

    /// The RFC 7644 §3.12 JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status().as_u16().to_string(),
            "detail": self.to_string(),
        });
        if let Some(t) = self.scim_type() {
            body["scimType"] = json!(t);
        }
        if let ScimError::Forbidden { code, .. } = self {
            body["code"] = json!(code);
        }
        body
    }
}

impl ResponseError for ScimError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status());
        resp.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(SCIM_CONTENT_TYPE)));
        match self {
            ScimError::Unauthorized(_) => {
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scim\""),
                ));
            }
            ScimError::TooManyRequests(_) | ScimError::Unavailable(_) => {
                resp.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            _ => {}
        }
        resp.body(self.body().to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn body_has_string_status_and_scim_type() {
        let body = ScimError::Uniqueness("userName 'a' is taken".into()).body();
        assert_eq!(body["status"], "409");
        assert_eq!(body["scimType"], "uniqueness");
        assert_eq!(body["schemas"][0], ERROR_SCHEMA);
    }

    #[test]
    fn payload_too_large_is_413_too_many() {
        let e = ScimError::PayloadTooLarge("body over 1 MiB".into());
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.scim_type(), Some("tooMany"));
    }

    #[test]
    fn internal_error_hides_details() {
        assert_eq!(ScimError::Internal.body()["detail"], "internal server error");
        assert!(ScimError::Internal.body().get("scimType").is_none());
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let resp = ScimError::Unauthorized("missing bearer token".into()).error_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().get(header::WWW_AUTHENTICATE).is_some());
    }

    #[test]
    fn forbidden_carries_stable_code() {
        let body = ScimError::Forbidden {
            code: "SEAT_LIMIT_REACHED",
            detail: "x".into(),
        }
        .body();
        assert_eq!(body["code"], "SEAT_LIMIT_REACHED");
        assert_eq!(body["status"], "403");
    }
}
