//! Limit (a): the HTTP stack alone. A bare `reqwest` loop replays the
//! fleet's own request mix (measured in the mixed workload: how many
//! look-ups, creates, user PATCHes, group reads and group PATCHes per person
//! created) at the fleet's concurrency per app, against fresh test servers
//! in this process with the same team groups. Per person: the look-ups,
//! the create, then the other calls in the same proportions (spread over
//! people so the totals match). No RabbitMQ, no Redis, no policy: what is
//! left is the client, loopback TCP and the test server, so the fleet can at
//! best approach this rate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use scimfleet_devkit::scim_server::{Faults, ScimServer, ScimServerHandle};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::measure::{Call, calls_json, round};

const SCIM_JSON: &str = "application/scim+json";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// How often the servers' request logs are emptied (the loop needs none of
/// them, and they would otherwise hold every body in memory).
const CLEAR_LOGS_EVERY: Duration = Duration::from_millis(500);

/// The HTTP limit.
#[derive(Debug)]
pub struct HttpLimit {
    /// Requests sent (all answered).
    pub requests: usize,
    /// Of each kind.
    pub calls: BTreeMap<Call, usize>,
    /// Answers that were not 2xx.
    pub errors: usize,
    /// Concurrent requests per app.
    pub concurrency: u16,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
}

impl HttpLimit {
    /// Requests per second.
    pub fn ops_per_s(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "requests": self.requests, "error_answers": self.errors, "scim_calls": calls_json(&self.calls),
            "concurrency_per_app": self.concurrency,
            "seconds": round(self.seconds * 1000.0) / 1000.0, "ops_per_s": round(self.ops_per_s()),
        })
    }
}

/// One app's test server and a client for it.
#[derive(Clone)]
struct Target {
    base: String,
    client: reqwest::Client,
    group_ids: Vec<String>,
    next: Arc<AtomicUsize>,
    mix: Arc<Vec<(Call, f64)>>,
}

/// Runs `people` people through each of `apps` fresh servers with
/// `concurrency` requests in flight per app; `mix` is, per call, how many
/// the fleet made per person created; `latency_ms` and `teams` as the fleet had.
pub async fn run(
    apps: usize,
    people: usize,
    mix: Vec<(Call, f64)>,
    concurrency: u16,
    latency_ms: u64,
    teams: usize,
) -> anyhow::Result<HttpLimit> {
    let mix = Arc::new(mix);
    let token = format!("bench-{}", std::process::id());
    let mut servers = Vec::new();
    let mut targets = Vec::new();
    for _ in 0..apps {
        let server = ScimServer::start(token.clone()).await?;
        if latency_ms > 0 {
            let latency = Duration::from_millis(latency_ms);
            server.set_faults(Faults { latency: Some((latency, latency)), ..Faults::default() });
        }
        targets.push(target(&server, &token, concurrency, teams, mix.clone()).await?);
        servers.push(server);
    }
    let clearing = tokio::spawn(clear_logs(servers.clone()));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for target in &targets {
        for _ in 0..concurrency {
            tasks.spawn(loop_people(target.clone(), people));
        }
    }
    let (mut calls, mut errors) = (BTreeMap::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        let (sent, failed) = joined??;
        for (call, n) in sent {
            *calls.entry(call).or_default() += n;
        }
        errors += failed;
    }
    let requests = calls.values().sum();
    let seconds = started.elapsed().as_secs_f64();
    clearing.abort();
    for server in servers {
        server.shutdown().await;
    }
    Ok(HttpLimit { requests, calls, errors, concurrency, seconds })
}

async fn target(
    server: &ScimServerHandle,
    token: &str,
    concurrency: u16,
    teams: usize,
    mix: Arc<Vec<(Call, f64)>>,
) -> anyhow::Result<Target> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}"))?);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    // Configured like the worker's client: one pool per app, keep-alive.
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(usize::from(concurrency))
        .build()?;
    let base = server.base_url();
    let mut group_ids = Vec::with_capacity(teams);
    for team in 0..teams.max(1) {
        let group = json!({ "schemas": [GROUP_SCHEMA], "displayName": format!("team-{team}") });
        let created: Value = client
            .post(format!("{base}/Groups"))
            .json(&group)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = created["id"].as_str().ok_or_else(|| anyhow::anyhow!("group created without id"))?;
        group_ids.push(id.to_owned());
    }
    Ok(Target { base, client, group_ids, next: Arc::default(), mix })
}

