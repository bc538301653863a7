use std::path::PathBuf;

use super::*;

/// A directory of its own for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
        let dir =
            std::env::temp_dir().join(format!("scimfleet-approvers-{test}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    /// Writes `text` to `name` with `mode`, returning its path.
    fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).expect("write");
        set_mode(&path, mode);
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

const GOOD: &str = r#"
[[approvers]]
name = "alice"
person_id = "E1001"
totp_secret = "JBSWY3DPEHPK3PXP"

[[approvers]]
name = "bob.ops"
totp_secret = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq"
"#;

fn invalid(text: &str) -> (String, String) {
    match Approvers::parse(text, "approvers.toml") {
        Err(ApproversError::Invalid { field, reason, .. }) => (field, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_valid_file_loads_and_codes_are_checked() {
    let scratch = Scratch::new("load");
    let path = scratch.file("approvers.toml", GOOD, 0o600);
    let approvers = Approvers::load(&path).expect("valid");
    assert_eq!(approvers.len(), 2);
    let alice = approvers.get("alice").expect("alice");
    assert_eq!(alice.person_id.as_ref().map(PersonId::as_str), Some("E1001"));
    assert!(approvers.get("bob.ops").expect("bob").person_id.is_none());
    assert!(approvers.get("carol").is_none());

    let now = 1_700_000_000;
    let code = totp::code_at(&alice.secret, now);
    let (who, step) = approvers.check_code("alice", &code, now).expect("right code");
    assert_eq!((who.name.as_str(), step), ("alice", now / 30));
    // bob's secret is another one: alice's code is wrong for him.
    let err = approvers.check_code("bob.ops", &code, now).expect_err("wrong");
    assert!(matches!(err, ApproversError::Code { source: TotpError::Wrong, .. }), "{err:?}");
    let err = approvers.check_code("alice", &totp::code_at(&alice.secret, now - 120), now).expect_err("old");
    assert!(matches!(err, ApproversError::Code { source: TotpError::Expired, .. }), "{err:?}");
    let err = approvers.check_code("alice", "12345", now).expect_err("short");
    assert!(matches!(err, ApproversError::Code { source: TotpError::Malformed, .. }), "{err:?}");
    let err = approvers.check_code("carol", &code, now).expect_err("unknown");
    assert_eq!(err.to_string(), "unknown approver `carol`");
    // Debug never shows a secret.
    assert!(!format!("{approvers:?}").contains("JBSWY3DP"));
}

#[test]
fn errors_name_the_file_and_field_and_never_the_secret() {
    let secret = "JBSWY3DPEHPK3PX1";
    let (field, reason) = invalid(&GOOD.replace("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", secret));
    assert_eq!((field.as_str(), reason.as_str()), ("approvers[1].totp_secret", "not base32"));
    let err =
        Approvers::parse(&GOOD.replace("JBSWY3DPEHPK3PXP", "JBSWY3DP"), "approvers.toml").expect_err("short");
    assert_eq!(
        err.to_string(),
        "approvers.toml: approvers[0].totp_secret: too short: 40 bits, at least 80 needed"
    );

    assert_eq!(invalid(&GOOD.replace("bob.ops", "alice")).0, "approvers[1].name");
    assert_eq!(invalid(&GOOD.replace("bob.ops", "Bob")).0, "approvers[1].name");
    assert_eq!(invalid(&GOOD.replace("\"bob.ops\"", "\"\"")).0, "approvers[1].name");
    assert_eq!(invalid(&GOOD.replace("bob.ops", &"b".repeat(65))).0, "approvers[1].name");
    assert_eq!(invalid(&GOOD.replace("E1001", "E 1001")).0, "approvers[0].person_id");
    let (field, reason) = invalid(&GOOD.replace("person_id", "persn_id"));
    assert_eq!(field, "approvers[0].persn_id");
    assert!(reason.contains("unknown field"), "{reason}");
    assert_eq!(invalid("[[approvers]]\nname = \"x\"\n").1, "missing field `totp_secret`");

    // A syntax error on the secret's line gives the line, not its text.
    let broken = GOOD.replace("totp_secret = \"JBSWY3DPEHPK3PXP\"", "totp_secret = \"JBSWY3DPEHPK3PXP");
    let err = Approvers::parse(&broken, "approvers.toml").expect_err("syntax");
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("approvers.toml: line 5: "), "{shown}");
    assert!(!shown.contains("JBSWY3DP"), "{shown}");
    let typed = GOOD.replace("\"JBSWY3DPEHPK3PXP\"", "123456789");
    assert_eq!(
        invalid(&typed),
        ("approvers[0].totp_secret".to_owned(), "expected a base32 string".to_owned())
    );
}

#[test]
fn an_empty_file_lists_nobody() {
    let approvers = Approvers::parse("", "approvers.toml").expect("empty is valid");
    assert!(approvers.is_empty());
    assert_eq!(approvers.iter().count(), 0);
}

#[cfg(unix)]
#[test]
fn a_file_others_may_read_is_refused() {
    let scratch = Scratch::new("mode");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        let path = scratch.file("approvers.toml", GOOD, mode);
        let err = Approvers::load(&path).expect_err("exposed");
        assert!(matches!(err, ApproversError::Exposed { .. }), "{err:?}");
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
    let missing = Approvers::load(&scratch.0.join("absent.toml")).expect_err("missing");
    assert!(matches!(missing, ApproversError::File { action: "read", .. }), "{missing:?}");
}

#[test]
fn enroll_creates_the_file_private_and_appends_unique_names() {
    let scratch = Scratch::new("enroll");
    let path = scratch.0.join("approvers.toml");
    let uri = enroll(&path, "alice", Some("E1001")).expect("first");
    let prefix = "otpauth://totp/scimfleet:alice?secret=";
    let secret = uri.strip_prefix(prefix).and_then(|rest| rest.split('&').next()).expect("uri shape");
    assert!(uri.ends_with("&issuer=scimfleet&algorithm=SHA1&digits=6&period=30"), "{uri}");
    assert_eq!(secret.len(), 32, "160 bits");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path).expect("created").permissions().mode() & 0o777, 0o600);
    }
    enroll(&path, "bob", None).expect("second");
    let err = enroll(&path, "alice", None).expect_err("duplicate");
    assert!(matches!(err, ApproversError::Duplicate { .. }), "{err:?}");
    let err = enroll(&path, "Carol", None).expect_err("bad name");
    assert!(matches!(err, ApproversError::Invalid { ref field, .. } if field == "name"), "{err:?}");
    let err = enroll(&path, "carol", Some("E 1")).expect_err("bad person id");
    assert!(matches!(err, ApproversError::Invalid { ref field, .. } if field == "person_id"), "{err:?}");

    let approvers = Approvers::load(&path).expect("what enroll writes loads");
    assert_eq!(approvers.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["alice", "bob"]);
    let alice = approvers.get("alice").expect("alice");
    assert_eq!(alice.person_id.as_ref().map(PersonId::as_str), Some("E1001"));
    // The URI's secret is the one stored: the app's codes are accepted.
    let app = TotpSecret::from_base32(secret).expect("base32");
    let now = 1_800_000_000;
    assert_eq!(approvers.check_code("alice", &totp::code_at(&app, now), now).expect("accepted").1, now / 30);
}

