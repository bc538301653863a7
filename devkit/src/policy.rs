//! Policies for a [`Fleet`](crate::fleet::Fleet): the `[[apps]]` tables (and
//! any `[worker]` or `[verification]` settings) a test or the demo starts a
//! fleet with, built in one place instead of spelled out in `format!` strings.
//!
//! Every app gets the `base_url` and `token_env` placeholders a policy must
//! carry to parse; the fleet replaces them with its own test server and token.

/// Three apps: `git` (Engineering, deactivate), `chat` (everyone,
/// deactivate), `crm` (Sales, delete); each with group rules. The policy
/// most integration tests run.
pub const STANDARD: &str = r#"
[[apps]]
id = "git"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
deprovision = "deactivate"
scope = { include = { department = ["Engineering"] } }
[[apps.groups]]
name = "engineers"
hr_groups = ["engineering"]
[[apps.groups]]
name = "london"
when = { location = ["London"] }

[[apps]]
id = "chat"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
[[apps.groups]]
name = "all-staff"
[[apps.groups]]
name = "eng-chat"
hr_groups = ["engineering"]

[[apps]]
id = "crm"
base_url = "https://set-by-fleet"
token_env = "UNUSED"
deprovision = "delete"
scope = { include = { department = ["Sales"] } }
[[apps.groups]]
name = "sales-team"
when = { department = ["Sales"] }
"#;

/// Builds a policy's TOML: settings first, then one `[[apps]]` table per
/// [`PolicyBuilder::app`], each with its extra lines and groups.
///
/// ```
/// use scimfleet_devkit::policy::PolicyBuilder;
/// let policy = PolicyBuilder::new()
///     .settings("[worker]\nretry_tiers_ms = [50]")
///     .app("git", "deprovision = \"delete\"")
///     .group("staff")
///     .build();
/// let table: toml::Table = policy.parse().expect("valid TOML");
/// assert_eq!(table["apps"][0]["id"].as_str(), Some("git"));
/// assert_eq!(table["apps"][0]["groups"][0]["name"].as_str(), Some("staff"));
/// ```
#[derive(Debug, Default, Clone)]
#[must_use]
pub struct PolicyBuilder {
    settings: String,
    apps: String,
}

impl PolicyBuilder {
    /// An empty policy (no settings, no apps).
    pub fn new() -> Self {
        Self::default()
    }

    /// Top-level TOML (e.g. a `[worker]` table) placed before the apps.
    pub fn settings(mut self, toml: &str) -> Self {
        self.settings.push_str(toml);
        self.settings.push('\n');
        self
    }

    /// One more app `id`, with `extra` lines of its table (e.g.
    /// `"concurrency = 1"`; empty for none).
    pub fn app(mut self, id: &str, extra: &str) -> Self {
        self.apps.push_str(&format!(
            "[[apps]]\nid = \"{id}\"\nbase_url = \"https://set-by-fleet\"\ntoken_env = \"UNUSED\"\n{extra}\n"
        ));
        self
    }

    /// A group `name` (no rules: every person in scope) for the last app.
    pub fn group(mut self, name: &str) -> Self {
        self.apps.push_str(&format!("[[apps.groups]]\nname = \"{name}\"\n"));
        self
    }

    /// Apps given as TOML already (e.g. [`STANDARD`]), after those so far.
    pub fn apps_toml(mut self, toml: &str) -> Self {
        self.apps.push_str(toml);
        self.apps.push('\n');
        self
    }

    /// The policy's TOML text.
    pub fn build(self) -> String {
        format!("{}{}", self.settings, self.apps)
    }
}

/// A policy with the single app `chat` (everyone in scope) plus `extra`
/// lines for that app, e.g. `"concurrency = 1"`.
pub fn chat_only(extra: &str) -> String {
    PolicyBuilder::new().app("chat", extra).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_policy_and_a_built_one_parse() {
        let built = PolicyBuilder::new()
            .settings("[worker]\nbreaker_failures = 2")
            .app("ldap", "max_attempts = 2")
            .apps_toml(STANDARD)
            .build();
        let table: toml::Table = built.parse().expect("valid TOML");
        let apps = table["apps"].as_array().expect("apps");
        let ids: Vec<_> = apps.iter().filter_map(|a| a["id"].as_str()).collect();
        assert_eq!(ids, ["ldap", "git", "chat", "crm"]);
        assert_eq!(apps[0]["max_attempts"].as_integer(), Some(2));
        assert_eq!(table["worker"]["breaker_failures"].as_integer(), Some(2));
    }

    #[test]
    fn chat_only_has_one_app_with_its_extra_lines() {
        let table: toml::Table = chat_only("concurrency = 1").parse().expect("valid TOML");
        assert_eq!(table["apps"].as_array().map(Vec::len), Some(1));
        assert_eq!(table["apps"][0]["concurrency"].as_integer(), Some(1));
    }
}