/// Takes people from the target's counter until `people` are done; returns
/// (requests sent by kind, non-2xx answers).
async fn loop_people(target: Target, people: usize) -> anyhow::Result<(BTreeMap<Call, usize>, usize)> {
    let (mut sent, mut errors) = (BTreeMap::new(), 0);
    loop {
        let n = target.next.fetch_add(1, Ordering::Relaxed);
        if n >= people {
            return Ok((sent, errors));
        }
        errors += one_person(&target, n, &mut sent).await?;
    }
}

/// How many `call`s person `n` makes at `rate` per person: spread so that
/// people `0..N` make `floor(N × rate)` in total.
fn share(n: usize, rate: f64) -> usize {
    let upto = |k: usize| (k as f64 * rate).floor() as usize;
    upto(n + 1).saturating_sub(upto(n))
}

/// Person `n`'s requests; returns how many were not 2xx.
async fn one_person(t: &Target, n: usize, sent: &mut BTreeMap<Call, usize>) -> anyhow::Result<usize> {
    let person = format!("H{n}");
    let user_name = format!("h{n}@example.com");
    let times = |call: Call| t.mix.iter().find(|(c, _)| *c == call).map_or(0, |(_, rate)| share(n, *rate));
    let group_id = &t.group_ids[n % t.group_ids.len()];
    let group_name = format!("team-{}", n % t.group_ids.len());
    let mut errors = 0;
    let mut send = async |call: Call, request: reqwest::RequestBuilder| -> anyhow::Result<Value> {
        let answer = request.send().await?;
        *sent.entry(call).or_default() += 1;
        errors += usize::from(!answer.status().is_success());
        let body = answer.bytes().await?;
        Ok(serde_json::from_slice(&body).unwrap_or(Value::Null))
    };
    // Filters percent-encoded by hand (the values are alphanumeric).
    let find_user = format!("{}/Users?filter=externalId%20eq%20%22{person}%22", t.base);
    for _ in 0..times(Call::FindUser) {
        send(Call::FindUser, t.client.get(&find_user)).await?;
    }
    let user = json!({
        "schemas": [USER_SCHEMA], "userName": user_name, "externalId": person, "active": true,
        "name": { "givenName": "Bench", "familyName": person }, "title": "Clerk",
        "emails": [{ "value": user_name, "primary": true }],
    });
    let created = send(Call::CreateUser, t.client.post(format!("{}/Users", t.base)).json(&user)).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let user_url = format!("{}/Users/{id}", t.base);
    for _ in 0..times(Call::GetUser) {
        send(Call::GetUser, t.client.get(&user_url)).await?;
    }
    let find_group = format!("{}/Groups?filter=displayName%20eq%20%22{group_name}%22", t.base);
    for _ in 0..times(Call::FindGroup) {
        send(Call::FindGroup, t.client.get(&find_group)).await?;
    }
    let group_url = format!("{}/Groups/{group_id}", t.base);
    for _ in 0..times(Call::GetGroup) {
        send(Call::GetGroup, t.client.get(&group_url)).await?;
    }
    let patch = |ops: Value| json!({ "schemas": [PATCH_SCHEMA], "Operations": ops });
    for i in 0..times(Call::PatchUser) {
        let title = if i % 2 == 0 { "Lead" } else { "Clerk" };
        let body = patch(json!([{ "op": "replace", "path": "title", "value": title }]));
        send(Call::PatchUser, t.client.patch(&user_url).json(&body)).await?;
    }
    // Joins and leaves alternate, so the groups stay the size the fleet's are.
    for i in 0..times(Call::PatchGroup) {
        let body = if i % 2 == 0 {
            patch(json!([{ "op": "add", "path": "members", "value": [{ "value": id }] }]))
        } else {
            patch(json!([{ "op": "remove", "path": format!("members[value eq \"{id}\"]") }]))
        };
        send(Call::PatchGroup, t.client.patch(&group_url).json(&body)).await?;
    }
    for _ in 0..times(Call::DeleteUser) {
        send(Call::DeleteUser, t.client.delete(&user_url)).await?;
    }
    Ok(errors)
}

async fn clear_logs(servers: Vec<ScimServerHandle>) {
    loop {
        tokio::time::sleep(CLEAR_LOGS_EVERY).await;
        for server in &servers {
            server.clear_requests();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_rate() {
        for rate in [0.0, 0.25, 1.0, 1.7, 7.33] {
            let total: usize = (0..1_000).map(|n| share(n, rate)).sum();
            assert_eq!(total, (1_000.0 * rate).floor() as usize, "rate {rate}");
        }
    }
}
