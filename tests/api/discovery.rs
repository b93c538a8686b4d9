//! Discovery endpoints tell the truth about this server.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn service_provider_config_matches_configuration() {
    let app = TestApp::spawn_with(|c| c.scim.max_results = 250).await;
    let (status, spc) = app.get("/ServiceProviderConfig").await;
    assert_eq!(status, 200, "{spc}");
    assert_eq!(spc["patch"]["supported"], json!(true));
    assert_eq!(spc["bulk"]["maxOperations"], json!(1000));
    assert_eq!(spc["bulk"]["maxPayloadSize"], json!(1048576));
    assert_eq!(spc["filter"]["maxResults"], json!(250));
    assert_eq!(spc["changePassword"]["supported"], json!(false));
    assert_eq!(spc["sort"]["supported"], json!(true));
    assert_eq!(spc["etag"]["supported"], json!(true));
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let (_, page) = app.get("/Users?count=100000").await;
    assert_eq!(page["itemsPerPage"], json!(0));
}

#[tokio::test]
async fn schemas_and_resource_types_are_served() {
    let app = TestApp::spawn().await;
    let (_, schemas) = app.get("/Schemas").await;
    assert_eq!(schemas["totalResults"], json!(4));
    let (status, user) = app.get(&format!("/Schemas/{USER}")).await;
    assert_eq!(status, 200);
    assert_eq!(user["id"], USER);
    let (status, seat) = app
        .get("/Schemas/urn:ietf:params:scim:schemas:extension:seatbridge:2.0:User")
        .await;
    assert_eq!(status, 200);
    assert_eq!(seat["name"], "SeatbridgeUser");
    let (_, types) = app.get("/ResourceTypes").await;
    assert_eq!(types["totalResults"], json!(2));
    let (status, ut) = app.get("/ResourceTypes/User").await;
    assert_eq!(status, 200);
    assert_eq!(ut["endpoint"], "/Users");
    let (status, body) = app.get("/Schemas/urn:nope").await;
    assert_scim_error(status, &body, 404, None);
}
