use super::*;

const BASE: &str = r#"
namespace = "acme"
[[apps]]
id = "github"
base_url = "https://scim.example.com/v2"
token_env = "GITHUB_TOKEN"
[apps.scope]
include = { department = ["Engineering"] }
[[apps.groups]]
name = "eng"
hr_groups = ["engineering"]
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, "test.toml", PathBuf::new(), Vec::new())
}

fn err(text: &str) -> String {
    load(text).expect_err("must be refused").to_string()
}

#[test]
fn defaults_fill_what_the_file_omits() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.namespace, "acme");
    assert_eq!(config.scheduler.prefetch, 64);
    assert_eq!(config.scheduler.lease_ttl_ms, 5000);
    assert_eq!(config.apps[0].deprovision, Deprovision::Deactivate);
    assert!(config.apps[0].create_groups);
    assert_eq!(config.apps[0].mapping, Mapping::standard());
}

#[test]
fn unknown_field_names_file_and_field() {
    let text = err(&format!("{BASE}\nbogus = 1\n"));
    assert!(text.contains("test.toml") && text.contains("bogus"), "{text}");
    let text = err(&BASE.replace("token_env", "tokn_env"));
    assert!(text.contains("apps[0]") || text.contains("apps.0"), "{text}");
}

#[test]
fn a_planning_lease_too_short_to_plan_under_names_the_field() {
    let with = |ms: u64| {
        BASE.replace(
            "namespace = \"acme\"\n",
            &format!("namespace = \"acme\"\n[scheduler]\nlease_ttl_ms = {ms}\n"),
        )
    };
    let text = err(&with(50));
    assert!(text.contains("scheduler.lease_ttl_ms"), "{text}");
    assert_eq!(load(&with(100)).expect("valid").scheduler.lease_ttl_ms, 100);
}

#[test]
fn bad_enum_value_names_the_field() {
    let text = err(&format!("{BASE}deprovision = \"archive\"\n")
        .replace("[apps.scope]\ninclude = { department = [\"Engineering\"] }\n", ""));
    assert!(text.contains("deprovision"), "{text}");
}

#[test]
fn plain_http_is_refused_unless_loopback_and_allowed() {
    let remote = BASE.replace("https://scim.example.com", "http://scim.example.com");
    assert!(err(&remote).contains("apps[0].base_url"));
    let local = BASE.replace("https://scim.example.com", "http://127.0.0.1:9000");
    assert!(err(&local).contains("allow_insecure_loopback"));
    let allowed = local.replace(
        "token_env = \"GITHUB_TOKEN\"",
        "token_env = \"GITHUB_TOKEN\"\nallow_insecure_loopback = true",
    );
    assert!(load(&allowed).is_ok());
}

#[test]
fn duplicate_app_ids_and_missing_token_are_refused() {
    let twice = format!(
        "{BASE}\n[[apps]]\nid = \"github\"\nbase_url = \"https://x.example.com\"\ntoken_env = \"T\"\n"
    );
    assert!(err(&twice).contains("apps[1].id"));
    assert!(err(&BASE.replace("token_env = \"GITHUB_TOKEN\"", "")).contains("token_env"));
}

#[test]
fn mapping_paths_and_templates_are_checked() {
    let bad_path = format!("{BASE}[apps.mapping]\nuserName = \"userName\"\n\"emails\" = \"email\"\n");
    assert!(err(&bad_path).contains("`emails` holds a list"), "{}", err(&bad_path));
    let read_only = format!("{BASE}[apps.mapping]\nuserName = \"userName\"\nid = \"person_id\"\n");
    assert!(err(&read_only).contains("assigned by the service provider"));
    let bad_type = format!(
        "{BASE}[apps.mapping]\nuserName = \"userName\"\ntitle = {{ from = \"t\", type = \"date\" }}\n"
    );
    assert!(err(&bad_type).contains("mapping of `title`: unknown type `date`"), "{}", err(&bad_type));
    let bad_template =
        format!("{BASE}[apps.mapping]\nuserName = \"userName\"\ndisplayName = \"{{givenName\"\n");
    assert!(err(&bad_template).contains("unclosed"));
    let no_user_name = format!("{BASE}[apps.mapping]\ntitle = \"title\"\n");
    assert!(err(&no_user_name).contains("must map `userName`"));
}

