//! The request sequences Microsoft Entra ID really sends, with its exact bodies.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn entra_user_lifecycle() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/Users?filter=userName+eq+%22ryan%40contoso.com%22").await;
    assert_eq!((status, body["totalResults"].clone()), (200, json!(0)));

    let create = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "userName": "ryan@contoso.com",
        "active": true,
        "displayName": "Ryan Leenay",
        "emails": [{"primary": true, "type": "work", "value": "ryan@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Ryan Leenay", "familyName": "Leenay", "givenName": "Ryan"},
        "roles": [],
        ENTERPRISE: {"department": "Sales"}
    });
    let (status, user) = app.post("/Users", create).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["schemas"], json!([USER, ENTERPRISE, SEATBRIDGE]));
    assert_eq!(user[SEATBRIDGE]["entitled"], json!(true));

    let (_, found) = app
        .get("/Users?filter=externalId+eq+%228aa1a0c0-c4c3-4bc0-b4a5-2ef676900159%22")
        .await;
    assert_eq!(found["totalResults"], json!(1));

    // Entra sends booleans as strings and capitalised op names.
    let (status, body) = app
        .patch(
            &format!("/Users/{id}"),
            TestApp::patch_body(json!([{"op":"Replace","path":"active","value":"False"}])),
        )
        .await;
    assert_eq!((status, body["active"].clone()), (200, json!(false)), "{body}");

    // Add to a filtered email sub-attribute creates the element when missing.
    let (status, body) = app
        .patch(
            &format!("/Users/{id}"),
            TestApp::patch_body(json!([
                {"op":"Add","path":"emails[type eq \"home\"].value","value":"ryan@home.example"},
                {"op":"Replace","path":"emails[type eq \"work\"].value","value":"ryan.leenay@contoso.com"}
            ])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let emails = body["emails"].as_array().unwrap();
    assert!(
        emails
            .iter()
            .any(|e| e["type"] == "home" && e["value"] == "ryan@home.example"),
        "{body}"
    );
    assert!(
        emails
            .iter()
            .any(|e| e["type"] == "work" && e["value"] == "ryan.leenay@contoso.com"),
        "{body}"
    );
    let (_, found) = app.get("/Users?filter=emails.value+eq+%22ryan%40home.example%22").await;
    assert_eq!(found["totalResults"], json!(1), "email index follows PATCH");

    // Path-less value maps with dotted and URN-prefixed keys.
    let (status, body) = app
        .patch(
            &format!("/Users/{id}"),
            TestApp::patch_body(json!([{"op":"Add","value":{
                "name.givenName": "Ryan J.",
                "title": "Manager",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Marketing",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "m-123"
            }}])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"]["givenName"], "Ryan J.");
    assert_eq!(body["name"]["familyName"], "Leenay");
    assert_eq!(body["title"], "Manager");
    assert_eq!(body[ENTERPRISE]["department"], "Marketing");
    assert_eq!(body[ENTERPRISE]["manager"]["value"], "m-123");
}

#[tokio::test]
async fn entra_group_with_vendor_schema_and_member_removal() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a@contoso.com").await;
    let b = app.create_user("b@contoso.com").await;
    let c = app.create_user("c@contoso.com").await;
    let (status, group) = app
        .post(
            "/Groups",
            json!({"schemas":[GROUP,"http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                   "externalId":"e1","displayName":"Sales","members":[]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();

    let (status, _) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"Add","path":"members","value":[{"value":a},{"value":b},{"value":c}]}])),
        )
        .await;
    assert_eq!(status, 204);

    // Entra's Remove with a value list removes only the listed members.
    let (status, body) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"Remove","path":"members","value":[{"value":a}]}])),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, got) = app.get(&format!("/Groups/{gid}")).await;
    let ids: Vec<&str> = got["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b.as_str(), c.as_str()]);

    // Entra's group lookup never loads members.
    let (status, list) = app
        .get("/Groups?excludedAttributes=members&filter=displayName+eq+%22sales%22")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["totalResults"], json!(1));
    assert!(list["Resources"][0].get("members").is_none());

    // Removing all members.
    let (status, _) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"remove","path":"members"}])),
        )
        .await;
    assert_eq!(status, 204);
    let (_, got) = app.get(&format!("/Groups/{gid}")).await;
    assert!(got.get("members").is_none(), "{got}");
}
