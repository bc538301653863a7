//! The pure parts of the probe: schemas to paths, endpoints, verdicts.

use serde_json::json;

use super::discovery::{Hints, hints, normalise_endpoint, resource_types, user_attribute_paths};
use super::json::listed;
use super::verdict::{self, GroupRead};

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn schemas() -> serde_json::Value {
    let simple = |name: &str| json!({"name": name, "type": "string", "multiValued": false});
    let subs = |names: &[&str]| names.iter().map(|n| simple(n)).collect::<Vec<_>>();
    json!({
        "totalResults": 3,
        "Resources": [
            {"id": "urn:ietf:params:scim:schemas:core:2.0:User", "attributes": [
                simple("userName"),
                simple("title"),
                {"name": "name", "type": "complex", "multiValued": false,
                 "subAttributes": subs(&["givenName", "familyName"])},
                {"name": "emails", "type": "complex", "multiValued": true, "subAttributes": subs(&["value"])},
                {"name": "", "type": "string"},
                {"type": "string"},
                "nonsense",
            ]},
            {"id": ENT, "attributes": [
                simple("department"),
                {"name": "manager", "type": "complex", "subAttributes": subs(&["value", "$ref"])},
            ]},
            {"id": "urn:ietf:params:scim:schemas:core:2.0:Group", "attributes": [simple("displayName")]},
        ]
    })
}

#[test]
fn schemas_give_the_user_attribute_paths() {
    let (paths, used) = user_attribute_paths(&schemas(), &[]).expect("a list");
    let expected = [
        "userName".to_owned(),
        "title".into(),
        "name.givenName".into(),
        "name.familyName".into(),
        "emails".into(),
        format!("{ENT}:department"),
        format!("{ENT}:manager.value"),
        format!("{ENT}:manager.$ref"),
    ];
    assert_eq!((paths, used), (expected.to_vec(), 2));
}

#[test]
fn schemas_may_be_a_bare_array_or_one_schema_and_extensions_come_from_resource_types() {
    let doc = schemas();
    let bare = doc["Resources"].clone();
    let (from_bare, _) = user_attribute_paths(&bare, &[]).expect("an array");
    assert_eq!(from_bare.len(), 8);
    let lone = doc["Resources"][0].clone();
    assert_eq!(user_attribute_paths(&lone, &[]).map(|(p, _)| p.len()), Some(5));
    let vendor = json!([{"id": "urn:acme:scim:Employee", "attributes": [{"name": "badge"}]}]);
    assert_eq!(user_attribute_paths(&vendor, &[]).map(|(p, _)| p), Some(vec![]), "not named: not a User one");
    let named = user_attribute_paths(&vendor, &["urn:acme:scim:Employee".to_owned()]).map(|(p, _)| p);
    assert_eq!(named, Some(vec!["urn:acme:scim:Employee:badge".to_owned()]));
    assert!(user_attribute_paths(&json!("<html>"), &[]).is_none());
    assert!(user_attribute_paths(&json!({"detail": "nope"}), &[]).is_none());
}

#[test]
fn endpoints_are_normalised_relative_to_the_base_url() {
    assert_eq!(normalise_endpoint("/Users", "/scim/v2"), ("/Users".to_owned(), false));
    assert_eq!(normalise_endpoint("Users/", "/scim/v2"), ("/Users".to_owned(), false));
    assert_eq!(normalise_endpoint("/scim/v2/Users", "/scim/v2"), ("/Users".to_owned(), true));
    assert_eq!(
        normalise_endpoint("https://x.example/scim/v2/Groups", "/scim/v2"),
        ("/Groups".to_owned(), true)
    );
    assert_eq!(normalise_endpoint("/scim/v2", "/scim/v2"), ("/scim/v2".to_owned(), false));
    assert_eq!(normalise_endpoint("/scim/v2/Users", ""), ("/scim/v2/Users".to_owned(), false));
    assert_eq!(normalise_endpoint("/scim/v20/Users", "/scim/v2"), ("/scim/v20/Users".to_owned(), false));
}

#[test]
fn resource_types_name_the_endpoints_and_user_extensions() {
    let doc = json!({"totalResults": 2, "Resources": [
        {"name": "User", "endpoint": "/scim/v2/Users", "schemaExtensions": [{"schema": ENT, "required": false}]},
        {"id": "Group", "endpoint": "/scim/v2/Groups"},
        {"name": "Device"},
    ]});
    let types = resource_types(&doc, "/scim/v2").expect("a list");
    assert_eq!(types.users.as_deref(), Some("/Users"));
    assert_eq!(types.groups.as_deref(), Some("/Groups"));
    assert_eq!(types.user_extensions, [ENT]);
    assert!(types.with_base_path);
    assert!(resource_types(&json!({"schemas": ["x"]}), "").is_none());
}

#[test]
fn service_provider_config_hints_are_read_leniently() {
    let doc = json!({"patch": {"supported": "false"}, "filter": {"supported": true, "maxResults": 200}});
    assert_eq!(
        hints(&doc),
        Hints { patch: Some(false), filter: Some(true), max_results: Some(200), etag: None }
    );
    assert_eq!(hints(&json!([])), Hints::default());
}

