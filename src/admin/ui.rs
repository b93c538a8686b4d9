//! The embedded web UI (plain HTML, CSS and JavaScript in `src/admin/ui/`, no build step) and
//! the security headers every admin page carries.

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpResponseBuilder, ResponseError};

use crate::api::ApiError;
use crate::app::AppState;

const INDEX_HTML: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(to_index))
        .route("/assets/app.js", web::get().to(app_js))
        .route("/assets/app.css", web::get().to(app_css))
        .route("/", web::get().to(index))
        .default_service(web::get().to(index));
}

/// CSP and friends. `form-action` names the provider too: the logout form's redirect to
/// its end-session endpoint is checked against it.
fn secured(mut b: HttpResponseBuilder, state: &AppState) -> HttpResponseBuilder {
    let provider = state
        .config
        .oidc
        .as_ref()
        .map(|o| origin(&o.issuer))
        .unwrap_or_default();
    b.insert_header((
        header::CONTENT_SECURITY_POLICY,
        format!(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
             form-action 'self' {provider}"
        ),
    ))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    .insert_header((header::REFERRER_POLICY, "same-origin"))
    .insert_header(("Cross-Origin-Opener-Policy", "same-origin"))
    .insert_header(("Permissions-Policy", "camera=(), microphone=(), geolocation=()"));
    b
}

/// `https://op.example.com/tenant/x` → `https://op.example.com`.
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_string(),
        None => url.to_string(),
    }
}

async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/admin/"))
        .finish()
}

async fn index(state: web::Data<AppState>) -> HttpResponse {
    secured(HttpResponse::Ok(), &state)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

async fn app_js(state: web::Data<AppState>) -> HttpResponse {
    secured(HttpResponse::Ok(), &state)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/javascript; charset=utf-8")
        .body(APP_JS)
}

async fn app_css(state: web::Data<AppState>) -> HttpResponse {
    secured(HttpResponse::Ok(), &state)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type("text/css; charset=utf-8")
        .body(APP_CSS)
}

/// A small HTML page for login failures: a browser is on the other end, not a script.
pub fn error_page(e: &ApiError) -> HttpResponse {
    let status = e.status_code();
    let text = html_escape(&e.to_string());
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>seatbridge: {title}</title>\
         <link rel=\"stylesheet\" href=\"/admin/assets/app.css\"></head><body><main class=\"main\">\
         <div class=\"card error-card\"><h1>{title}</h1><p>{text}</p>\
         <p><a href=\"/admin/login\">Log in again</a> · <a href=\"/admin/\">Back to the console</a></p>\
         </div></main></body></html>",
        title = status.canonical_reason().unwrap_or("Error"),
    );
    let mut resp = HttpResponse::build(status);
    if let Some(seconds) = e.retry_after() {
        resp.insert_header((header::RETRY_AFTER, seconds));
    }
    resp.insert_header((
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; frame-ancestors 'none'",
    ))
    .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((header::X_FRAME_OPTIONS, "DENY"))
    // The callback URL carries the authorization code; keep it out of Referer headers.
    .insert_header((header::REFERRER_POLICY, "same-origin"))
    .insert_header((header::CACHE_CONTROL, "no-store"))
    .content_type("text/html; charset=utf-8")
    .body(body)
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_escaping() {
        assert_eq!(origin("https://op.example.com/tenant/x"), "https://op.example.com");
        assert_eq!(origin("http://127.0.0.1:4000"), "http://127.0.0.1:4000");
        assert_eq!(
            html_escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
