//! The console of `deploy/docker-compose.yml`, loaded as its container
//! loads it: the mounted `deploy/examples/scimfleet.toml` under the image's
//! `ENV` and the service's environment (compose's `${VAR:-default}` taken
//! at its default). Listening beyond the container's loopback, it must sign
//! people in; the credential file it names is the compose secret it is
//! given; its port is published.

use std::path::Path;

use scimfleet_runtime::Config;
use scimfleet_runtime::config::ConsoleAuth;

use super::{deploy, environment, file, keys, strings};
use crate::kubernetes::build::image_env;

/// `text` with compose's `${VAR:-default}` at its default and `${VAR:?why}`
/// (a required variable) at a stand-in of 32 characters.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let (inner, after) = rest[start + 2..].split_once('}').expect("a closed ${...}");
        match (inner.split_once(":-"), inner.split_once(":?")) {
            (Some((_, default)), _) => out.push_str(default),
            (None, Some(_)) => out.push_str(&"0".repeat(32)),
            (None, None) => {}
        }
        rest = after;
    }
    out + rest
}

#[test]
fn the_compose_console_signs_people_in_with_its_secret() {
    assert_eq!(interpolate("a${X:-b}c${Y:?no}d${Z}"), format!("abc{}d", "0".repeat(32)));
    let compose = file("docker-compose.yml");
    let console = &compose["services"]["console"];
    assert_eq!(strings(console.get("command")), ["console"]);
    let mut env = image_env();
    env.extend(environment(console).into_iter().map(|(k, v)| (k, interpolate(&v))));
    let mounted = deploy().join("examples");
    let text = std::fs::read_to_string(mounted.join("scimfleet.toml")).expect("the example config");
    let config = Config::from_toml(&text, "compose console", mounted, env)
        .unwrap_or_else(|e| panic!("the compose console's configuration does not load: {e}"));

    let listen = config.console.listen.expect("console.listen");
    assert!(!listen.ip().is_loopback(), "the console listens on the container's loopback only");
    assert_ne!(config.console.auth, ConsoleAuth::None, "anyone reaching the port would be the admin");
    if config.console.auth == ConsoleAuth::Static {
        let credential = config.console.credential_file.expect("console.credential_file");
        let given = strings(console.get("secrets"));
        let secret = given.iter().find(|s| credential == Path::new("/run/secrets").join(s));
        let secret =
            secret.unwrap_or_else(|| panic!("{} is none of the secrets {given:?}", credential.display()));
        assert!(keys(compose.get("secrets")).contains(secret), "secret {secret} is not defined");
    }
    let published = strings(console.get("ports"));
    let port = format!(":{}", listen.port());
    assert!(
        published.iter().any(|p| p.ends_with(&port)),
        "console.listen's port is not published: {published:?}"
    );
}