#[test]
fn mapped_paths_are_checked_against_the_targets_listed_attributes() {
    let listed = "[apps.target]\nuser_attributes = [\"userName\", \"name\", \"emails\"]\n";
    let fits = format!(
        "{BASE}[apps.mapping]\nuserName = \"userName\"\nexternalId = \"person_id\"\n\"name.givenName\" = \"givenName\"\n{listed}"
    );
    assert!(Config::from_toml(&fits, "t.toml", PathBuf::new(), Vec::new()).is_ok());
    let unlisted = format!("{BASE}[apps.mapping]\nuserName = \"userName\"\ntitle = \"title\"\n{listed}");
    let message = err(&unlisted);
    assert!(message.contains("apps[0].mapping.\"title\"") && message.contains("does not list"), "{message}");
}

#[test]
fn hr_file_sources_are_checked_naming_the_field() {
    let source = |extra: &str| {
        format!(
            "{BASE}[[sources]]\nkind = \"hr-file\"\nid = \"workday\"\nperson_id = \"Employee_ID\"\n{extra}"
        )
    };
    assert!(
        Config::from_toml(&source("time_zone = \"Europe/Rome\"\n"), "t.toml", PathBuf::new(), Vec::new())
            .is_ok()
    );
    assert!(err(&source("time_zone = \"Mars/Olympus\"\n")).contains("sources[0].time_zone"));
    assert!(err(&source("status = { column = \"S\" }\n")).contains("sources[0].status"));
    assert!(err(&source("colums = {}\n")).contains("colums"), "a typo is an error");
    let twice =
        format!("{}[[sources]]\nkind = \"hr-file\"\nid = \"workday\"\nperson_id = \"X\"\n", source(""));
    assert!(err(&twice).contains("sources[1].id"));
    assert!(err(&format!("{BASE}[[sources]]\nkind = \"okta\"\nid = \"o\"\n")).contains("secrets"));
    assert!(err(&format!("{BASE}[[sources]]\nkind = \"workday-api\"\nid = \"w\"\n")).contains("workday-api"));
    let okta = format!(
        "{BASE}[[sources]]\nkind = \"okta\"\nid = \"o\"\nsecrets = [{{ env = \"S\" }}]\n\
         dedupe_for = \"1h\"\n[sources.api]\nbase_url = \"https://acme.okta.com\"\ntoken = {{ env = \"T\" }}\n"
    );
    assert!(err(&okta).contains("sources[0].dedupe_for"), "{}", err(&okta));
}

#[test]
fn environment_overrides_the_file() {
    let env = vec![
        ("SCIMFLEET_BROKER__URL".to_owned(), "amqp://u:p@rabbit:5672/%2f".to_owned()),
        // A plaintext URL to a host elsewhere needs this (a boolean from text).
        ("SCIMFLEET_BROKER__ALLOW_PLAINTEXT".to_owned(), "true".to_owned()),
        ("SCIMFLEET_SCHEDULER__PREFETCH".to_owned(), "8".to_owned()),
        ("SCIMFLEET_AMQP_PORT".to_owned(), "5673".to_owned()),
        ("SCIMFLEET_AUDIT__ENABLED".to_owned(), "false".to_owned()),
        // A container's listeners and the console's sign-in (deploy/docker-compose.yml).
        ("SCIMFLEET_INTAKE__LISTEN".to_owned(), "0.0.0.0:8088".to_owned()),
        ("SCIMFLEET_CONSOLE__LISTEN".to_owned(), "0.0.0.0:8090".to_owned()),
        ("SCIMFLEET_CONSOLE__AUTH".to_owned(), "static".to_owned()),
        ("SCIMFLEET_CONSOLE__CREDENTIAL_FILE".to_owned(), "/run/secrets/console".to_owned()),
        // Not a setting: a single `_` after the section's name.
        ("SCIMFLEET_INTAKE_SECRET_HR".to_owned(), "whsec_x".to_owned()),
    ];
    assert!(load(BASE).expect("valid").audit.enabled, "the audit trail is on by default");
    let config = Config::from_toml(BASE, "test.toml", PathBuf::new(), env).expect("valid");
    assert_eq!(config.broker.url.first().expose(), "amqp://u:p@rabbit:5672/%2f");
    assert_eq!(config.scheduler.prefetch, 8);
    assert!(!config.audit.enabled);
    assert_eq!(config.intake.listen.map(|a| a.port()), Some(8088));
    assert_eq!(config.console.listen.map(|a| a.port()), Some(8090));
    assert_eq!(config.console.auth, ConsoleAuth::Static);
    assert_eq!(config.console.credential_file, Some(PathBuf::from("/run/secrets/console")));
}