#[test]
fn patch_verdicts() {
    for (status, expected) in
        [(404, Some(true)), (400, Some(true)), (409, Some(true)), (412, Some(true)), (204, Some(true))]
    {
        assert_eq!(verdict::patch("Users", status).0, expected, "{status}");
    }
    for status in [405, 501] {
        assert_eq!(verdict::patch("Groups", status).0, Some(false), "{status}");
    }
    for status in [401, 403, 429, 500, 503, 302] {
        assert_eq!(verdict::patch("Users", status).0, None, "{status}");
    }
}

#[test]
fn filter_verdicts() {
    let empty = listed(&json!({"totalResults": 0, "Resources": []}));
    let some = listed(&json!({"totalResults": 5, "Resources": [{"id": "a"}]}));
    let f = |status, list: &Option<_>, users| verdict::filter("userName", status, list.as_ref(), users).0;
    assert_eq!(f(200, &empty, Some(true)), Some(true));
    assert_eq!(f(200, &some, Some(true)), Some(false), "an ignored filter returns accounts");
    assert_eq!(f(400, &None, Some(true)), Some(false));
    assert_eq!(f(501, &None, Some(true)), Some(false));
    assert_eq!(f(200, &empty, Some(false)), None, "no users: cannot tell");
    assert_eq!(f(200, &empty, None), None);
    assert_eq!(f(200, &None, Some(true)), None, "not a list");
    assert_eq!(f(500, &None, Some(true)), None);
}

#[test]
fn case_verdicts_and_swapping() {
    assert_eq!(verdict::swap_case("Ada.Lovelace@x").as_deref(), Some("aDA.lOVELACE@X"));
    assert_eq!(verdict::swap_case("1234-56"), None);
    let found = listed(&json!({"totalResults": 1, "Resources": [{"id": "u1"}]}));
    let none = listed(&json!({"totalResults": 0, "Resources": []}));
    let other = listed(&json!({"totalResults": 1, "Resources": [{"id": "u2"}]}));
    assert_eq!(verdict::case_exact(200, found.as_ref(), "u1").0, Some(false));
    assert_eq!(verdict::case_exact(200, none.as_ref(), "u1").0, Some(true));
    assert_eq!(verdict::case_exact(200, other.as_ref(), "u1").0, None);
    assert_eq!(verdict::case_exact(400, None, "u1").0, None);
}

#[test]
fn paging_and_page_size_verdicts() {
    assert_eq!(verdict::paging(Some("a"), Some("a")).0, Some(false));
    assert_eq!(verdict::paging(Some("a"), Some("b")).0, Some(true));
    assert_eq!(verdict::paging(Some("a"), None).0, None);
    let page = |held: usize, total: u64| {
        let resources: Vec<_> = (0..held).map(|n| json!({"id": n.to_string()})).collect();
        listed(&json!({"totalResults": total, "Resources": resources})).expect("a list")
    };
    assert_eq!(verdict::max_page_size(1000, &page(10, 30)), Some(10));
    assert_eq!(verdict::max_page_size(1000, &page(30, 30)), None, "all of them: no limit seen");
    let no_total = listed(&json!({"Resources": [{"id": "1"}]})).expect("a list");
    assert_eq!(verdict::max_page_size(1000, &no_total), None);
    let by_items = listed(&json!({"totalResults": 50, "itemsPerPage": 20, "Resources": []})).expect("list");
    assert_eq!(verdict::max_page_size(1000, &by_items), Some(20));
}

#[test]
fn group_member_and_etag_verdicts() {
    let with = GroupRead::of(&json!({"id": "g", "members": [{"value": "u"}]}));
    let empty = GroupRead::of(&json!({"id": "g", "members": []}));
    let without = GroupRead::of(&json!({"id": "g"}));
    assert_eq!(verdict::group_members(&[without, with], None).0, Some(true));
    assert_eq!(verdict::group_members(&[without], Some((200, true))).0, Some(false));
    assert_eq!(verdict::group_members(&[without], Some((400, false))).0, None);
    assert_eq!(verdict::group_members(&[without], None).0, None);
    assert_eq!(verdict::group_members(&[empty], Some((200, true))).0, None, "empty lists: cannot tell");
    assert_eq!(verdict::group_members(&[], None).0, None);
    let versioned = json!({"meta": {"version": "W/\"3\""}});
    assert_eq!(verdict::etag(200, false, Some(&versioned)).0, Some(true));
    assert_eq!(verdict::etag(200, true, None).0, Some(true));
    assert_eq!(verdict::etag(200, false, Some(&json!({"meta": {}}))).0, Some(false));
    assert_eq!(verdict::etag(404, false, None).0, None);
}

#[test]
fn fresh_ids_are_version_4_uuids() {
    let id = super::checks::fresh_uuid();
    assert_eq!(id.len(), 36);
    assert_eq!(id.as_bytes()[14], b'4');
    assert_ne!(id, super::checks::fresh_uuid());
}
