//! `deploy/rabbitmq/definitions.json` cannot drift from the code: it is
//! generated from `Topology` (`scimfleet topology definitions`) and checked
//! here against a fresh generation; a real broker holds exactly what it
//! lists, arguments included, after `scimfleet topology declare`, and after
//! importing it; and its users get the permissions
//! `deploy/rabbitmq/setup-users.sh` grants.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use scimfleet_devkit::fleet::unique_namespace;
use scimfleet_runtime::Config;
use scimfleet_runtime::broker::{definitions, role_users};
use serde_json::{Value, json};

const COMMITTED: &str = "deploy/rabbitmq/definitions.json";
const EXAMPLE: &str = "deploy/examples/scimfleet.toml";
const REGENERATE: &str = "cargo run -q -- topology definitions --config deploy/examples/scimfleet.toml \
                          > deploy/rabbitmq/definitions.json";
const API: &str = "http://127.0.0.1:15672/api";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("definitions serialise");
    text.push('\n');
    text
}

#[test]
fn committed_definitions_are_up_to_date() {
    let config = Config::load(&root().join(EXAMPLE)).expect("the example config loads");
    let generated = pretty(&definitions(&config));
    let committed = std::fs::read_to_string(root().join(COMMITTED)).unwrap_or_default();
    if committed != generated && std::env::var_os("SCIMFLEET_UPDATE_DEFINITIONS").is_some() {
        std::fs::write(root().join(COMMITTED), &generated).expect("write definitions");
        return;
    }
    assert!(
        committed == generated,
        "{COMMITTED} is out of date with the code or {EXAMPLE}: run `{REGENERATE}` (or `make definitions`)"
    );
    assert!(!committed.contains("guest"), "no credentials of the example URL");
}

/// What `setup-users.sh` grants role `role` in namespace `ns`: its own
/// `permissions` function, run by bash.
fn script_permissions(ns: &str, role: &str) -> [String; 3] {
    let script = std::fs::read_to_string(root().join("deploy/rabbitmq/setup-users.sh")).expect("script");
    let start = script.find("nothing=").expect("the script's `nothing=` line");
    let end = start + script[start..].find("\n}\n").expect("end of permissions()") + 3;
    let snippet = format!("ns={ns}\n{}\npermissions {role}\n", &script[start..end]);
    let output = Command::new("bash").args(["-c", &snippet]).output().expect("bash runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let line = String::from_utf8(output.stdout).expect("utf-8");
    // The script writes JSON string bodies (backslashes doubled).
    let decoded: Vec<String> = line
        .split_whitespace()
        .map(|s| serde_json::from_str(&format!("\"{s}\"")).expect("a JSON string body"))
        .collect();
    decoded.try_into().unwrap_or_else(|d| panic!("{role}: configure, write, read expected: {d:?}"))
}

#[test]
fn role_users_get_the_permissions_setup_users_grants() {
    let users = role_users("acme-prod");
    let roles: Vec<_> = users.iter().map(|u| u.role).collect();
    assert_eq!(roles, ["intake", "scheduler", "worker", "admin"]);
    for user in &users {
        let [configure, write, read] = script_permissions("acme-prod", user.role);
        assert_eq!(
            (&user.configure, &user.write, &user.read),
            (&configure, &write, &read),
            "{}: definitions and setup-users.sh grant different permissions",
            user.role
        );
        assert_eq!(user.tags.contains(&"management"), user.role == "admin", "{}: tags", user.role);
    }
}

// ---- against the real broker --------------------------------------------------

/// The example configuration in namespace `ns` and `vhost`, with an
/// identity-provider source so that source queues are declared too.
fn config(ns: &str, vhost: &str) -> Config {
    let text = std::fs::read_to_string(root().join(EXAMPLE)).expect("example");
    let source = "\n[[sources]]\nkind = \"okta\"\nid = \"okta\"\nsecrets = [{ env = \"UNUSED\" }]\n\
                  [sources.api]\nbase_url = \"https://acme.okta.com\"\ntoken = { env = \"UNUSED\" }\n";
    let env = [
        ("SCIMFLEET_NAMESPACE".to_owned(), ns.to_owned()),
        ("SCIMFLEET_BROKER__URL".to_owned(), format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")),
    ];
    let dir = root().join("deploy/examples");
    Config::from_toml(&format!("{text}{source}"), EXAMPLE, dir, env).expect("config")
}

/// Vhosts and users of the test, deleted on drop (whatever happened).
struct Cleanup {
    vhosts: Vec<String>,
    users: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let paths = self
            .vhosts
            .iter()
            .map(|v| format!("vhosts/{v}"))
            .chain(self.users.iter().map(|u| format!("users/{u}")));
        for path in paths {
            let _ = Command::new("curl")
                .args(["-fsS", "-u", "guest:guest", "-X", "DELETE", &format!("{API}/{path}")])
                .output();
        }
    }
}

async fn api(client: &reqwest::Client, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
    let mut request = client.request(method, format!("{API}/{path}")).basic_auth("guest", Some("guest"));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("management API answers");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// What a vhost (or the definitions) holds, in a comparable form: exchanges
/// but the built-in ones, queues, and bindings but the default exchange's.
fn normalise(exchanges: &Value, queues: &Value, bindings: &Value) -> [BTreeSet<String>; 3] {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let exchanges = list(exchanges)
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| !n.is_empty() && !n.starts_with("amq.")))
        .map(|e| {
            let keys = ["name", "type", "durable", "auto_delete", "internal", "arguments"];
            json!(keys.map(|k| e[k].clone())).to_string()
        })
        .collect();
    let queues = list(queues)
        .iter()
        .map(|q| json!([q["name"], q["durable"], q["auto_delete"], q["arguments"]]).to_string())
        .collect();
    let bindings = list(bindings)
        .iter()
        .filter(|b| b["source"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|b| {
            json!([b["source"], b["destination"], b["destination_type"], b["routing_key"], b["arguments"]])
                .to_string()
        })
        .collect();
    [exchanges, queues, bindings]
}

async fn held(client: &reqwest::Client, vhost: &str) -> [BTreeSet<String>; 3] {
    let get = |kind: &'static str| {
        let path = format!("{kind}/{}", urlencode(vhost));
        async move { api(client, reqwest::Method::GET, &path, None).await }
    };
    normalise(&get("exchanges").await, &get("queues").await, &get("bindings").await)
}

