//! Bulk with bulkId references, failOnErrors and limits.

use serde_json::json;

use crate::helpers::*;

const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

#[tokio::test]
async fn bulk_resolves_references_in_any_order() {
    let app = TestApp::spawn().await;
    let body = json!({"schemas":[BULK],"Operations":[
        {"method":"POST","path":"/Groups","bulkId":"g1","data":{"schemas":[GROUP],"displayName":"Bulk","members":[{"type":"User","value":"bulkId:u1"}]}},
        {"method":"POST","path":"/Users","bulkId":"u1","data":{"schemas":[USER],"userName":"bulk.user"}},
        {"method":"PATCH","path":"/Users/bulkId:u1","data":{"schemas":[PATCH_OP],"Operations":[{"op":"replace","path":"title","value":"Bulk"}]}},
        {"method":"POST","path":"/Users","bulkId":"dup","data":{"schemas":[USER],"userName":"BULK.user"}}
    ]});
    let (status, resp) = app.post("/Bulk", body).await;
    assert_eq!(status, 200, "{resp}");
    let ops = resp["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["201", "201", "200", "409"]);
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    let (_, groups) = app.get("/Groups?filter=displayName%20eq%20%22Bulk%22").await;
    let member = groups["Resources"][0]["members"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, user) = app.get(&format!("/Users/{member}")).await;
    assert_eq!(user["userName"], "bulk.user");
    assert_eq!(user["title"], "Bulk");
}

#[tokio::test]
async fn fail_on_errors_stops_processing() {
    let app = TestApp::spawn().await;
    let body = json!({"schemas":[BULK],"failOnErrors":1,"Operations":[
        {"method":"POST","path":"/Users","bulkId":"a","data":{"schemas":[USER]}},
        {"method":"POST","path":"/Users","bulkId":"b","data":{"schemas":[USER],"userName":"never"}}
    ]});
    let (status, resp) = app.post("/Bulk", body).await;
    assert_eq!(status, 200);
    assert_eq!(resp["Operations"].as_array().unwrap().len(), 1);
    assert_eq!(resp["Operations"][0]["status"], "400");
    let (_, list) = app.get("/Users").await;
    assert_eq!(list["totalResults"], json!(0));
}

#[tokio::test]
async fn bulk_limits_are_enforced() {
    let app = TestApp::spawn_with(|c| c.scim.bulk_max_operations = 2).await;
    let op = json!({"method":"DELETE","path":"/Users/x"});
    let (status, body) = app
        .post("/Bulk", json!({"schemas":[BULK],"Operations":[op, op, op]}))
        .await;
    assert_scim_error(status, &body, 413, None);
}
