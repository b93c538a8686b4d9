//! PATCH engine: arbitrary bytes -> JSON -> `parse_patch_request` -> `apply_patch` on a
//! realistic stored User and Group, followed by what the server does next (`normalize_resource`,
//! `check_immutable`, `render`). Nothing may panic, and what gets stored must be canonical.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use seatbridge::scim::patch::{apply_patch, parse_patch_request, MemberChange, MAX_PATCH_OPERATIONS};
use seatbridge::scim::resource::{check_immutable, normalize_resource, render};
use seatbridge::scim::schema::ResourceTypeDef;
use serde_json::Value;

fn run(rt: &ResourceTypeDef, stored: Value, ops: &[seatbridge::scim::patch::PatchOperation], is_group: bool) {
    let mut doc = stored.clone();
    let Ok(outcome) = apply_patch(rt, &mut doc, ops) else {
        return;
    };
    if is_group {
        // Members never live in the document; they come back as member changes.
        assert!(
            doc.get("members").is_none(),
            "members written into the group document: {doc}"
        );
        for change in &outcome.member_changes {
            match change {
                MemberChange::Add(refs) | MemberChange::ReplaceAll(refs) => {
                    assert!(!refs.is_empty(), "empty member change {change:?}");
                    assert!(
                        refs.iter().all(|r| !r.value.is_empty()),
                        "empty member id in {change:?}"
                    );
                }
                MemberChange::Remove(ids) => assert!(!ids.is_empty(), "empty member removal"),
                MemberChange::RemoveAll => {}
            }
        }
    } else {
        assert!(
            outcome.member_changes.is_empty(),
            "member changes for a user: {outcome:?}"
        );
    }
    let Ok(normalized) = normalize_resource(rt, &doc) else {
        return;
    };
    common::assert_canonical(rt, &normalized);
    // The stored document is normalized again by the next PATCH: that must not change it.
    match normalize_resource(rt, &normalized) {
        Ok(again) => assert_eq!(again, normalized, "normalize is not idempotent after PATCH"),
        Err(e) => panic!("a normalized document no longer normalizes: {e:?}: {normalized}"),
    }
    let _ = check_immutable(rt, &stored, &normalized);
    let rendered = render(rt, &normalized, &common::meta());
    assert!(rendered.get("schemas").is_some_and(Value::is_array));
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let ops = match parse_patch_request(&body) {
        Ok(ops) => ops,
        Err(e) => {
            // Every refusal must render as a SCIM error.
            let _ = e.to_string();
            return;
        }
    };
    assert!(!ops.is_empty() && ops.len() <= MAX_PATCH_OPERATIONS);
    let reg = common::registry();
    run(&reg.user, common::stored_user(), &ops, false);
    run(&reg.group, common::stored_group(), &ops, true);
    // PATCH of a document that is not there yet (or is not an object) must fail cleanly.
    let mut null_doc = Value::Null;
    let _ = apply_patch(&reg.user, &mut null_doc, &ops);
    let mut odd_doc = Value::from(vec![1, 2]);
    assert!(apply_patch(&reg.group, &mut odd_doc, &ops).is_err());
});
