//! `PUT /_admin/faults` and `DELETE /_admin/faults`: the switchable faults
//! for a server run as `scimfleet dev scim-server`, where no test holds a
//! [`ScimServerHandle`](super::ScimServerHandle).
//!
//! The endpoint sits outside `observe`, so it is neither logged nor subject
//! to the faults it sets (a down server can still be brought back up), but
//! behind `authenticate`: it takes the same bearer token as the SCIM API.
//! The body is a small JSON form of [`Faults`], validated before use:
//!
//! ```json
//! {"errors": [{"method": "PATCH", "resource": "Users", "rate": 0.2, "status": 503,
//!              "retry_after_s": 5}],
//!  "latency_ms": [5, 50], "drop_connection": 0.0, "down": false, "seed": 42}
//! ```
//!
//! Every field is optional; a rule's `rate` defaults to 1, and it may carry
//! `retry_after_s` (seconds) or `retry_after_date_s` (an HTTP date this many
//! seconds ahead).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use scimfleet_schemas::scim::ScimError;
use serde::Deserialize;

use super::faults::{ErrorRule, Faults, RetryAfter, Route};
use super::log::Resource;
use super::middleware::ApiError;
use super::routes::AppState;
use super::store::bad_request;

/// Where the endpoint lives.
pub(crate) const FAULTS_PATH: &str = "/_admin/faults";

/// Methods a rule may name, as the `&'static str` a [`Route`] holds.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsBody {
    #[serde(default)]
    down: bool,
    #[serde(default)]
    errors: Vec<RuleBody>,
    latency_ms: Option<(u64, u64)>,
    #[serde(default)]
    drop_connection: f64,
    seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    method: Option<String>,
    resource: Option<ResourceName>,
    #[serde(default = "always")]
    rate: f64,
    status: u16,
    retry_after_s: Option<u64>,
    retry_after_date_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
enum ResourceName {
    Users,
    Groups,
}

fn always() -> f64 {
    1.0
}

/// Replaces the active faults; 204, or 400 naming the bad field.
pub(crate) async fn put_faults(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, ApiError> {
    let body: FaultsBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError(bad_request("invalidSyntax", format!("bad faults: {e}"))))?;
    state.faults().set(body.into_faults().map_err(|detail| ApiError(bad_request("invalidValue", detail)))?);
    Ok(StatusCode::NO_CONTENT)
}

/// Clears every fault; 204.
pub(crate) async fn delete_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().set(Faults::default());
    StatusCode::NO_CONTENT
}

/// 405 for other methods on the endpoint.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError(ScimError::new(405, None, "use PUT or DELETE on /_admin/faults"))
}

impl FaultsBody {
    fn into_faults(self) -> Result<Faults, String> {
        check_rate("drop_connection", self.drop_connection)?;
        let latency = match self.latency_ms {
            Some((min, max)) if min > max => {
                return Err("latency_ms must be [min, max] with min <= max".into());
            }
            Some((min, max)) => Some((Duration::from_millis(min), Duration::from_millis(max))),
            None => None,
        };
        let errors = self.errors.into_iter().enumerate().map(|(i, rule)| rule.into_rule(i));
        let errors = errors.collect::<Result<Vec<_>, _>>()?;
        Ok(Faults {
            down: self.down,
            errors,
            latency,
            drop_connection: self.drop_connection,
            seed: self.seed,
            // Ignored writes are set in-process by tests; not offered over HTTP.
            ignore: Vec::new(),
        })
    }
}

impl RuleBody {
    fn into_rule(self, index: usize) -> Result<ErrorRule, String> {
        check_rate(&format!("errors[{index}].rate"), self.rate)?;
        if !(400..=599).contains(&self.status) {
            return Err(format!("errors[{index}].status must be 400..=599"));
        }
        let method = match self.method {
            None => None,
            Some(name) => Some(
                METHODS
                    .into_iter()
                    .find(|m| m.eq_ignore_ascii_case(&name))
                    .ok_or_else(|| format!("errors[{index}].method must be one of {}", METHODS.join(", ")))?,
            ),
        };
        let resource = self.resource.map(|r| match r {
            ResourceName::Users => Resource::Users,
            ResourceName::Groups => Resource::Groups,
        });
        let route = match (method, resource) {
            (None, None) => Route::Any,
            (Some(m), None) => Route::Method(m),
            (None, Some(r)) => Route::Resource(r),
            (Some(m), Some(r)) => Route::MethodOn(m, r),
        };
        let retry_after = match (self.retry_after_s, self.retry_after_date_s) {
            (Some(_), Some(_)) => {
                return Err(format!("errors[{index}]: give retry_after_s or retry_after_date_s, not both"));
            }
            (Some(s), None) => Some(RetryAfter::Seconds(s)),
            (None, Some(s)) => Some(RetryAfter::Date(Duration::from_secs(s))),
            (None, None) => None,
        };
        Ok(ErrorRule { route, rate: self.rate, status: self.status, retry_after })
    }
}

fn check_rate(field: &str, rate: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&rate) { Ok(()) } else { Err(format!("{field} must be within 0.0..=1.0")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Faults, String> {
        serde_json::from_str::<FaultsBody>(json).map_err(|e| e.to_string())?.into_faults()
    }

    #[test]
    fn the_documented_body_parses() {
        let faults = parse(
            r#"{"errors":[{"method":"patch","resource":"Users","rate":0.2,"status":503,"retry_after_s":5}],
                "latency_ms":[5,50],"drop_connection":0.0,"seed":42}"#,
        )
        .expect("valid body");
        let rule = &faults.errors[0];
        assert_eq!(
            (rule.route, rule.rate, rule.status),
            (Route::MethodOn("PATCH", Resource::Users), 0.2, 503)
        );
        assert_eq!(rule.retry_after, Some(RetryAfter::Seconds(5)));
        assert_eq!(faults.latency, Some((Duration::from_millis(5), Duration::from_millis(50))));
        assert_eq!((faults.down, faults.seed), (false, Some(42)));
        assert!(parse(r#"{"down":true}"#).expect("valid body").down);
        let any = parse(r#"{"errors":[{"status":429,"retry_after_date_s":60}]}"#).expect("valid body");
        assert_eq!((any.errors[0].route, any.errors[0].rate), (Route::Any, 1.0));
    }

    #[test]
    fn bad_bodies_are_refused() {
        for body in [
            r#"{"drop_connection":1.5}"#,
            r#"{"latency_ms":[50,5]}"#,
            r#"{"errors":[{"status":200}]}"#,
            r#"{"errors":[{"status":503,"method":"TRACE"}]}"#,
            r#"{"errors":[{"status":503,"rate":-1}]}"#,
            r#"{"errors":[{"status":503,"retry_after_s":1,"retry_after_date_s":1}]}"#,
            r#"{"errors":[{"status":503,"resource":"Schemas"}]}"#,
            r#"{"dwon":true}"#,
        ] {
            assert!(parse(body).is_err(), "{body} is refused");
        }
    }
}