#[test]
fn broker_url_errors_do_not_leak_the_password() {
    let text = err(&format!("{BASE}\n[broker]\nurl = \"http://user:hunter2@x\"\n"));
    assert!(text.contains("broker.url") && !text.contains("hunter2"), "{text}");
    let config = load(BASE).expect("valid");
    assert!(!format!("{config:?}").contains("guest:guest"));
}

#[test]
fn tokens_resolve_from_files_relative_to_the_config() {
    let dir = std::env::temp_dir().join(format!("scimfleet-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::write(dir.join("tok"), "s3cret\n").expect("write");
    let text = BASE.replace("token_env = \"GITHUB_TOKEN\"", "token_file = \"tok\"");
    let config = Config::from_toml(&text, "t.toml", dir.clone(), Vec::new()).expect("valid");
    let token = config.apps[0].token(&config.origin, 0, &config.base_dir).expect("token");
    assert_eq!(token.expose(), "s3cret");
    std::fs::remove_file(dir.join("tok")).expect("cleanup");
    let missing = config.apps[0].token(&config.origin, 0, &config.base_dir).expect_err("gone");
    assert!(missing.to_string().contains("apps[0].token_file"));
}

#[test]
fn retry_settings_are_checked() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.worker.retry_tiers_ms[0], 1000);
    assert_eq!(config.worker.max_attempts, 8);
    let unordered = format!("{BASE}\n[worker]\nretry_tiers_ms = [5000, 1000]\n");
    assert!(err(&unordered).contains("worker.retry_tiers_ms"));
    let zero = BASE.replace("token_env = \"GITHUB_TOKEN\"", "token_env = \"GITHUB_TOKEN\"\nmax_attempts = 0");
    assert!(err(&zero).contains("apps[0].max_attempts"));
}

#[test]
fn management_url_must_be_http_without_credentials() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.broker.management_url.as_str(), "http://127.0.0.1:15672/");
    let amqp = format!("{BASE}\n[broker]\nmanagement_url = \"amqp://127.0.0.1:5672\"\n");
    assert!(err(&amqp).contains("broker.management_url"), "{}", err(&amqp));
    let garbage = format!("{BASE}\n[broker]\nmanagement_url = \"not a url\"\n");
    assert!(err(&garbage).contains("broker.management_url"), "{}", err(&garbage));
    let text = err(&format!("{BASE}\n[broker]\nmanagement_url = \"https://ops:hunter2@mq.example.com\"\n"));
    assert!(text.contains("broker.management_url") && !text.contains("hunter2"), "{text}");
}

#[test]
fn telemetry_listeners_and_journey_retention_are_validated() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.telemetry.scheduler_listen, "127.0.0.1:9464".parse().ok());
    assert_eq!(config.telemetry.worker_listen, "127.0.0.1:9465".parse().ok());
    assert_eq!(config.telemetry.journey_retention, 7 * 86_400_000);
    let text = format!(
        "{BASE}\n[telemetry]\nlog_format = \"json\"\nworker_listen = \"off\"\njourney_retention = \"2h\"\n"
    );
    let config = load(&text).expect("valid");
    assert_eq!((config.telemetry.worker_listen, config.telemetry.journey_retention), (None, 7_200_000));
    let bad = err(&format!("{BASE}\n[telemetry]\nlog_format = \"json\"\nscheduler_listen = \"localhost\"\n"));
    assert!(bad.contains("telemetry.scheduler_listen") && bad.contains("host:port"), "{bad}");
    let bad = err(&format!("{BASE}\n[telemetry]\nlog_format = \"json\"\njourney_retention = \"soon\"\n"));
    assert!(bad.contains("telemetry.journey_retention"), "{bad}");
}

