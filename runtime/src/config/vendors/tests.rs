use std::collections::HashSet;
use std::path::PathBuf;

use scimfleet_schemas::scim::UserAttr;

use super::super::{Config, ConfigError, TargetProfile};
use super::{VENDORS, vendor};

const APP: &str = r#"
namespace = "acme"
[[apps]]
id = "chat"
base_url = "https://api.slack.com/scim/v2"
token_env = "SLACK_TOKEN"
PROFILE
[apps.scope]
include = { department = ["Engineering"] }
[[apps.groups]]
name = "eng"
hr_groups = ["engineering"]
"#;

fn load(profile: &str, target: &str) -> Result<Config, ConfigError> {
    let text = format!("{}{target}", APP.replace("PROFILE", profile));
    Config::from_toml(&text, "t.toml", PathBuf::new(), Vec::new())
}

fn is_kebab(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

#[test]
fn names_are_unique_kebab_case_and_sources_https() {
    let mut seen = HashSet::new();
    for v in VENDORS {
        assert!(seen.insert(v.name), "`{}` twice", v.name);
        assert!(is_kebab(v.name), "`{}` is not lower-case kebab", v.name);
        assert!(v.source.starts_with("https://") && v.source.len() > "https://".len(), "{}", v.source);
        assert_eq!(vendor(v.name).map(|found| found.source), Some(v.source), "{} by name", v.name);
    }
    assert!(vendor("SLACK").is_none(), "names are exact");
    assert!(vendor("google-workspace").is_none(), "no inbound SCIM, no profile");
}

#[test]
fn every_profile_says_something_and_round_trips_through_toml() {
    for v in VENDORS {
        let profile = (v.profile)();
        assert!(!profile.is_empty(), "{} says nothing", v.name);
        let text = profile.to_toml();
        let back: TargetProfile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", v.name));
        assert_eq!(back, profile, "{}:\n{text}", v.name);
    }
}

#[test]
fn listed_attributes_are_mappable_paths_named_once() {
    for v in VENDORS {
        let listed = (v.profile)().user_attributes;
        let mut seen = HashSet::new();
        for path in &listed {
            assert!(seen.insert(path.to_ascii_lowercase()), "{}: `{path}` twice", v.name);
            let attr: UserAttr = path.parse().unwrap_or_else(|e| panic!("{}: {e}", v.name));
            assert_eq!((v.profile)().lists(&attr), Some(true), "{}: `{path}`", v.name);
        }
    }
}

#[test]
fn documented_quirks_are_kept() {
    let aws = (vendor("aws-iam-identity-center").expect("aws").profile)();
    assert_eq!((aws.group_members, aws.paging, aws.max_page_size), (Some(false), Some(false), Some(100)));
    let zoom = (vendor("zoom").expect("zoom").profile)();
    assert_eq!((zoom.patch_users, zoom.patch_groups), (Some(false), Some(true)));
    let slack = (vendor("slack").expect("slack").profile)();
    let manager = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value";
    assert_eq!(slack.lists(&manager.parse().expect("path")), Some(false), "Slack names it managerId");
    assert_eq!(slack.lists(&"name.formatted".parse().expect("path")), Some(false));
}

#[test]
fn an_app_profile_is_the_vendors_keys_under_its_own_target_keys() {
    let target = "[apps.target]\npatch_groups = false\nmax_page_size = 200\n";
    let config = load("profile = \"slack\"", target).expect("valid");
    let app = &config.apps[0];
    assert_eq!(app.profile.as_deref(), Some("slack"));
    let slack = (vendor("slack").expect("slack").profile)();
    let declared = app.declared_profile();
    assert_eq!(declared.patch_groups, Some(false), "[apps.target] wins");
    assert_eq!(declared.max_page_size, Some(200), "[apps.target] wins");
    assert_eq!(declared.patch_users, slack.patch_users, "the vendor's key falls through");
    assert_eq!(declared.group_members, Some(true));
    assert_eq!(declared.user_attributes, slack.user_attributes);
    assert_eq!(declared.filter_users, None, "unset everywhere stays unset");

    // A probe sits between the vendor and the app's own keys.
    let probed =
        TargetProfile { group_members: Some(false), max_page_size: Some(50), ..TargetProfile::default() };
    let merged = app.profile_with(&probed);
    assert_eq!(merged.group_members, Some(false), "the probe beats the vendor");
    assert_eq!(merged.max_page_size, Some(200), "[apps.target] beats the probe");
    assert_eq!(merged.patch_users, Some(true));
}

#[test]
fn an_unknown_profile_is_refused_by_field() {
    let message = load("profile = \"okta-target\"", "").expect_err("unknown").to_string();
    assert!(message.contains("apps[0].profile") && message.contains("okta-target"), "{message}");
    assert!(message.contains("slack"), "the known profiles are named: {message}");
}

#[test]
fn a_vendor_attribute_list_checks_the_mapping() {
    // GitHub lists neither `title` nor the enterprise attributes the standard mapping writes.
    let message = load("profile = \"github-enterprise\"", "").expect_err("unlisted").to_string();
    assert!(message.contains("apps[0].mapping.") && message.contains("does not list"), "{message}");
    // The app's own list replaces the vendor's.
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let own = format!(
        "[apps.target]\nuser_attributes = [\"userName\", \"name\", \"displayName\", \"emails\", \"title\", \"{ent}:employeeNumber\", \"{ent}:department\"]\n"
    );
    assert!(load("profile = \"github-enterprise\"", &own).is_ok());
    // AWS lists every attribute the standard mapping writes.
    assert!(load("profile = \"aws-iam-identity-center\"", "").is_ok());
}
