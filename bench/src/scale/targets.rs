//! `scimfleet-bench targets`: the scale run's SCIM apps in a process of
//! their own, so the fleet processes' memory is measured alone.
//!
//! Protocol with the parent, one JSON object per line:
//! - once every app holds its seeded people, one line to stdout:
//!   `{"urls": ["http://127.0.0.1:PORT/scim/v2", ...], "seed_seconds": S}`;
//! - each `report` line on stdin is answered with the tallies (see `report`) as JSON;
//! - end of stdin stops the servers and the process.
//!
//! The request logs are tallied every second and emptied, so millions of
//! requests cost a few counters, not a record each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use scimfleet_devkit::scim_server::{ScimServer, ScimServerHandle};
use scimfleet_schemas::scim::ScimUser;
use serde_json::{Value, json};
use std::io::{BufRead, Write};

/// How often the request logs are emptied into the tallies.
const TALLY_EVERY: Duration = Duration::from_secs(1);

/// Requests answered per app, by `METHOD Resource status`.
type Tally = BTreeMap<String, u64>;

/// The person id of the `n`th seeded person (`S0`, `S1`, ...).
pub fn person(n: usize) -> String {
    format!("S{n}")
}

/// The login of person `id`, as the bench's events give it.
fn user_name(id: &str) -> String {
    format!("{}@example.com", id.to_lowercase())
}

/// Starts `apps` servers holding `people` active accounts each, then follows
/// the protocol above until stdin closes.
pub async fn serve(apps: usize, people: usize, token: String) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut servers = Vec::with_capacity(apps);
    for _ in 0..apps {
        let server = ScimServer::start(token.clone()).await.context("starting a SCIM test server")?;
        seed(&server, people)?;
        servers.push(server);
    }
    let urls: Vec<String> = servers.iter().map(ScimServerHandle::base_url).collect();
    let ready = json!({ "urls": urls, "seed_seconds": started.elapsed().as_secs_f64() });
    say(&ready)?;

    let tallies: Arc<Mutex<Vec<Tally>>> = Arc::new(Mutex::new(vec![Tally::new(); apps]));
    let tallying = tokio::spawn(tally_forever(servers.clone(), tallies.clone()));
    // Stdin is read on a thread of its own (blocking reads), lines passed on.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    while let Some(line) = lines.recv().await {
        if line.trim() == "report" {
            tally_once(&servers, &tallies);
            say(&report(&servers, &tallies))?;
        }
    }
    tallying.abort();
    for server in servers {
        server.shutdown().await;
    }
    Ok(())
}

/// Writes `value` as one line to stdout, flushed.
fn say(value: &Value) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}")?;
    stdout.flush()?;
    Ok(())
}

/// Inserts `people` active accounts as an administrator would (no HTTP).
fn seed(server: &ScimServerHandle, people: usize) -> anyhow::Result<()> {
    for n in 0..people {
        let id = person(n);
        let user: ScimUser = serde_json::from_value(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": user_name(&id), "externalId": id, "active": true,
            "displayName": format!("Bench {id}"),
        }))
        .context("building a seeded user")?;
        server.insert_user(user);
    }
    Ok(())
}

async fn tally_forever(servers: Vec<ScimServerHandle>, tallies: Arc<Mutex<Vec<Tally>>>) {
    loop {
        tokio::time::sleep(TALLY_EVERY).await;
        tally_once(&servers, &tallies);
    }
}

fn tally_once(servers: &[ScimServerHandle], tallies: &Mutex<Vec<Tally>>) {
    let mut tallies = tallies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (server, tally) in servers.iter().zip(tallies.iter_mut()) {
        for request in server.take_requests() {
            let key = format!("{} {:?} {}", request.method, request.resource, request.status);
            *tally.entry(key).or_default() += 1;
        }
    }
}

/// What every app holds and was asked, app by app in the order of the URLs.
fn report(servers: &[ScimServerHandle], tallies: &Mutex<Vec<Tally>>) -> Value {
    let tallies = tallies.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let apps: Vec<Value> = servers
        .iter()
        .zip(tallies.iter())
        .map(|(server, tally)| {
            let users = server.users();
            let active = users.iter().filter(|u| u.active != Some(false)).count();
            json!({ "users": users.len(), "active": active, "requests": tally })
        })
        .collect();
    json!({ "apps": apps })
}