#[test]
fn lease_ttl_is_at_least_a_second_and_below_the_job_timeout() {
    let config = load(BASE).expect("valid");
    assert_eq!(config.worker.lease_ttl_ms, 5000);
    let worker = |table: &str| format!("{BASE}\n[worker]\n{table}\n");
    assert!(err(&worker("lease_ttl_ms = 999")).contains("worker.lease_ttl_ms"));
    let text = err(&worker("job_timeout_ms = 5000"));
    assert!(text.contains("worker.lease_ttl_ms") && text.contains("job_timeout_ms"), "{text}");
    assert_eq!(
        load(&worker("lease_ttl_ms = 1000\njob_timeout_ms = 1500")).expect("valid").worker.lease_ttl_ms,
        1000
    );
}

#[test]
fn governance_defaults_hold_grants_fail_closed_and_a_typo_in_high_risk_groups_is_refused() {
    let config = load(BASE).expect("valid");
    let governance = &config.governance;
    assert!(governance.stepped_up(&["pwd".into(), "mfa".into()], None));
    assert!(!governance.stepped_up(&["pwd".into()], Some("urn:unknown")));
    assert_eq!(governance.approvals_required, 1);
    let app_limit = governance.app_limit(None);
    assert_eq!(app_limit.allowed(1000), Some(100), "the count limit wins over 20 % of 1000");
    assert_eq!(app_limit.allowed(100), Some(20));
    assert_eq!(app_limit.allowed(5), Some(10), "the floor keeps a small app's single leaver free");
    assert_eq!(governance.fleet_limit().allowed(0), Some(500));

    let with_high_risk = |groups: &str| {
        BASE.replace(
            "token_env = \"GITHUB_TOKEN\"\n",
            &format!("token_env = \"GITHUB_TOKEN\"\nhigh_risk = {{ groups = [{groups}] }}\n"),
        )
    };
    let text = err(&with_high_risk("\"admns\""));
    assert!(text.contains("apps[0].high_risk.groups[0]") && text.contains("admns"), "{text}");
    let config = load(&with_high_risk("\"ENG\"")).expect("a managed group, in any case");
    assert!(config.apps[0].is_high_risk_group("eng"));
    let two = BASE
        .replace("namespace = \"acme\"\n", "namespace = \"acme\"\n[governance]\napprovals_required = 3\n");
    assert!(err(&two).contains("governance.approvals_required"));
}

#[test]
fn broker_url_takes_one_url_or_the_nodes_of_a_cluster() {
    assert_eq!(load(BASE).expect("valid").broker.url.len(), 1, "one URL, as before");
    let nodes = r#"["amqp://u:p@127.0.0.1:5681/%2f", "amqp://u:p@127.0.0.1:5682/%2f", "amqp://u:p@127.0.0.1:5683/%2f"]"#;
    let config = load(&format!("{BASE}\n[broker]\nurl = {nodes}\n")).expect("valid");
    let urls: Vec<&str> = config.broker.url.iter().map(crate::Secret::expose).collect();
    assert_eq!(
        urls,
        ["amqp://u:p@127.0.0.1:5681/%2f", "amqp://u:p@127.0.0.1:5682/%2f", "amqp://u:p@127.0.0.1:5683/%2f"]
    );
    // The environment takes a list in TOML syntax.
    let env = vec![("SCIMFLEET_BROKER__URL".to_owned(), nodes.to_owned())];
    let config = Config::from_toml(BASE, "test.toml", PathBuf::new(), env).expect("valid");
    assert_eq!(config.broker.url.len(), 3);
}

