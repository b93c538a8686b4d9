//! RFC 9457 problem details, the one error shape of the JSON API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::licensing::LicensingError;
use crate::store::StoreError;

/// The problem document every error answers with (RFC 9457); here for the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
}

/// An API error; mapped to a status and a problem document in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A known path asked with a method it does not have; answered with `Allow`.
    #[error("this path allows only {allow}")]
    MethodNotAllowed { allow: &'static str },
    /// A request body over the endpoint's limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Over a rate limit; answered with `Retry-After: 1`.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// A feature that needs configuration the deployment lacks.
    #[error("{0}")]
    NotConfigured(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The `Retry-After` seconds of errors a client should retry. A rate limit admits at least
    /// one request a second, so one second always suffices.
    pub fn retry_after(&self) -> Option<&'static str> {
        match self {
            ApiError::TooManyRequests(_) => Some("1"),
            _ => None,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound(_) => "Not Found",
            ApiError::BadRequest(_) => "Bad Request",
            ApiError::Conflict(_) => "Conflict",
            ApiError::MethodNotAllowed { .. } => "Method Not Allowed",
            ApiError::PayloadTooLarge(_) => "Payload Too Large",
            ApiError::TooManyRequests(_) => "Too Many Requests",
            ApiError::Unavailable | ApiError::NotConfigured(_) => "Service Unavailable",
            ApiError::Internal => "Internal Server Error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::NotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut resp = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            resp.insert_header(("WWW-Authenticate", "Bearer"));
        }
        if let Some(seconds) = self.retry_after() {
            resp.insert_header((actix_web::http::header::RETRY_AFTER, seconds));
        }
        if let ApiError::MethodNotAllowed { allow } = self {
            resp.insert_header((actix_web::http::header::ALLOW, *allow));
        }
        resp.content_type("application/problem+json").body(
            json!({"type": "about:blank", "title": self.title(), "status": status.as_u16(), "detail": self.to_string()})
                .to_string(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UniqueViolation(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database busy");
                ApiError::Unavailable
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::Internal
            }
        }
    }
}

impl From<LicensingError> for ApiError {
    fn from(e: LicensingError) -> Self {
        match e {
            LicensingError::NoTenant(_) | LicensingError::NoUser(_) => ApiError::NotFound(e.to_string()),
            LicensingError::NoSeat(_) | LicensingError::Exists(_) => ApiError::Conflict(e.to_string()),
            LicensingError::StaleVersion { .. } => ApiError::Conflict(e.to_string()),
            LicensingError::Store(s) => s.into(),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_versions_are_conflicts_and_bad_input_is_400() {
        let stale: ApiError = LicensingError::StaleVersion {
            expected: 1,
            current: 2,
        }
        .into();
        assert_eq!(stale.status_code(), StatusCode::CONFLICT);
        let bad: ApiError = LicensingError::Invalid("x".into()).into();
        assert_eq!(bad.status_code(), StatusCode::BAD_REQUEST);
        let resp = ApiError::Unauthorized("no".into()).error_response();
        assert_eq!(
            resp.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/problem+json"[..])
        );
    }

    #[test]
    fn rate_limited_is_429_with_retry_after() {
        let resp = ApiError::TooManyRequests("slow down".into()).error_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    }
}
