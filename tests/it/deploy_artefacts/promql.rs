//! Reading the two languages the artefacts share with the processes: the
//! OpenMetrics text of the registry (which series exist, with which labels)
//! and PromQL (which series an expression selects). Small hand-written
//! scanners, enough for the expressions of this repository: they skip
//! strings, ranges and grouping clauses, and are unit-tested below.

use std::collections::{BTreeMap, BTreeSet};

/// The kind of a metric family, from its `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exposed as `f_total`.
    Counter,
    /// Exposed as `f` (an `info` family as `f_info`).
    Gauge,
    /// Exposed as `f_bucket`, `f_sum`, `f_count`.
    Histogram,
    /// Anything else, exposed as `f`.
    Other,
}

/// One exposed sample name (`f_total`, `f_bucket`, `f`, ...).
#[derive(Debug)]
pub struct Exposed {
    /// The family of the `# TYPE` line.
    pub family: String,
    /// Its kind.
    pub kind: Kind,
    /// Label names seen on its samples (`None`: no sample).
    pub labels: Option<BTreeSet<String>>,
}

/// Exposed sample names from OpenMetrics text: the names each `# TYPE` line
/// implies, with the label names seen on that name's samples.
pub fn exposition(text: &str) -> BTreeMap<String, Exposed> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (family, kind) = rest.split_once(' ').expect("# TYPE <family> <kind>");
        let (kind, suffixes): (_, &[&str]) = match kind {
            "counter" => (Kind::Counter, &["_total"]),
            "histogram" => (Kind::Histogram, &["_bucket", "_sum", "_count"]),
            "gauge" => (Kind::Gauge, &[""]),
            "info" => (Kind::Gauge, &["_info"]),
            _ => (Kind::Other, &[""]),
        };
        for suffix in suffixes {
            out.insert(
                format!("{family}{suffix}"),
                Exposed { family: family.to_owned(), kind, labels: None },
            );
        }
    }
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let exposed =
            out.get_mut(&line[..name_end]).unwrap_or_else(|| panic!("sample without # TYPE: {line}"));
        let chars: Vec<char> = line.chars().collect();
        let names = if chars.get(name_end) == Some(&'{') { matchers(&chars, name_end).0 } else { Vec::new() };
        exposed.labels.get_or_insert_with(BTreeSet::new).extend(names);
    }
    out
}

/// A metric selector in an expression: the series, the label names it
/// matches on, and the innermost function it is an argument of.
#[derive(Debug)]
pub struct Selector {
    /// The series name.
    pub name: String,
    /// Label names it matches on.
    pub labels: Vec<String>,
    /// The innermost function call it is an argument of.
    pub func: Option<String>,
}

fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

fn ident_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
        i += 1;
    }
    i
}

fn skip_spaces(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

/// Label names in `{a="x", b=~"y"}` starting at `open`, and the index after `}`.
fn matchers(chars: &[char], open: usize) -> (Vec<String>, usize) {
    let (mut names, mut i) = (Vec::new(), open + 1);
    while i < chars.len() && chars[i] != '}' {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = ident_end(chars, i);
            names.push(chars[i..end].iter().collect());
            i = end;
        } else {
            i += 1;
        }
    }
    (names, i + 1)
}

/// Every `scimfleet_*` selector of a PromQL expression.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let (mut out, mut calls, mut i) = (Vec::new(), Vec::<Option<String>>::new(), 0);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '{' {
            i = matchers(&chars, i).1;
        } else if c == '[' {
            i += chars[i..].iter().position(|&c| c == ']').unwrap_or(chars.len() - i);
        } else if c == '(' || c == ')' {
            if c == '(' {
                calls.push(None)
            } else {
                calls.pop();
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let end = ident_end(&chars, i);
            let ident: String = chars[i..end].iter().collect();
            let next = skip_spaces(&chars, end);
            i = end;
            if chars.get(next) == Some(&'(') {
                calls.push(Some(ident));
                i = next + 1;
            } else if ident.starts_with("scimfleet_") {
                let func = calls.last().cloned().flatten();
                let labels = if chars.get(next) == Some(&'{') {
                    let (labels, after) = matchers(&chars, next);
                    i = after;
                    labels
                } else {
                    Vec::new()
                };
                out.push(Selector { name: ident, labels, func });
            }
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn selectors_are_read_from_promql() {
    let found = selectors(
        r#"histogram_quantile(0.99, sum by (app, le) (rate(scimfleet_x_bucket{app=~"$app", q="a}b"}[5m]))) > 300
           and on (app) max by (app) (scimfleet_y)"#,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!((found[0].name.as_str(), found[0].func.as_deref()), ("scimfleet_x_bucket", Some("rate")));
    assert_eq!(found[0].labels, ["app", "q"]);
    assert_eq!(
        (found[1].name.as_str(), found[1].func.as_deref(), found[1].labels.len()),
        ("scimfleet_y", None, 0)
    );
}
