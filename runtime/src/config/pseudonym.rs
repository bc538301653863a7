//! The key of the pseudonymous person ids in logs and traces.

use super::{Config, ConfigError};
use crate::Secret;

/// Shortest pseudonym key accepted, in bytes.
pub const MIN_PSEUDONYM_KEY_BYTES: usize = 16;

impl Config {
    /// The key of pseudonymous person ids, from `telemetry.pseudonym_key_env`
    /// or `telemetry.pseudonym_key_file`. Required by every role: a key
    /// derived from the namespace would let anyone who knows the namespace
    /// turn a log's `p-…` back into a person by hashing HR ids. Only the demo
    /// and the test kit make a throw-away one.
    pub fn pseudonym_key(&self) -> Result<Secret, ConfigError> {
        let telemetry = &self.telemetry;
        let invalid = |field: &str, why: String| ConfigError::invalid(&self.origin, field, why);
        let (field, value) = match (&telemetry.pseudonym_key_env, &telemetry.pseudonym_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "telemetry.pseudonym_key_file",
                    "set pseudonym_key_env or pseudonym_key_file, not both".to_owned(),
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "telemetry.pseudonym_key_env",
                    format!(
                        "required: name an environment variable (or set pseudonym_key_file) holding a secret of at \
                         least {MIN_PSEUDONYM_KEY_BYTES} bytes, which keys the person pseudonyms in logs and traces"
                    ),
                ));
            }
            (Some(var), None) => match std::env::var(var) {
                Ok(value) => ("telemetry.pseudonym_key_env", value),
                Err(_) => return Err(invalid("telemetry.pseudonym_key_env", format!("{var} is not set"))),
            },
            (None, Some(path)) => match std::fs::read_to_string(self.base_dir.join(path)) {
                // A trailing newline is an editor's, not part of the key.
                Ok(value) => {
                    ("telemetry.pseudonym_key_file", value.trim_end_matches(['\n', '\r']).to_owned())
                }
                Err(e) => {
                    return Err(invalid(
                        "telemetry.pseudonym_key_file",
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
            },
        };
        if value.len() < MIN_PSEUDONYM_KEY_BYTES {
            return Err(invalid(
                field,
                format!("the key must hold at least {MIN_PSEUDONYM_KEY_BYTES} bytes"),
            ));
        }
        Ok(Secret::new(value))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn config(telemetry: &str, dir: PathBuf) -> Config {
        let text = format!(
            "[[apps]]\nid = \"crm\"\nbase_url = \"https://crm.example.com/scim\"\ntoken_env = \"T\"\n[telemetry]\n{telemetry}"
        );
        Config::from_toml(&text, "test.toml", dir, Vec::new()).expect("valid file")
    }

    fn refused(telemetry: &str, dir: PathBuf) -> String {
        config(telemetry, dir).pseudonym_key().expect_err("must be refused").to_string()
    }

    #[test]
    fn a_key_is_required_and_never_derived() {
        let text = refused("", PathBuf::new());
        assert!(text.contains("telemetry.pseudonym_key_env") && text.contains("required"), "{text}");
        let text = refused("pseudonym_key_env = \"SCIMFLEET_TEST_SURELY_UNSET_KEY\"", PathBuf::new());
        assert!(text.contains("SCIMFLEET_TEST_SURELY_UNSET_KEY is not set"), "{text}");
    }

    #[test]
    fn a_key_file_is_read_relative_to_the_config_and_must_be_long_enough() {
        let dir = std::env::temp_dir().join(format!("scimfleet-pseudonym-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("short.key"), "tiny-secret\n").expect("write");
        std::fs::write(dir.join("good.key"), "0123456789abcdef0123\n").expect("write");
        let text = refused("pseudonym_key_file = \"short.key\"", dir.clone());
        assert!(text.contains("telemetry.pseudonym_key_file") && text.contains("16 bytes"), "{text}");
        assert!(!text.contains("tiny-secret"), "the key never appears in an error: {text}");
        let key = config("pseudonym_key_file = \"good.key\"", dir.clone()).pseudonym_key().expect("valid");
        assert_eq!(key.expose(), "0123456789abcdef0123", "the editor's newline is not part of the key");
        let text = refused("pseudonym_key_file = \"missing.key\"", dir.clone());
        assert!(text.contains("cannot read missing.key"), "{text}");
        let both = "pseudonym_key_file = \"good.key\"\npseudonym_key_env = \"K\"";
        assert!(refused(both, dir.clone()).contains("not both"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
