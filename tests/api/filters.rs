//! Filters run in the database: every operator, logic, value paths, URN prefixes, dates.

use serde_json::{json, Value};

use crate::helpers::*;

async fn seeded() -> TestApp {
    let app = TestApp::spawn().await;
    let users = [
        json!({"schemas":[USER,ENTERPRISE],"userName":"bjensen","displayName":"Barbara Jensen","title":"Tour Guide","userType":"Employee",
               "name":{"familyName":"Jensen","givenName":"Barbara"},
               "emails":[{"value":"bjensen@example.com","type":"work","primary":true},{"value":"babs@jensen.org","type":"home"}],
               "phoneNumbers":[{"value":"555-555-5555","type":"work"}],
               ENTERPRISE:{"department":"Tours","employeeNumber":"701984"}}),
        json!({"schemas":[USER],"userName":"jsmith","displayName":"John Smith","userType":"Contractor","active":false,
               "name":{"familyName":"O'Malley","givenName":"John"},
               "emails":[{"value":"john@example.org","type":"work"}]}),
        json!({"schemas":[USER],"userName":"Kim","name":{"familyName":"Kim"}}),
    ];
    for u in users {
        let (status, body) = app.post("/Users", u).await;
        assert_eq!(status, 201, "{body}");
    }
    app
}

async fn names(app: &TestApp, filter: &str) -> Vec<String> {
    let encoded: String = url_encode(filter);
    let (status, body) = app.get(&format!("/Users?filter={encoded}&sortBy=userName")).await;
    assert_eq!(status, 200, "{filter}: {body}");
    body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap().to_string())
        .collect()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn every_operator_and_logic_runs_in_the_database() {
    let app = seeded().await;
    let cases: &[(&str, &[&str])] = &[
        (r#"userName eq "BJENSEN""#, &["bjensen"]),
        (r#"userName ne "bjensen""#, &["jsmith", "Kim"]),
        (r#"name.familyName co "o'mal""#, &["jsmith"]),
        (r#"userName sw "j""#, &["jsmith"]),
        (r#"userName ew "SEN""#, &["bjensen"]),
        (r#"title pr"#, &["bjensen"]),
        (r#"userName gt "jsmith""#, &["Kim"]),
        (r#"userName le "jsmith""#, &["bjensen", "jsmith"]),
        (r#"active eq false"#, &["jsmith"]),
        (r#"title pr and userType eq "Employee""#, &["bjensen"]),
        (
            r#"userType eq "Employee" or userType eq "Contractor""#,
            &["bjensen", "jsmith"],
        ),
        (r#"not (userType pr)"#, &["Kim"]),
        (
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            &["Kim"],
        ),
        (r#"emails[type eq "work" and value co "@example.com"]"#, &["bjensen"]),
        (
            r#"emails[type eq "home"] or phoneNumbers[type eq "work" and value sw "555"]"#,
            &["bjensen"],
        ),
        (r#"emails.type eq "work""#, &["bjensen", "jsmith"]),
        (
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "K""#,
            &["Kim"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            &["bjensen"],
        ),
        (
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            &["bjensen"],
        ),
        (r#"USERNAME Eq "kim""#, &["Kim"]),
        (
            r#"meta.created gt "2001-01-01T00:00:00Z""#,
            &["bjensen", "jsmith", "Kim"],
        ),
        (r#"meta.lastModified lt "2001-01-01T00:00:00Z""#, &[]),
        (r#"meta.resourceType eq "User""#, &["bjensen", "jsmith", "Kim"]),
        (r#"title eq null"#, &["jsmith", "Kim"]),
        (r#"((userName eq "kim"))"#, &["Kim"]),
    ];
    for (filter, want) in cases {
        let got = names(&app, filter).await;
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "filter {filter}");
    }
}

#[tokio::test]
async fn bad_filters_are_invalid_filter_errors() {
    let app = seeded().await;
    for filter in [
        "userName eq",
        "userName zz \"x\"",
        "nosuchattribute eq \"x\"",
        "active gt true",
        "meta.created gt \"yesterday\"",
        "(userName eq \"x\"",
        "emails[type eq \"work\"",
    ] {
        let (status, body) = app.get(&format!("/Users?filter={}", url_encode(filter))).await;
        assert_scim_error(status, &body, 400, Some("invalidFilter"));
    }
    let deep = format!("{}userName pr{}", "(".repeat(200), ")".repeat(200));
    let (status, body) = app.get(&format!("/Users?filter={}", url_encode(&deep))).await;
    assert_scim_error(status, &body, 400, Some("invalidFilter"));
}

#[tokio::test]
async fn search_endpoints_accept_post_bodies() {
    let app = seeded().await;
    app.create_group("Tour Guides", &[]).await;
    let search = json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                        "filter":"userName sw \"b\"","attributes":["userName"],"count":10});
    let (status, body) = app.post("/Users/.search", search).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], json!(1));
    assert_eq!(
        body["Resources"][0]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["schemas", "id", "userName"]
    );

    let root =
        json!({"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"displayName co \"tour\""});
    let (status, body) = app.post("/.search", root).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["totalResults"], json!(1), "{body}");
    assert_eq!(body["Resources"][0]["displayName"], Value::from("Tour Guides"));
}

#[tokio::test]
async fn long_or_chains_run_in_the_database() {
    let app = seeded().await;
    let mut terms: Vec<String> = (0..199).map(|i| format!("userName eq \"nobody{i}\"")).collect();
    terms.push("userName eq \"kim\"".into());
    let got = names(&app, &terms.join(" or ")).await;
    assert_eq!(got, vec!["Kim".to_string()]);
}
