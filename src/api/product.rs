//! `GET /api/v1/entitlements/check?tenant=&user=&feature=` for product services.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::{require_bearer, ApiError};
use crate::app::AppState;

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    tenant: String,
    user: String,
    feature: Option<String>,
}

/// Answers from the in-memory cache: `{"allowed": bool, "reason": …}`.
pub async fn check(
    req: HttpRequest,
    state: web::Data<AppState>,
    q: web::Query<CheckQuery>,
) -> Result<HttpResponse, ApiError> {
    require_bearer(
        &req,
        state.config.service_token.as_deref(),
        "entitlement check",
        "SEATBRIDGE_SERVICE_TOKEN",
    )?;
    let result = state
        .entitlements
        .check(
            &state.db,
            &q.tenant,
            &q.user,
            q.feature.as_deref().filter(|f| !f.is_empty()),
        )
        .await?;
    Ok(HttpResponse::Ok().json(result))
}