#[cfg(unix)]
#[test]
fn enroll_refuses_to_append_to_an_exposed_file() {
    let scratch = Scratch::new("enroll-exposed");
    let path = scratch.file("approvers.toml", GOOD, 0o644);
    let err = enroll(&path, "carol", None).expect_err("exposed");
    assert!(matches!(err, ApproversError::Exposed { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&path).expect("read"), GOOD, "left untouched");
}

#[test]
fn nobody_approves_a_grant_to_themselves() {
    let approvers = Approvers::parse(GOOD, "approvers.toml").expect("valid");
    let (alice, bob) = (approvers.get("alice").expect("alice"), approvers.get("bob.ops").expect("bob"));
    let e1001 = PersonId::parse("E1001").expect("id");
    let e2002 = PersonId::parse("E2002").expect("id");
    assert!(!alice.may_approve_for(&e1001));
    assert!(alice.may_approve_for(&e2002));
    assert!(bob.may_approve_for(&e1001), "no person id: only the code counts");
}

#[tokio::test]
async fn a_code_authenticates_once_across_processes() {
    use scimfleet_runtime::Secret;
    use scimfleet_runtime::config::RedisConfig;

    let url = std::env::var("SCIMFLEET_REDIS__URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let ns = format!("t-{}-approvers-{}", chrono::Utc::now().timestamp(), std::process::id());
    let redis = RedisConfig::plain(Secret::new(url));
    // Two connections, as two admin processes would have.
    let (one, two) = (
        Store::connect(&redis, &ns).await.expect("redis"),
        Store::connect(&redis, &ns).await.expect("redis"),
    );
    let approvers = Approvers::parse(GOOD, "approvers.toml").expect("valid");
    let alice = approvers.get("alice").expect("alice");
    let now = 1_900_000_000;
    let code = totp::code_at(&alice.secret, now);

    let who = approvers.authenticate(&one, "alice", &code, now).await.expect("first use");
    assert_eq!(who.name, "alice");
    let err = approvers.authenticate(&two, "alice", &code, now + 5).await.expect_err("reused");
    assert!(matches!(err, ApproversError::Reused { .. }), "{err:?}");
    // The previous step's code is still inside the skew window, but older than the one spent.
    let older = totp::code_at(&alice.secret, now - 30);
    let err = approvers.authenticate(&two, "alice", &older, now).await.expect_err("older");
    assert!(matches!(err, ApproversError::Reused { .. }), "{err:?}");
    // A wrong code spends nothing; the next step's code works.
    let err = approvers.authenticate(&one, "alice", "000000", now + 30).await.expect_err("wrong");
    assert!(matches!(err, ApproversError::Code { .. }), "{err:?}");
    approvers
        .authenticate(&two, "alice", &totp::code_at(&alice.secret, now + 30), now + 30)
        .await
        .expect("next step");
    one.delete_namespace().await.expect("cleanup");
}
