use super::*;

fn user(active: Option<bool>, groups: Option<Vec<&str>>) -> ScimUser {
    let mut user = ScimUser::new("ada");
    user.active = active;
    user.groups = groups.map(|ids| {
        ids.into_iter().map(|id| GroupRef { value: id.into(), reference: None, display: None }).collect()
    });
    user
}

#[test]
fn judge_table() {
    use Expectation::{Absent, Inactive};
    assert_eq!(judge(Some(false), 0, Inactive), (true, "inactive".into()));
    assert_eq!(judge(Some(false), 2, Inactive), (false, "inactive, in 2 groups".into()));
    assert_eq!(judge(Some(true), 0, Inactive), (false, "active".into()));
    assert_eq!(judge(Some(false), 0, Absent), (false, "inactive".into()), "a delete leaves nothing");
    assert!(!judge(None, 0, Inactive).0, "active not reported is not inactive");
    assert_eq!(judge(Some(true), 1, Inactive).1, "active, in 1 group");
}

#[test]
fn desired_user_is_active_and_drops_server_attributes() {
    let mut job_user = user(None, Some(vec!["g-1"]));
    job_user.id = Some("u-1".into());
    job_user.schemas.clear();
    let desired = desired_user(&job_user);
    assert_eq!(desired.active, Some(true));
    assert_eq!(desired.id, None);
    assert_eq!(desired.groups, None);
    assert_eq!(desired.schemas, vec![scimfleet_schemas::scim::USER_SCHEMA.to_owned()]);
    assert_eq!(desired.user_name, "ada");
}

#[test]
fn outcome_changed_reflects_writes_only() {
    assert!(!Outcome::default().changed());
    assert!(!Outcome { not_found: true, verified: Some(false), ..Outcome::default() }.changed());
    for changed in [
        Outcome { created: true, ..Outcome::default() },
        Outcome { patched_attributes: 2, ..Outcome::default() },
        Outcome { reactivated: true, ..Outcome::default() },
        Outcome { deactivated: true, ..Outcome::default() },
        Outcome { deleted: true, ..Outcome::default() },
        Outcome { groups_added: 1, ..Outcome::default() },
        Outcome { groups_removed: 1, ..Outcome::default() },
    ] {
        assert!(changed.changed(), "{changed:?}");
    }
}

#[test]
fn missing_id_is_an_error_not_a_panic() {
    let mut u = user(Some(true), None);
    assert!(matches!(user_id(&u), Err(ApplyError::MissingId { resource: "User" })));
    u.id = Some(String::new());
    assert!(user_id(&u).is_err());
    u.id = Some("u-1".into());
    assert_eq!(user_id(&u).expect("has an id"), "u-1");
}