#[test]
fn broker_url_lists_are_checked_per_url_without_leaking_a_password() {
    let text = err(&format!("{BASE}\n[broker]\nurl = []\n"));
    assert!(text.contains("broker.url") && text.contains("at least one"), "{text}");
    let text =
        err(&format!("{BASE}\n[broker]\nurl = [\"amqp://u:hunter2@127.0.0.1\", \"http://u:hunter2@x\"]\n"));
    assert!(text.contains("broker.url[1]") && !text.contains("hunter2"), "{text}");
    let remote =
        format!("{BASE}\n[broker]\nurl = [\"amqp://u:p@127.0.0.1\", \"amqp://u:p@rabbit-2.example.com\"]\n");
    assert!(err(&remote).contains("broker.url[1]") && err(&remote).contains("plaintext"), "{}", err(&remote));
    for other in
        ["amqp://u:hunter3@127.0.0.2", "amqp://v:hunter2@127.0.0.2", "amqp://u:hunter2@127.0.0.2/other"]
    {
        let text = err(&format!("{BASE}\n[broker]\nurl = [\"amqp://u:hunter2@127.0.0.1\", \"{other}\"]\n"));
        assert!(text.contains("broker.url[1]") && text.contains("one cluster"), "{text}");
        assert!(!text.contains("hunter"), "{text}");
    }
    let text = err(&format!("{BASE}\n[broker]\nurl = 5\n"));
    assert!(text.contains("broker.url") && text.contains("a list of AMQP URLs"), "{text}");
    let config = load(&format!(
        "{BASE}\n[broker]\nurl = [\"amqp://u:hunter2@127.0.0.1\", \"amqp://u:hunter2@127.0.0.2\"]\n"
    ))
    .expect("valid");
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn redis_cluster_takes_seeds_reached_like_url_without_leaking_a_password() {
    let cluster = "[redis]\nurl = \"redis://:hunter2@127.0.0.1:7000\"\ncluster = true\n";
    let seeds =
        "cluster_seeds = [\"redis://:hunter2@127.0.0.1:7001\", \"redis://:hunter2@127.0.0.1:7002\"]\n";
    let config = load(&format!("{BASE}\n{cluster}{seeds}")).expect("valid");
    assert!(config.redis.cluster);
    assert_eq!(config.redis.seed_urls().count(), 3);
    assert!(!format!("{config:?}").contains("hunter2"));
    assert!(!load(BASE).expect("valid").redis.cluster, "one server unless told");
    // The environment takes the seeds as a TOML list.
    let env = vec![
        ("SCIMFLEET_REDIS__CLUSTER".to_owned(), "true".to_owned()),
        ("SCIMFLEET_REDIS__CLUSTER_SEEDS".to_owned(), r#"["redis://127.0.0.1:7001"]"#.to_owned()),
    ];
    let config = Config::from_toml(BASE, "test.toml", PathBuf::new(), env).expect("valid");
    assert!(config.redis.cluster && config.redis.cluster_seeds.len() == 1);

    let text = err(&format!("{BASE}\n[redis]\ncluster_seeds = [\"redis://127.0.0.1:7001\"]\n"));
    assert!(text.contains("redis.cluster_seeds") && text.contains("cluster = true"), "{text}");
    for other in
        ["redis://:hunter3@127.0.0.1:7001", "rediss://:hunter2@127.0.0.1:7001", "redis://u:hunter2@x:1"]
    {
        let text = err(&format!("{BASE}\n{cluster}cluster_seeds = [\"{other}\"]\n"));
        assert!(text.contains("redis.cluster_seeds[0]") && !text.contains("hunter"), "{text}");
    }
    let text =
        err(&format!("{BASE}\n{cluster}cluster_seeds = [\"redis://:hunter2@redis-2.example.com:7001\"]\n"));
    assert!(text.contains("redis.cluster_seeds[0]") && text.contains("plaintext"), "{text}");
    let text = err(&format!("{BASE}\n[redis]\nurl = \"redis://127.0.0.1:7000/3\"\ncluster = true\n"));
    assert!(text.contains("redis.url") && text.contains("database 0"), "{text}");
}

#[test]
fn the_console_without_sign_in_is_refused_off_loopback_and_static_needs_its_file() {
    let console = |table: &str| {
        BASE.replace("namespace = \"acme\"\n", &format!("namespace = \"acme\"\n[console]\n{table}\n"))
    };
    let text = err(&console("listen = \"0.0.0.0:8090\""));
    assert!(text.contains("console.auth"), "{text}");
    let text = err(&console("auth = \"static\""));
    assert!(text.contains("console.credential_file"), "{text}");
    let config =
        load(&console("listen = \"0.0.0.0:8090\"\nauth = \"static\"\ncredential_file = \"admin.secret\""))
            .expect("valid");
    assert_eq!(
        config.console.credential_path(Path::new("/etc/scimfleet")),
        Some(PathBuf::from("/etc/scimfleet/admin.secret"))
    );
    assert_eq!(
        load(BASE).expect("valid").console.auth,
        ConsoleAuth::None,
        "off by default: loopback, no sign-in"
    );
}
