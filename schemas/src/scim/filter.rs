//! The one filter form scimfleet sends and the test server understands:
//! `attribute eq "value"` (RFC 7644 §3.4.2.2), with the value escaped as a
//! JSON string so quotes and backslashes in names cannot break out of it.

use std::fmt;

/// A parsed `attribute eq "value"` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EqFilter {
    /// The attribute path, e.g. `userName`.
    pub attribute: String,
    /// The compared value.
    pub value: String,
}

/// Why a filter was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported filter: {0}")]
pub struct FilterError(&'static str);

/// Builds `attribute eq "value"` with `value` escaped.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    // A JSON string literal is exactly the SCIM string literal grammar.
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    format!("{attribute} eq {quoted}")
}

impl EqFilter {
    /// Parses `attribute eq "value"` (operator case-insensitive).
    pub fn parse(filter: &str) -> Result<Self, FilterError> {
        let filter = filter.trim();
        let (attribute, rest) =
            filter.split_once(char::is_whitespace).ok_or(FilterError("expected `attr eq \"value\"`"))?;
        let rest = rest.trim_start();
        let (op, literal) =
            rest.split_once(char::is_whitespace).ok_or(FilterError("expected `attr eq \"value\"`"))?;
        if !op.eq_ignore_ascii_case("eq") {
            return Err(FilterError("only the eq operator is supported"));
        }
        let value: String = serde_json::from_str(literal.trim())
            .map_err(|_| FilterError("the value must be a quoted string"))?;
        if attribute.is_empty() || !attribute.chars().all(|c| c.is_ascii_alphanumeric() || ".:_$".contains(c))
        {
            return Err(FilterError("bad attribute name"));
        }
        Ok(Self { attribute: attribute.to_owned(), value })
    }
}

impl fmt::Display for EqFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&eq_filter(&self.attribute, &self.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_parses_back() {
        for value in ["ada@example.com", "a \"quoted\" name", "back\\slash", "ünï"] {
            let text = eq_filter("userName", value);
            let parsed = EqFilter::parse(&text).expect("parses");
            assert_eq!(parsed.attribute, "userName");
            assert_eq!(parsed.value, value);
        }
    }

    #[test]
    fn operator_is_case_insensitive_and_others_are_refused() {
        assert!(EqFilter::parse("userName EQ \"x\"").is_ok());
        assert!(EqFilter::parse("userName co \"x\"").is_err());
        assert!(EqFilter::parse("userName eq x").is_err());
        assert!(EqFilter::parse("userName").is_err());
    }
}
