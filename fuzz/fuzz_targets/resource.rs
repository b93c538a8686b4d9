//! Resource JSON: arbitrary bytes -> JSON -> `check_schemas` + `normalize_resource` for User and
//! Group, then `render`. Nothing may panic; the normalized document must be canonical, and
//! normalizing is idempotent (a stored document is normalized again on every PATCH, and a
//! client may PUT back what it got from a GET).

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use seatbridge::scim::resource::{check_immutable, check_schemas, normalize_resource, render};
use seatbridge::scim::schema::ResourceTypeDef;
use serde_json::Value;

fn run(rt: &ResourceTypeDef, input: &Value) {
    let _ = check_schemas(rt, input);
    let doc = match normalize_resource(rt, input) {
        Ok(doc) => doc,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    common::assert_canonical(rt, &doc);
    match normalize_resource(rt, &doc) {
        Ok(again) => assert_eq!(again, doc, "normalize is not idempotent for input {input}"),
        Err(e) => panic!("normalized document {doc} no longer normalizes: {e:?}"),
    }
    assert!(
        check_immutable(rt, &doc, &doc).is_ok(),
        "unchanged document refused: {doc}"
    );
    let rendered = render(rt, &doc, &common::meta());
    assert!(
        check_schemas(rt, &rendered).is_ok(),
        "rendered resource has bad schemas: {rendered}"
    );
    // GET then PUT of the same resource stores the same document.
    match normalize_resource(rt, &rendered) {
        Ok(back) => assert_eq!(back, doc, "rendered resource {rendered} normalizes differently"),
        Err(e) => panic!("rendered resource {rendered} does not normalize: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let reg = common::registry();
    run(&reg.user, &input);
    run(&reg.group, &input);
});
