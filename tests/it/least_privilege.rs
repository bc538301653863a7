//! Least privilege: the users `deploy/rabbitmq/setup-users.sh` and
//! `deploy/redis/setup-acl.sh` make are enough for every role (an intake, a
//! scheduler and a worker process, `scimfleet publish` and `scimfleet
//! topology declare` run with them through retries, dead letters and a
//! leaver's verification) and refuse what a role has no business doing.

use crate::common::{self, Person, process::FleetProcess};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use scimfleet_devkit::expect;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::idp::{IdpStub, okta};
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, Route};
use scimfleet_devkit::wait;
use scimfleet_intake::Key;
use scimfleet_runtime::broker::{Topology, inspect};
use scimfleet_schemas::{AppId, DeadLetterReason};
use serde_json::Value;

const ROLES: [&str; 4] = ["intake", "scheduler", "worker", "admin"];

/// The users of one namespace, made by the shipped scripts; deleted on drop.
struct Users {
    ns: String,
    passwords: BTreeMap<&'static str, String>,
}

impl Users {
    fn create(ns: &str) -> Self {
        let passwords: BTreeMap<_, _> = ROLES.iter().map(|&r| (r, format!("{:032x}", rand_u128()))).collect();
        let users = Self { ns: ns.to_owned(), passwords };
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for (script, kind) in
            [("deploy/rabbitmq/setup-users.sh", "RABBITMQ"), ("deploy/redis/setup-acl.sh", "REDIS")]
        {
            let mut command = Command::new("bash");
            command.arg(root.join(script)).env("NAMESPACE", ns);
            if kind == "REDIS" {
                command.args(["-h", "127.0.0.1", "-p", "6379"]);
            }
            for (role, password) in &users.passwords {
                command.env(format!("SCIMFLEET_{kind}_{}_PASSWORD", role.to_uppercase()), password);
            }
            let output = command.output().expect("bash runs");
            assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
        }
        users
    }

    fn amqp(&self, role: &str) -> String {
        format!("amqp://{}-{role}:{}@127.0.0.1:5672/%2f", self.ns, self.passwords[role])
    }

    fn redis(&self, role: &str) -> String {
        format!("redis://{}-{role}:{}@127.0.0.1:6379/", self.ns, self.passwords[role])
    }

    /// The configuration overrides that make a process use `role`'s users.
    fn env(&self, role: &str) -> Vec<(String, String)> {
        vec![
            ("SCIMFLEET_BROKER__URL".into(), self.amqp(role)),
            ("SCIMFLEET_REDIS__URL".into(), self.redis(role)),
            ("SCIMFLEET_BROKER__DECLARE_TOPOLOGY".into(), "false".into()),
        ]
    }
}

impl Drop for Users {
    fn drop(&mut self) {
        for role in ROLES {
            let user = format!("{}-{role}", self.ns);
            let url = format!("http://127.0.0.1:15672/api/users/{user}");
            let _ = Command::new("curl").args(["-fsS", "-u", "guest:guest", "-X", "DELETE", &url]).output();
            let _ = Command::new("redis-cli").args(["ACL", "DELUSER", &user]).output();
        }
    }
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, RandomState};
    let half = || u128::from(RandomState::new().hash_one(std::time::SystemTime::now()));
    (half() << 64) | half()
}

const SECRET: &str = "whsec_bGVhc3QtcHJpdmlsZWdlLXRlc3Qtc2VjcmV0";
const OKTA_SECRET: &str = "lp-okta-hook-secret";

