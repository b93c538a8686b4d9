//! The framework ceiling for `bench/run.sh`: a bare actix-web handler answering every GET with
//! the same 300-byte JSON document, no database and no middleware.
//! Usage: `cargo run --release --example bare_actix -- 127.0.0.1:PORT`

use actix_web::{web, App, HttpResponse, HttpServer};

/// A SCIM-user-sized body: exactly 300 bytes.
const BODY: &str = concat!(
    r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"id":"00000000-0000-7000-8000-000000000001","#,
    r#""userName":"u1","active":true,"name":{"givenName":"Bench","familyName":"User"},"#,
    r#""emails":[{"value":"u1@example.com","primary":true}],"meta":{"resourceType":"User","version":"W/\"1\""}}"#,
    "               "
);

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8099".into());
    HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok().content_type("application/scim+json").body(BODY)
        }))
    })
    .bind(addr)?
    .run()
    .await
}