fn urlencode(vhost: &str) -> String {
    url::form_urlencoded::byte_serialize(vhost.as_bytes()).collect()
}

/// Polls until `vhost` holds `expected` (the management API may lag a
/// declaration by a moment); returns what it last held.
async fn settle(
    client: &reqwest::Client,
    vhost: &str,
    expected: &[BTreeSet<String>; 3],
) -> [BTreeSet<String>; 3] {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = held(client, vhost).await;
        if &now == expected || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_broker_holds_exactly_the_definitions_after_declare_and_after_import() {
    let ns = unique_namespace("sf-defs");
    let (declared, imported) = (format!("{ns}-declared"), format!("{ns}-imported"));
    let _cleanup = Cleanup {
        vhosts: vec![declared.clone(), imported.clone()],
        users: role_users(&ns).iter().map(|u| format!("{ns}-{}", u.role)).collect(),
    };
    let client = reqwest::Client::new();
    let put = reqwest::Method::PUT;
    api(&client, put.clone(), &format!("vhosts/{}", urlencode(&declared)), None).await;
    let all = json!({ "configure": ".*", "write": ".*", "read": ".*" });
    api(&client, put, &format!("permissions/{}/guest", urlencode(&declared)), Some(&all)).await;

    // What `scimfleet topology declare` makes...
    let declaring = config(&ns, &declared);
    scimfleet_admin::declare_topology(&declaring, &mut Vec::new()).await.expect("topology declared");
    // ...is exactly what the definitions list, arguments included.
    let defs = definitions(&declaring);
    let expected = normalise(&defs["exchanges"], &defs["queues"], &defs["bindings"]);
    assert!(expected[1].iter().any(|q| q.contains(".sources.okta")), "the source queue is listed");
    let got = settle(&client, &declared, &expected).await;
    for (i, kind) in ["exchanges", "queues", "bindings"].iter().enumerate() {
        let missing: Vec<_> = expected[i].difference(&got[i]).collect();
        let extra: Vec<_> = got[i].difference(&expected[i]).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{kind}: declared but not in the definitions: {extra:#?}\nin the definitions but not declared: {missing:#?}"
        );
    }

    // Importing the definitions makes the same, with the role users and no password.
    let defs = definitions(&config(&ns, &imported));
    api(&client, reqwest::Method::POST, "definitions", Some(&defs)).await;
    let got = settle(&client, &imported, &expected).await;
    assert_eq!(got, expected, "an import holds what declaring holds");
    let permissions =
        api(&client, reqwest::Method::GET, &format!("vhosts/{}/permissions", urlencode(&imported)), None)
            .await;
    for user in role_users(&ns) {
        let name = format!("{ns}-{}", user.role);
        let found = permissions.as_array().expect("permissions").iter().find(|p| p["user"] == name.as_str());
        let found = found.unwrap_or_else(|| panic!("{name} has no permissions after the import"));
        assert_eq!(
            (found["configure"].as_str(), found["write"].as_str(), found["read"].as_str()),
            (Some(user.configure.as_str()), Some(user.write.as_str()), Some(user.read.as_str())),
            "{name}"
        );
        let account = api(&client, reqwest::Method::GET, &format!("users/{name}"), None).await;
        assert_eq!(account["password_hash"], "", "{name} is imported without a password");
    }
}
