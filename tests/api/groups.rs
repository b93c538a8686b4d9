//! Groups: members in their own table, nested groups, PUT replacing members.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn group_crud_with_members() {
    let app = TestApp::spawn().await;
    let a = app.create_user("a").await;
    let b = app.create_user("b").await;
    let inner = app.create_group("inner", &[]).await;
    let (status, group) = app
        .post(
            "/Groups",
            json!({"schemas":[GROUP],"displayName":"outer","members":[{"value":a},{"value":inner,"type":"Group"}]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    let kinds: Vec<&str> = group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["User", "Group"]);

    let (status, replaced) = app
        .put(
            &format!("/Groups/{gid}"),
            json!({"schemas":[GROUP],"displayName":"outer2","members":[{"value":b}]}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["members"].as_array().unwrap().len(), 1);
    assert_eq!(replaced["members"][0]["value"], b);

    let (_, found) = app
        .get(&format!("/Groups?filter=members%5Bvalue%20eq%20%22{b}%22%5D"))
        .await;
    assert_eq!(found["totalResults"], json!(1));

    assert_eq!(app.delete(&format!("/Groups/{gid}")).await, 204);
    let (_, user) = app.get(&format!("/Users/{b}")).await;
    assert!(user.get("groups").is_none());
}

#[tokio::test]
async fn unknown_or_foreign_members_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let gid = app.create_group("g", &[]).await;
    let other = app.other_tenant("globex").await;
    let resp = app
        .request_as(
            &other,
            reqwest::Method::POST,
            "/Users",
            Some(json!({"schemas":[USER],"userName":"foreign"})),
        )
        .await;
    let (_, foreign) = parts(resp).await;
    let a = app.create_user("a").await;
    let (status, body) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"add","path":"members","value":[{"value":a},{"value":foreign["id"]}]}])),
        )
        .await;
    assert_scim_error(status, &body, 400, Some("invalidValue"));
    let (_, g) = app.get(&format!("/Groups/{gid}")).await;
    assert!(g.get("members").is_none(), "the valid member was not half-written: {g}");
    assert_eq!(g["meta"]["version"], "W/\"1\"");
}

#[tokio::test]
async fn member_changes_on_a_large_group_touch_only_named_rows() {
    let app = TestApp::spawn().await;
    let gid = app.create_group("big", &[]).await;
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(app.create_user(&format!("user{i}")).await);
    }
    let members: Vec<_> = ids.iter().map(|id| json!({"value": id})).collect();
    let (status, body) = app
        .patch(
            &format!("/Groups/{gid}"),
            TestApp::patch_body(json!([{"op":"add","path":"members","value":members}])),
        )
        .await;
    assert_eq!(
        (status, body),
        (204, serde_json::Value::Null),
        "group PATCH answers 204 unless attributes are asked"
    );
    let (_, body) = app
        .patch(
            &format!("/Groups/{gid}?attributes=members"),
            TestApp::patch_body(json!([{"op":"remove","path":format!("members[value eq \"{}\"]", ids[0])}])),
        )
        .await;
    assert_eq!(body["members"].as_array().unwrap().len(), 299);
    let (_, got) = app.get(&format!("/Groups/{gid}?excludedAttributes=members")).await;
    assert!(got.get("members").is_none());
    assert_eq!(got["meta"]["version"], "W/\"3\"");
}
