//! Log hygiene: no log line of any test holds a bearer token, an
//! e-mail address, the HR id or the name of a test person.
//!
//! `a_noisy_run_logs_no_token_and_no_personal_data` makes one process log all it can:
//! every crate at `trace`, dependencies included (an HTTP or AMQP library that
//! printed headers or bodies would be caught), through a workload that takes
//! every failure path (retries, a rotated token, dead letters, a failed
//! verification, an open breaker), then greps its own log.
//! `suite_logs_hold_no_token_and_no_personal_data` greps the logs every test process
//! of the run left in [`test_log_dir`]; `make test` runs it last, on its own.

use crate::common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Person;
use scimfleet_devkit::fleet::{Fleet, test_log_dir};
use scimfleet_devkit::scim_server::{ErrorRule, Faults, Resource, RetryAfter, Route};
use scimfleet_devkit::wait;
use scimfleet_runtime::config::LogFormat;
use scimfleet_runtime::telemetry::{self, TelemetryOptions, Traces};
use scimfleet_schemas::DeadLetterReason;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(60);

/// Offences reported in full; the rest are only counted.
const REPORTED: usize = 5;

/// Every crate at `trace`, but one: lapin at `trace` prints each AMQP frame
/// it handles, message bodies included (`Body(1, [123, 34, …])`, the bytes
/// of the event with its e-mail addresses). It is a dependency's debugging
/// aid, not something a service runs with (`SERVICE_LOG_LEVELS` has
/// `lapin=warn`), so it is capped at `debug` here.
const EVERYTHING: &str = "trace,lapin=debug";

/// Quick retries and a breaker that opens after three failures, so the
/// workload's faults take every path within seconds; a generous budget, so
/// nothing is dead-lettered that the workload does not mean to be.
fn policy() -> String {
    let worker = "[worker]\nretry_tiers_ms = [50, 200, 500]\nmax_attempts = 50\nrequest_retries = 1\n\
                  breaker_failures = 3\nbreaker_cooldown_ms = 300\n";
    format!("{worker}[verification]\nrecheck = []\nmax_remediations = 1\n{}", common::POLICY)
}

/// Test person `E97` + `n` (three digits), whose id and e-mail address the
/// log must not hold. The id is leaked: a few bytes, for the test's run.
fn person(n: u32, department: &'static str, location: &'static str) -> Person<'static> {
    let id: &'static str = Box::leak(format!("E97{n:03}").into_boxed_str());
    let groups: &'static [&'static str] = if department == "Engineering" { &["engineering"] } else { &[] };
    Person { id, department, title: "Clerk", location, groups }
}