/// `intake` on `port`, its ops listener on `ops`, one source signing with
/// the secret in `dir/secret`, and an Okta source reading users from `okta`.
fn policy(dir: &Path, port: u16, ops: u16, okta: &str) -> String {
    // A breaker that stays closed: the 503s are there to take the retry path.
    let worker = "[worker]\nretry_tiers_ms = [100, 300]\nmax_attempts = 20\nrequest_retries = 0\nbreaker_failures = 1000\n";
    let intake = format!(
        "[intake]\nlisten = \"127.0.0.1:{port}\"\n[[intake.sources]]\nid = \"hr\"\n\
         secrets = [{{ file = \"{}\" }}]\nrate_per_second = 100.0\nburst = 100\n",
        dir.join("secret").display()
    );
    let source = format!(
        "[[sources]]\nkind = \"okta\"\nid = \"okta\"\nsecrets = [{{ file = \"{}\" }}]\n\
         person_id = \"profile.employeeNumber\"\n[sources.api]\nbase_url = \"{okta}\"\ntoken = {{ file = \"{}\" }}\n",
        dir.join("okta-secret").display(),
        dir.join("okta-token").display()
    );
    format!("{worker}[telemetry]\nintake_listen = \"127.0.0.1:{ops}\"\n{intake}{}\n{source}", common::POLICY)
}

fn person(n: u32) -> Person<'static> {
    let id: &'static str = Box::leak(format!("E88{n:03}").into_boxed_str());
    Person { id, department: "Engineering", title: "Engineer", location: "Rome", groups: &["engineering"] }
}

