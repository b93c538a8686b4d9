//! The request sequences Okta really sends, with its exact bodies.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn test_connection_on_an_empty_tenant_returns_an_empty_list() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/Users?startIndex=1&count=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], json!(0));
    assert_eq!(body["itemsPerPage"], json!(0));
    assert_eq!(body["startIndex"], json!(1));
    assert_eq!(body["Resources"], json!([]));
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:ListResponse");
}

#[tokio::test]
async fn okta_user_lifecycle() {
    let app = TestApp::spawn().await;
    // Existence check before create.
    let (status, body) = app
        .get("/Users?filter=userName%20eq%20%22isabella.jones%40example.com%22&startIndex=1&count=100")
        .await;
    assert_eq!((status, body["totalResults"].clone()), (200, json!(0)));

    let create = json!({
        "schemas": [USER],
        "userName": "isabella.jones@example.com",
        "name": {"givenName": "Isabella", "familyName": "Jones"},
        "emails": [{"primary": true, "value": "isabella.jones@example.com", "type": "work"}],
        "displayName": "Isabella Jones",
        "locale": "en-US",
        "externalId": "00u1abcdEFGH",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let (status, user) = app.post("/Users", create).await;
    assert_eq!(status, 201, "{user}");
    assert!(user.get("password").is_none(), "password must never be returned");
    assert_eq!(user["active"], json!(true));
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["meta"]["resourceType"], "User");
    assert!(user["meta"]["location"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/scim/v2/Users/{id}")));

    let (_, found) = app
        .get("/Users?filter=userName%20eq%20%22Isabella.Jones%40example.com%22")
        .await;
    assert_eq!(found["totalResults"], json!(1), "userName filters ignore case");

    // Okta deactivation.
    let (status, patched) = app
        .patch(
            &format!("/Users/{id}"),
            TestApp::patch_body(json!([{"op":"replace","value":{"active":false}}])),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["active"], json!(false));

    // Inactive users are still returned by GET and by filters.
    let (status, got) = app.get(&format!("/Users/{id}")).await;
    assert_eq!((status, got["active"].clone()), (200, json!(false)));
    let (_, found) = app
        .get("/Users?filter=userName%20eq%20%22isabella.jones%40example.com%22")
        .await;
    assert_eq!(found["Resources"][0]["active"], json!(false));

    // Okta's full-object PUT (reactivation with profile changes); client-sent meta is ignored.
    let mut put = got.clone();
    put["active"] = json!(true);
    put["name"]["familyName"] = json!("Jones-Smith");
    put["meta"] = json!({"created": "1999-01-01T00:00:00Z"});
    put["password"] = json!("new-password");
    let (status, replaced) = app.put(&format!("/Users/{id}"), put).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["name"]["familyName"], "Jones-Smith");
    assert_eq!(replaced["active"], json!(true));
    assert_eq!(replaced["meta"]["created"], got["meta"]["created"]);
    assert!(replaced.get("password").is_none());
}

#[tokio::test]
async fn okta_group_push() {
    let app = TestApp::spawn().await;
    let u1 = app.create_user("u1@example.com").await;
    let u2 = app.create_user("u2@example.com").await;
    let (status, group) = app
        .post(
            "/Groups",
            json!({"schemas":[GROUP],"displayName":"Engineering","members":[]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();

    // Okta adds members one PATCH at a time.
    for u in [&u1, &u2] {
        let (status, body) = app
            .patch(
                &format!("/Groups/{gid}"),
                TestApp::patch_body(json!([{"op":"add","path":"members","value":[{"value":u,"display":"x"}]}])),
            )
            .await;
        assert_eq!(
            status, 204,
            "group PATCH answers 204 unless attributes are asked: {body}"
        );
    }
    let (_, got) = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(got["members"].as_array().unwrap().len(), 2);
    assert_eq!(got["members"][0]["display"], "u1@example.com");
    assert!(got["members"][0]["$ref"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/Users/{u1}")));

    // Okta's group rename carries the (same) id in a path-less value.
    let (status, renamed) = app
        .patch(
            &format!("/Groups/{gid}?attributes=displayName"),
            TestApp::patch_body(json!([{"op":"replace","value":{"id":gid,"displayName":"Engineering EMEA"}}])),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["displayName"], "Engineering EMEA");
    assert_eq!(renamed["id"], gid.as_str());

    // Okta removes a member by value filter.
    let (status, _) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"remove","path":format!("members[value eq \"{u1}\"]")}])),
        )
        .await;
    assert_eq!(status, 204);
    let (_, got) = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(
        got["members"],
        json!([{"value": u2, "type": "User", "display": "u2@example.com", "$ref": got["members"][0]["$ref"]}])
    );

    // The user sees its groups in reverse.
    let (_, user) = app.get(&format!("/Users/{u2}")).await;
    assert_eq!(user["groups"][0]["value"], gid);
    assert_eq!(user["groups"][0]["display"], "Engineering EMEA");
}