/// Event ids that hold no person id (the harness's `hire-E…` ones would).
fn event(p: &Person<'_>, n: u32, kind: &str, sequence: u64) -> Value {
    p.event(&format!("lh-{n}"), kind, sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_run_logs_no_token_and_no_personal_data() {
    std::fs::create_dir_all(test_log_dir()).expect("log dir");
    let log = test_log_dir().join(format!("log-hygiene-{}.jsonl", std::process::id()));
    if let Ok(levels) = std::env::var("RUST_LOG") {
        println!("note: RUST_LOG={levels} replaces the `{EVERYTHING}` this test asks for");
    }
    // Installed before any fleet, which then keeps it (one subscriber per process).
    let telemetry = telemetry::init(TelemetryOptions {
        service: "scimfleet-test",
        format: LogFormat::Json,
        default_levels: EVERYTHING,
        traces: Traces::Off,
        log_file: Some(&log),
    })
    .expect("telemetry");
    let mut fleet = Fleet::start(&policy()).await.expect("fleet starts");
    let token_file = fleet.config_path().with_file_name("token");
    let token = std::fs::read_to_string(&token_file).expect("the fleet's token");
    // Another token of the same form, which the apps do not accept.
    let number: u64 = token.trim().trim_start_matches("tok-").parse().expect("tok-<digits>");
    let rotated = format!("tok-{}", number.wrapping_add(1));
    let mut people = Vec::new();

    people.extend(joiners_movers_leavers_under_faults(&mut fleet).await);
    people.extend(invalid_events(&mut fleet).await);
    people.extend(a_rotated_token(&mut fleet, &token_file, &token, &rotated).await);
    people.extend(a_permanent_400(&mut fleet).await);
    people.extend(an_ignored_deactivation(&mut fleet).await);
    people.extend(a_dead_app(&mut fleet).await);
    people.extend(a_returned_message(&fleet).await);

    fleet.stop().await.expect("clean stop");
    telemetry.shutdown().await;
    let mut words: Vec<String> = vec![token.trim().to_owned(), rotated];
    words.extend(people.iter().map(|p| p.id.to_owned()));
    words.extend(people.iter().map(Person::user_name));
    words.push(common::GIVEN_NAME.to_owned());
    words.extend(words.iter().map(|w| as_bytes(w)).collect::<Vec<_>>());
    let scan = scan_file(&log, &words);
    println!("{} log lines checked in {}", scan.lines, log.display());
    assert!(scan.lines > 0, "nothing was logged to {}", log.display());
    for target in ["\"target\":\"scimfleet_scheduler", "\"target\":\"scimfleet_worker"] {
        assert!(scan.targets.iter().any(|t| t == target), "no line with {target} in {}", log.display());
    }
    assert_eq!(scan.offences, 0, "{}", scan.report());
}

#[test]
fn suite_logs_hold_no_token_and_no_personal_data() {
    let dir = test_log_dir();
    let must_follow = "it checks the logs of the other tests, so it must run after the suite \
                       (`make test` runs it last)";
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no test log directory {} ({e}): {must_follow}", dir.display()));
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.retain(|path| path.is_file());
    files.sort();
    let mut total = Scan::default();
    for file in &files {
        total.add(scan_file(file, &[]));
    }
    println!("{} log lines checked in {} files of {}", total.lines, files.len(), dir.display());
    assert!(total.lines > 0, "{} holds no log line: {must_follow}", dir.display());
    assert_eq!(total.offences, 0, "{}", total.report());
}

/// Joiners, movers and leavers while every app fails some requests: 5xx,
/// 429 with and without `Retry-After`, dropped connections, latency.
async fn joiners_movers_leavers_under_faults(fleet: &mut Fleet) -> Vec<Person<'static>> {
    let flaky = |seed| Faults {
        errors: vec![
            ErrorRule::new(Route::Any, 0.1, 429).with_retry_after(RetryAfter::Seconds(1)),
            ErrorRule::new(Route::Any, 0.1, 429),
            ErrorRule::new(Route::Any, 0.1, 500),
            ErrorRule::new(Route::Any, 0.1, 503),
        ],
        latency: Some((Duration::ZERO, Duration::from_millis(20))),
        drop_connection: 0.05,
        seed: Some(seed),
        ..Faults::default()
    };
    for (seed, app) in ["git", "chat", "crm"].into_iter().enumerate() {
        fleet.server(app).set_faults(flaky(seed as u64));
    }
    let people = vec![
        person(101, "Engineering", "London"),
        person(102, "Engineering", "Rome"),
        person(103, "Sales", "Oslo"),
        person(104, "Sales", "Rome"),
        person(105, "Ops", "Rome"),
        person(106, "Engineering", "Oslo"),
    ];
    let hires: Vec<Value> = people.iter().zip(1..).map(|(p, n)| event(p, n, "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("joiners settled");
    let moved = Person { department: "Sales", ..person(102, "", "Rome") };
    let relocated = Person { location: "Oslo", ..person(101, "Engineering", "") };
    let changes = vec![
        event(&moved, 11, "person.updated", 2),
        event(&relocated, 12, "person.updated", 2),
        event(&people[5], 13, "person.terminated", 2),
        event(&people[3], 14, "person.terminated", 2),
        // A duplicate: dropped as not newer.
        event(&people[3], 15, "person.terminated", 2),
    ];
    fleet.publish_json(&changes).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("movers and leavers settled");
    for server in fleet.servers().values() {
        server.clear_faults();
    }
    assert!(fleet.server("crm").user_by_external_id("E97102").is_some(), "the mover reached crm");
    people
}

/// A malformed event and invalid ones whose bad field holds an e-mail
/// address: each is dead-lettered, and neither the address nor the body
/// may reach a log line.
async fn invalid_events(fleet: &mut Fleet) -> Vec<Person<'static>> {
    let people: Vec<_> = (190..197).map(|n| person(n, "Ops", "Rome")).collect();
    let mut events = Vec::new();
    // The field each event gets wrong, by holding the person's address.
    let edits: [fn(&mut Value, Value); 7] = [
        |e, v| e["type"] = v,
        |e, v| e["data"]["sequence"] = v,
        |e, v| e["data"]["status"] = v,
        |e, v| e["time"] = v,
        |e, v| e["subject"] = v,
        // The address as an attribute's name, and as an unknown field.
        |e, v| e["data"]["attributes"] = json!({ v.as_str().unwrap_or_default(): 7 }),
        |e, v| e["data"][v.as_str().unwrap_or_default()] = json!(true),
    ];
    for (edit, (p, n)) in edits.iter().zip(people.iter().zip(20..)) {
        let mut e = event(p, n, "person.hired", 1);
        edit(&mut e, json!(p.user_name()));
        events.push(serde_json::to_vec(&e).expect("json"));
    }
    let truncated = serde_json::to_vec(&event(&people[0], 29, "person.hired", 1)).expect("json");
    events.push(truncated[..truncated.len() / 2].to_vec());
    fleet.publish(&events).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    let dead = fleet.take_dead_letters("events").await.expect("events DLQ");
    assert_eq!(dead.len(), events.len(), "{dead:?}");
    assert!(dead.iter().all(|(d, _)| d.reason == DeadLetterReason::InvalidEvent), "{dead:?}");
    people
}

/// The token file is rotated and the app refuses every request: one 401
/// (the watched file was already read; a refresh finds nothing newer), so a
/// permanent failure; then, with the file restored, the next request
/// carries the old token again and the job goes through with no 401.
async fn a_rotated_token(
    fleet: &mut Fleet,
    token_file: &Path,
    token: &str,
    rotated: &str,
) -> Vec<Person<'static>> {
    let (refused, accepted) = (person(120, "Ops", "Rome"), person(121, "Ops", "Rome"));
    std::fs::write(token_file, rotated).expect("token rotated");
    fleet
        .server("chat")
        .set_faults(Faults { errors: vec![ErrorRule::new(Route::Any, 1.0, 401)], ..Faults::default() });
    fleet.publish_json(&[event(&refused, 30, "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet.server("chat").clear_faults();
    let dead = fleet.take_dead_letters("chat").await.expect("chat DLQ");
    assert!(dead.len() == 1 && dead[0].0.last_status == Some(401), "{dead:?}");
    std::fs::write(token_file, token).expect("token restored");
    fleet.publish_json(&[event(&accepted, 31, "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert!(fleet.server("chat").user_by_external_id(accepted.id).is_some(), "accepted");
    let refusals = fleet.server("chat").requests().iter().filter(|r| r.status == 401).count();
    assert_eq!(refusals, 1, "the injected one; the restored file is read before any 401");
    vec![refused, accepted]
}

/// An app that refuses a create with 400: dead-lettered at once.
async fn a_permanent_400(fleet: &mut Fleet) -> Vec<Person<'static>> {
    let refused = person(130, "Engineering", "Rome");
    fleet.server("git").set_faults(Faults {
        errors: vec![ErrorRule::new(Route::MethodOn("POST", Resource::Users), 1.0, 400)],
        ..Faults::default()
    });
    fleet.publish_json(&[event(&refused, 40, "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet.server("git").clear_faults();
    let dead = fleet.take_dead_letters("git").await.expect("git DLQ");
    assert!(dead.len() == 1 && dead[0].0.reason == DeadLetterReason::PermanentError, "{dead:?}");
    vec![refused]
}

/// A deactivation the app acknowledges and ignores: the read-back fails,
/// the remediation too, and the case is dead-lettered.
async fn an_ignored_deactivation(fleet: &mut Fleet) -> Vec<Person<'static>> {
    let leaver = person(150, "Ops", "Rome");
    fleet.publish_json(&[event(&leaver, 50, "person.hired", 1)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("hired");
    let ignore = vec![Route::MethodOn("PATCH", Resource::Users)];
    fleet.server("chat").set_faults(Faults { ignore, ..Faults::default() });
    fleet.publish_json(&[event(&leaver, 51, "person.terminated", 2)]).await.expect("published");
    fleet.wait_settled(SETTLE).await.expect("settled");
    fleet.server("chat").clear_faults();
    let dead = fleet.take_dead_letters("chat").await.expect("chat DLQ");
    assert!(dead.len() == 1 && dead[0].0.reason == DeadLetterReason::VerificationFailed, "{dead:?}");
    vec![leaver]
}

/// An app that refuses connections until its breaker opens, then comes back.
async fn a_dead_app(fleet: &mut Fleet) -> Vec<Person<'static>> {
    let people: Vec<_> = (160..166).map(|n| person(n, "Sales", "Oslo")).collect();
    let addr = fleet.stop_server("crm").await.expect("crm down");
    let parked_before = fleet.worker().deferred;
    let hires: Vec<Value> = people.iter().zip(60..).map(|(p, n)| event(p, n, "person.hired", 1)).collect();
    fleet.publish_json(&hires).await.expect("published");
    wait::until("the breaker to open", SETTLE, async || {
        fleet.worker().deferred >= parked_before + 2 * people.len() as u64
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", fleet.worker()));
    fleet.restart_server("crm", addr).await.expect("crm back");
    fleet.wait_settled(SETTLE).await.expect("settled");
    assert_eq!(fleet.server("crm").users().len(), people.len());
    people
}

/// What a scan found.
#[derive(Default)]
struct Scan {
    lines: usize,
    /// The distinct `"target":"crate` prefixes seen.
    targets: Vec<String>,
    /// Lines that broke a rule.
    offences: usize,
    /// `file:line: what, near "…"` of the first few of them.
    first: Vec<String>,
}

impl Scan {
    fn offend(&mut self, offence: impl FnOnce() -> String) {
        self.offences += 1;
        if self.first.len() < REPORTED {
            self.first.push(offence());
        }
    }

    /// Adds a later file's findings.
    fn add(&mut self, other: Scan) {
        self.lines += other.lines;
        self.offences += other.offences;
        self.first.extend(other.first);
        self.first.truncate(REPORTED);
    }

    fn report(&self) -> String {
        let shown = self.first.join("\n  ");
        format!("{} log line(s) leak a secret or personal data; the first:\n  {shown}", self.offences)
    }
}

/// Checks every line of `file` against the suite's rules and for `words`
/// (this test's tokens, e-mail addresses and person ids).
fn scan_file(file: &Path, words: &[String]) -> Scan {
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("log file readable"));
    let mut scan = Scan::default();
    for (number, line) in reader.split(b'\n').enumerate() {
        let line = String::from_utf8_lossy(&line.expect("log file readable")).into_owned();
        scan.lines += 1;
        if let Some(target) = target_prefix(&line)
            && !scan.targets.iter().any(|t| t == target)
        {
            scan.targets.push(target.to_owned());
        }
        let found =
            leak(&line).or_else(|| words.iter().find_map(|w| word_at(&line, w).map(|at| (w.as_str(), at))));
        if let Some((what, at)) = found {
            scan.offend(|| format!("{}:{}: {what}, near {}", file.display(), number + 1, excerpt(&line, at)));
        }
    }
    scan
}

/// The suite's rules: no HR id, no test person's name, no `Bearer `, no
/// `tok-<digits>`, no `@example.com`; the last three also as the `Debug` of
/// bytes (`[64, 101, …]`), which is how a library printing a buffer shows them.
fn leak(line: &str) -> Option<(&'static str, usize)> {
    let lower = line.to_ascii_lowercase();
    let followed_by = |text: &str, pattern: &str, next: &[String]| {
        let mut found = text.match_indices(pattern).map(|(at, _)| at);
        found.find(|&at| next.iter().any(|n| text[at + pattern.len()..].starts_with(n)))
    };
    let digits: Vec<String> = ('0'..='9').map(String::from).collect();
    let digit_bytes: Vec<String> = (b'0'..=b'9').map(|b| format!(", {b}")).collect();
    let rules = [
        ("an HR id `E<digits>`", hr_id_at(line)),
        ("a test person's name", names().iter().find_map(|name| exact_word_at(line, name))),
        ("`Bearer `", line.find("Bearer ")),
        ("`Bearer ` as bytes", line.find(&as_bytes("Bearer "))),
        ("a token `tok-<digits>`", followed_by(&lower, "tok-", &digits)),
        ("a token `tok-<digits>` as bytes", followed_by(line, &as_bytes("tok-"), &digit_bytes)),
        ("an `@example.com` address", lower.find("@example.com")),
        ("an `@example.com` address as bytes", line.find(&as_bytes("@example.com"))),
    ];
    rules.into_iter().find_map(|(what, at)| Some((what, at?)))
}

/// A mandatory publish no queue takes: the broker returns the message,
/// body and all, and the AMQP client would log it at `warn`.
async fn a_returned_message(fleet: &Fleet) -> Vec<Person<'static>> {
    use scimfleet_runtime::broker::{self, Outgoing, Publisher, Topology, persistent};
    let returned = person(150, "Sales", "Oslo");
    let body = serde_json::to_vec(&event(&returned, 50, "person.hired", 1)).expect("json");
    let connection = broker::connect(&fleet.config.broker, "scimfleet-test").await.expect("broker");
    let publisher = Publisher::open(&connection).await.expect("publisher");
    let exchange = Topology::of(&fleet.config).jobs_exchange();
    let outgoing = Outgoing {
        exchange: &exchange,
        routing_key: "no-such-app.0",
        body: &body,
        properties: persistent("application/json"),
        mandatory: true,
    };
    assert!(publisher.publish(outgoing).await.is_err(), "an unroutable mandatory publish is an error");
    let _closed = connection.close(200, "returned".into()).await;
    vec![returned]
}

/// Where an HR id (`E` and three or more digits, the form of every test
/// person's id) occurs outside the event ids the line names. Tests choose
/// event ids holding HR ids (`hire-E1001`); an event id is the source's
/// correlation key, which logs carry for `scimfleet trace`, so only those
/// are masked.
fn hr_id_at(line: &str) -> Option<usize> {
    let mut masked = line.to_owned();
    for id in event_ids(line) {
        masked = masked.replace(&id, &"_".repeat(id.len()));
    }
    let bytes = masked.as_bytes();
    let alnum = |at: usize| bytes.get(at).is_some_and(u8::is_ascii_alphanumeric);
    (0..bytes.len()).find(|&at| {
        let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        bytes[at] == b'E' && (at == 0 || !alnum(at - 1)) && digits >= 3 && !alnum(at + 1 + digits)
    })
}

/// The event ids a log line names, as a JSON field or a `key=value` pair.
fn event_ids(line: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for marker in ["event_id\":\"", "event_id=", "event.id\":\""] {
        for (at, _) in line.match_indices(marker) {
            let rest = &line[at + marker.len()..];
            let end = rest.find(['"', ' ', ',', '}']).unwrap_or(rest.len());
            if end > 0 {
                ids.push(rest[..end].to_owned());
            }
        }
    }
    ids
}

/// The given and family names of the demo's people
/// (`deploy/examples/events.jsonl`) and the tests' given name.
fn names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/events.jsonl");
        let text = std::fs::read_to_string(&path).expect("the example events");
        let mut names = vec![common::GIVEN_NAME.to_owned()];
        for line in text.lines().filter(|l| l.starts_with('{')) {
            let event: Value = serde_json::from_str(line).expect("an example event");
            for key in ["givenName", "familyName"] {
                names.extend(event["data"]["attributes"][key].as_str().map(str::to_owned));
            }
        }
        names.sort();
        names.dedup();
        assert!(names.len() > 4, "the example events name people");
        names
    })
}

/// Where `word` occurs in `line`, case and all, as a whole word: names are
/// capitalised, and a lower-case `grace` is no one's name.
fn exact_word_at(line: &str, word: &str) -> Option<usize> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    line.match_indices(word)
        .map(|(at, _)| at)
        .find(|&at| !alnum(line[..at].chars().next_back()) && !alnum(line[at + word.len()..].chars().next()))
}

/// `text` as the `Debug` of its bytes, without brackets: `"ab"` is `"97, 98"`.
fn as_bytes(text: &str) -> String {
    text.bytes().map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
}

/// Where `word` occurs in `line` (case-insensitively) as a whole word: not
/// inside a longer run of letters and digits.
fn word_at(line: &str, word: &str) -> Option<usize> {
    let (line, word) = (line.to_ascii_lowercase(), word.to_ascii_lowercase());
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    line.match_indices(&word)
        .map(|(at, _)| at)
        .find(|&at| !alnum(line[..at].chars().next_back()) && !alnum(line[at + word.len()..].chars().next()))
}

/// `"target":"crate` of a JSON log line.
fn target_prefix(line: &str) -> Option<&str> {
    let start = line.find("\"target\":\"")?;
    let end = line[start + 10..].find([':', '"']).map(|e| start + 10 + e)?;
    Some(&line[start..end])
}

/// Up to 40 characters either side of byte `at`, quoted: enough to find the
/// culprit, never a whole (maybe huge) line.
fn excerpt(line: &str, at: usize) -> String {
    let before: String = line[..at].chars().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    let after: String = line[at..].chars().take(40).collect();
    format!("{:?}", format!("{before}{after}"))
}