/// `scimfleet <args> --config <fleet's>` as `role`, which must succeed.
fn scimfleet(fleet: &Fleet, users: &Users, role: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_scimfleet"))
        .args(args)
        .arg("--config")
        .arg(fleet.config_path())
        .envs(users.env(role))
        .output()
        .map(common::keep_log)
        .expect("scimfleet runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "scimfleet {args:?} as {role}: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn publish(fleet: &Fleet, users: &Users, events: &[Value], name: &str) {
    let file = fleet.config_path().with_file_name(format!("{name}.jsonl"));
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("events file");
    let out = scimfleet(fleet, users, "intake", &["publish", file.to_str().expect("utf-8 path")]);
    assert!(out.contains(&format!("{} confirmed", events.len())), "{out}");
}

async fn depth(fleet: &Fleet, queue: &str) -> u32 {
    let connection = scimfleet_runtime::broker::connect(&fleet.config.broker, "scimfleet-test").await;
    let connection = connection.expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let messages = inspect::depth(&channel, queue).await.expect("depth").messages;
    let _closed = connection.close(200, "inspected".into()).await;
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_run_with_the_shipped_least_privilege_users_and_nothing_more() {
    let dir = std::env::temp_dir().join(scimfleet_devkit::fleet::unique_namespace("sf-lp"));
    std::fs::create_dir_all(&dir).expect("secret directory");
    std::fs::write(dir.join("secret"), SECRET).expect("secret");
    std::fs::write(dir.join("okta-secret"), OKTA_SECRET).expect("okta secret");
    std::fs::write(dir.join("okta-token"), "lp-okta-token").expect("okta token");
    let okta = IdpStub::start("SSWS lp-okta-token", okta::routes()).await.expect("Okta stub");
    let (port, ops) = (common::rabbit::free_port(), common::rabbit::free_port());
    let fleet = Fleet::start_idle(&policy(&dir, port, ops, &okta.url)).await.expect("fleet starts");
    let users = Users::create(&fleet.config.namespace);
    let topology = Topology::of(&fleet.config);
    // Re-declared by the one user that may configure: proves it may.
    let out = scimfleet(&fleet, &users, "admin", &["topology", "declare"]);
    assert!(out.contains("topology of namespace"), "{out}");

    let log =
        |name: &str| test_log_dir().join(format!("least-privilege-{}-{name}.log", fleet.config.namespace));
    let config = fleet.config_path();
    let mut scheduler =
        FleetProcess::start_with_env("scheduler", &config, &log("scheduler"), &users.env("scheduler"));
    let mut worker = FleetProcess::start_with_env("worker", &config, &log("worker"), &users.env("worker"));
    let mut intake = FleetProcess::start_with_env("intake", &config, &log("intake"), &users.env("intake"));

    // A permanent 400: the worker dead-letters through the jobs DLX.
    let refused = person(0);
    fleet.server("git").set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 400)],
        ..Faults::default()
    });
    publish(&fleet, &users, &[refused.event("lp-refused", "person.hired", 1)], "refused");
    let git_dlq = topology.app_dlq(&AppId::parse("git").expect("app id"));
    wait::until("the refused job in the git DLQ", Duration::from_secs(60), async || {
        worker.assert_running();
        depth(&fleet, &git_dlq).await == 1
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    fleet.server("git").clear_faults();

    // Retries through the retry exchange, an invalid event through the
    // events DLX, a leaver read back and re-checked.
    fleet.server("chat").set_faults(Faults {
        errors: vec![ErrorRule::new(Route::Any, 0.3, 503)],
        seed: Some(7),
        ..Faults::default()
    });
    let people: Vec<_> = (1..=12).map(person).collect();
    let mut events: Vec<Value> =
        people.iter().zip(1..).map(|(p, n)| p.event(&format!("lp-{n}"), "person.hired", 1)).collect();
    let mut invalid = people[0].event("lp-invalid", "person.hired", 1);
    invalid["data"]["sequence"] = Value::from("not a number");
    publish(&fleet, &users, &events, "hires");
    publish(&fleet, &users, &[invalid], "invalid");
    let leaver = people[3].event("lp-leaver", "person.terminated", 2);
    publish(&fleet, &users, std::slice::from_ref(&leaver), "leaver");
    events.push(leaver);

    // The intake, with its user, takes a signed hire as far as the apps.
    let posted = person(20);
    let event = posted.event("lp-posted", "person.hired", 1);
    post_signed(&mut intake, port, ops, &event).await;
    events.push(event);

    // An Okta hook, kept on the source's queue, read back and provisioned.
    let hooked = "E88030";
    let user = okta::user("00u88030", "ACTIVE", "e88030@example.com", common::GIVEN_NAME, hooked, hooked);
    okta.directory.put_user("00u88030", user);
    let hook = common::sources::fixture("okta/user.lifecycle.activate.json")
        .replace("{{USER_ID}}", "00u88030")
        .replace("{{UUID}}", "lp-okta-1")
        .replace("{{PUBLISHED}}", "2026-12-05T09:00:00.000Z");
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/sources/okta"))
        .header("authorization", OKTA_SECRET)
        .body(hook)
        .send()
        .await
        .expect("the intake answers");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    wait::until("the Okta user provisioned", Duration::from_secs(60), async || {
        intake.assert_running();
        fleet.server("chat").user_by_external_id(hooked).and_then(|u| u.active) == Some(true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let bodies: Vec<Vec<u8>> = events.iter().map(|e| serde_json::to_vec(e).expect("json")).collect();
    let states = expect::final_states(bodies.iter().map(Vec::as_slice));
    wait::until("every app to hold the desired state", Duration::from_secs(120), async || {
        scheduler.assert_running();
        worker.assert_running();
        expect::mismatches(&fleet.config, &states, fleet.servers()).is_empty()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", expect::mismatches(&fleet.config, &states, fleet.servers())));
    let dead = fleet.take_dead_letters("events").await.expect("events DLQ");
    assert!(dead.len() == 1 && dead[0].0.reason == DeadLetterReason::InvalidEvent, "{dead:?}");
    let dead = fleet.take_dead_letters("git").await.expect("git DLQ");
    assert!(dead.len() == 1 && dead[0].0.reason == DeadLetterReason::PermanentError, "{dead:?}");

    refusals(&users, &topology).await;
    scheduler.kill();
    worker.kill();
    intake.kill();
    let _ = std::fs::remove_dir_all(&dir);
    fleet.stop().await.expect("clean stop");
}

/// POSTs `event` signed to the intake once it is ready; it must be accepted.
async fn post_signed(intake: &mut FleetProcess, port: u16, ops: u16, event: &Value) {
    wait::until("the intake to be ready", Duration::from_secs(60), async || {
        intake.assert_running();
        let ready = reqwest::get(format!("http://127.0.0.1:{ops}/readyz")).await;
        ready.is_ok_and(|r| r.status().is_success())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let body = event.to_string();
    let (id, timestamp) = ("lp-webhook-1", chrono::Utc::now().timestamp());
    let signature = Key::from_secret(SECRET).expect("secret").sign(id, timestamp, body.as_bytes());
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/events"))
        .header("content-type", "application/cloudevents+json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .expect("the intake answers");
    let status = response.status();
    assert_eq!(status, 202, "{}", response.text().await.unwrap_or_default());
}

/// What each role may not do, on the broker and in Redis.
async fn refusals(users: &Users, topology: &Topology) {
    let jobs_git = topology.job_queue(&AppId::parse("git").expect("app id"));
    assert!(
        publish_refused(&users.amqp("worker"), &topology.events_exchange()).await,
        "worker may publish events"
    );
    assert!(
        publish_refused(&users.amqp("intake"), &topology.jobs_exchange()).await,
        "intake may publish jobs"
    );
    assert!(consume_refused(&users.amqp("scheduler"), &jobs_git).await, "scheduler may consume jobs");
    assert!(
        consume_refused(&users.amqp("intake"), &topology.events_queue()).await,
        "intake may consume events"
    );
    for role in ["intake", "scheduler", "worker"] {
        assert!(
            declare_refused(&users.amqp(role), &format!("{}.x", users.ns)).await,
            "{role} may declare queues"
        );
    }

    let other = "some-other-namespace:registry";
    for role in ["scheduler", "worker", "admin"] {
        let url = users.redis(role);
        for command in [vec!["GET", other], vec!["KEYS", "*"], vec!["FLUSHALL"], vec!["CONFIG", "GET", "*"]] {
            assert!(redis_refused(&url, &command).await, "{role} may run {command:?}");
        }
        let own = format!("{}:lp-check", scimfleet_runtime::store::namespace_tag(&users.ns));
        assert!(!redis_refused(&url, &["SET", &own, "1"]).await, "{role} may not write its namespace");
    }
    let registry = format!("{}:registry:x", scimfleet_runtime::store::namespace_tag(&users.ns));
    assert!(redis_refused(&users.redis("intake"), &["GET", &registry]).await, "intake may read the registry");
    let _ = redis_refused(
        &users.redis("admin"),
        &["DEL", &format!("{}:lp-check", scimfleet_runtime::store::namespace_tag(&users.ns))],
    )
    .await;
}

async fn channel(url: &str) -> lapin::Channel {
    let connection =
        Connection::connect(url, ConnectionProperties::default()).await.expect("the user logs in");
    connection.create_channel().await.expect("channel")
}

async fn publish_refused(url: &str, exchange: &str) -> bool {
    let channel = channel(url).await;
    channel.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let published = channel
        .basic_publish(
            exchange.into(),
            "git.0".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await;
    // ACCESS_REFUSED closes the channel: the confirm never comes as an ack.
    match published {
        Err(_) => true,
        Ok(confirm) => matches!(tokio::time::timeout(Duration::from_secs(10), confirm).await, Ok(Err(_))),
    }
}

async fn consume_refused(url: &str, queue: &str) -> bool {
    let channel = channel(url).await;
    let options = BasicConsumeOptions::default();
    channel.basic_consume(queue.into(), "lp".into(), options, FieldTable::default()).await.is_err()
}

async fn declare_refused(url: &str, queue: &str) -> bool {
    let channel = channel(url).await;
    let options = QueueDeclareOptions { auto_delete: true, ..QueueDeclareOptions::default() };
    channel.queue_declare(queue.into(), options, FieldTable::default()).await.is_err()
}

async fn redis_refused(url: &str, command: &[&str]) -> bool {
    let client = redis::Client::open(url).expect("redis url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("the user logs in");
    let mut cmd = redis::cmd(command[0]);
    for arg in &command[1..] {
        cmd.arg(*arg);
    }
    match cmd.query_async::<redis::Value>(&mut connection).await {
        Ok(_) => false,
        Err(e) => e.to_string().contains("NOPERM") || e.code() == Some("NOPERM"),
    }
}
