use std::error::Error as _;

use super::*;

const WORKDAY: &str = r#"
id = "workday"
person_id = "Employee_ID"
status = { column = "Worker_Status", terminated = ["Terminated"], suspended = ["On Leave"] }
effective_at = "Effective_Date"
time_zone = "America/Los_Angeles"
groups = { column = "Org_Units" }
[attributes]
userName = "Work_Email"
givenName = "Legal_First_Name"
department = "Department"
"#;

const HEADER: &str =
    "Employee_ID,Worker_Status,Effective_Date,Org_Units,Work_Email,Legal_First_Name,Department";

fn source(toml_text: &str) -> HrFileSource {
    toml::from_str(toml_text).expect("a valid source")
}

fn jsonl() -> HrFileSource {
    let mut source = source(WORKDAY);
    source.format = FileFormat::Jsonl;
    source
}

fn rows(source: &HrFileSource, text: &str) -> Vec<Row> {
    parse(source, text.as_bytes()).expect("parses")
}

fn error(source: &HrFileSource, text: &str) -> ParseError {
    parse(source, text.as_bytes()).expect_err("refused")
}

fn utc(text: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(text).expect("a test instant").to_utc())
}

/// The message and every source's message, as an operator would see them.
fn chain(error: &ParseError) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(&format!(": {source}"));
        next = source.source();
    }
    text
}

#[test]
fn csv_rows_are_read_trimmed_with_line_numbers() {
    let text = format!(
        "\u{feff}{HEADER}\n\
         E1, Active ,2026-07-01T17:00,Sales;EMEA,jane@example.com,Jane,Sales\n\
         \n\
         E2,Terminated,,,bob@example.com,\"Bob, Jr.\",\n"
    );
    let got = rows(&source(WORKDAY), &text);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].line, 2);
    assert_eq!(got[0].person.as_str(), "E1");
    assert_eq!(got[0].status, PersonStatus::Active);
    assert_eq!(got[0].groups, ["Sales", "EMEA"]);
    assert_eq!(got[0].effective_at, utc("2026-07-02T00:00:00Z"));
    assert_eq!(got[0].attributes["userName"], "jane@example.com");
    assert_eq!(got[0].attributes["department"], "Sales");
    assert_eq!(got[1].line, 4);
    assert_eq!(got[1].status, PersonStatus::Terminated);
    assert_eq!(got[1].attributes["givenName"], "Bob, Jr.");
    assert!(!got[1].attributes.contains_key("department"), "empty cells are left out");
    assert!(got[1].groups.is_empty());
    assert_eq!(got[1].effective_at, None);
}

#[test]
fn csv_uses_the_configured_delimiter_and_a_quoted_first_header() {
    let mut source = source("id = \"s\"\nperson_id = \"id\"\nattributes = { mail = \"mail\" }");
    source.delimiter = Some(';');
    let got = rows(&source, "\u{feff}\"id\";mail\na1;a@example.com\n");
    assert_eq!(got[0].person.as_str(), "a1");
    assert_eq!(got[0].status, PersonStatus::Active, "no status column: everyone is active");
    assert_eq!(got[0].attributes["mail"], "a@example.com");
    source.delimiter = Some('é');
    assert!(matches!(error(&source, "id\n"), ParseError::Delimiter));
}

#[test]
fn jsonl_rows_take_scalars_as_text_and_skip_blank_and_comment_lines() {
    let text = r#"# exported 2026-07-01
{"Employee_ID": "E1", "Worker_Status": "on leave", "Work_Email": "j@example.com", "Department": 42, "Legal_First_Name": true, "Org_Units": "A; B"}

{"Employee_ID": 7, "Worker_Status": null, "Effective_Date": "2026-03-08"}
"#;
    let got = rows(&jsonl(), text);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].line, got[1].line), (2, 4));
    assert_eq!(got[0].status, PersonStatus::Suspended);
    assert_eq!(got[0].attributes["department"], "42");
    assert_eq!(got[0].attributes["givenName"], "true");
    assert_eq!(got[0].groups, ["A", "B"]);
    assert_eq!(got[1].person.as_str(), "7");
    assert_eq!(got[1].status, PersonStatus::Active);
    assert!(got[1].attributes.is_empty(), "absent keys are empty");
    assert_eq!(got[1].effective_at, utc("2026-03-08T08:00:00Z"));
}

#[test]
fn jsonl_refuses_non_objects_and_lists() {
    assert!(matches!(error(&jsonl(), "{\"Employee_ID\": \"E1\"}\n[1]\n"), ParseError::NotObject { line: 2 }));
    assert!(matches!(error(&jsonl(), "{\"Employee_ID\": \"E1\"\n"), ParseError::NotObject { line: 1 }));
    let err = error(&jsonl(), "{\"Employee_ID\": \"E1\", \"Org_Units\": [\"A\"]}");
    assert!(matches!(&err, ParseError::NotText { line: 1, column } if column == "Org_Units"), "{err}");
}

#[test]
fn a_column_missing_from_the_header_is_named() {
    let header = HEADER.replace(",Department", "");
    let err = error(&source(WORKDAY), &format!("{header}\nE1,Active,,,a@example.com,Ann\n"));
    assert!(matches!(&err, ParseError::MissingColumn { column } if column == "Department"));
    assert_eq!(err.to_string(), "the header has no column `Department`");
    let err = error(&source(WORKDAY), "");
    assert!(matches!(&err, ParseError::MissingColumn { column } if column == "Employee_ID"));
}

#[test]
fn person_ids_must_be_present_valid_and_unique() {
    let csv = |body: &str| format!("{HEADER}\n{body}");
    let err = error(&source(WORKDAY), &csv("E1,,,,,,\n,Active,,,,,\n"));
    assert!(matches!(err, ParseError::EmptyPersonId { line: 3, .. }), "{err}");
    let err = error(&source(WORKDAY), &csv("E1,,,,,,\nE 2,,,,,,\n"));
    assert!(matches!(err, ParseError::InvalidPersonId { line: 3, .. }), "{err}");
    let err = error(&source(WORKDAY), &csv("E1,,,,,,\nE2,,,,,,\nE1,Terminated,,,,,\n"));
    assert!(matches!(err, ParseError::DuplicatePerson { first: 2, second: 4 }), "{err}");
    assert_eq!(err.to_string(), "lines 2 and 4 are for the same person");
}

#[test]
fn status_values_match_trimmed_and_ignoring_case() {
    let text =
        format!("{HEADER}\nA,TERMINATED,,,,,\nB,  on LEAVE ,,,,,\nC,Active,,,,,\nD,,,,,,\nE,Retired,,,,,\n");
    let statuses: Vec<_> = rows(&source(WORKDAY), &text).into_iter().map(|r| r.status).collect();
    use PersonStatus::{Active, Suspended, Terminated};
    assert_eq!(statuses, [Terminated, Suspended, Active, Active, Active]);
}

#[test]
fn groups_split_on_the_separator_trimmed_without_empties() {
    assert_eq!(split(" a ; b;;c ; ", ";"), ["a", "b", "c"]);
    assert_eq!(split("a|b", "|"), ["a", "b"]);
    assert!(split("", ";").is_empty());
    let mut source = source(WORKDAY);
    source.groups = Some(toml::from_str("column = \"Org_Units\"\nseparator = \"|\"").expect("a list column"));
    let got = rows(&source, &format!("{HEADER}\nE1,,,Sales | EMEA;West |,,,\n"));
    assert_eq!(got[0].groups, ["Sales", "EMEA;West"]);
}

#[test]
fn times_without_offset_are_read_in_the_source_zone() {
    let pacific: Tz = "America/Los_Angeles".parse().expect("a zone");
    let at = |text: &str| instant(text, pacific);
    // DST starts at 02:00 that day: midnight is still PST (-08:00).
    assert_eq!(at("2026-03-08"), Ok(utc("2026-03-08T08:00:00Z")));
    assert_eq!(at("2026-07-01T17:00"), Ok(utc("2026-07-02T00:00:00Z")));
    assert_eq!(at("2026-07-01 17:00:30"), Ok(utc("2026-07-02T00:00:30Z")));
    assert_eq!(at("2026-07-01T17:00:00+02:00"), Ok(utc("2026-07-01T15:00:00Z")), "an offset wins");
    assert_eq!(at("2026-07-01T17:00:00Z"), Ok(utc("2026-07-01T17:00:00Z")));
    // 01:30 happens twice on 2026-11-01: the earlier is PDT (-07:00).
    assert_eq!(at("2026-11-01T01:30"), Ok(utc("2026-11-01T08:30:00Z")));
    assert_eq!(at("2026-03-08T02:30"), Err(TimeError::Nonexistent("America/Los_Angeles")));
    assert_eq!(at(""), Ok(None));
    for bad in ["next week", "2026-13-01", "01/07/2026", "2026-07-01T25:00"] {
        assert_eq!(at(bad), Err(TimeError::Unparseable), "{bad}");
    }
    assert_eq!(instant("2026-07-01", chrono_tz::UTC), Ok(utc("2026-07-01T00:00:00Z")));
}

#[test]
fn a_date_whose_midnight_is_skipped_starts_when_the_clocks_resume() {
    // Chile moves from -04:00 to -03:00 at 00:00 on 2026-09-06.
    let santiago: Tz = "America/Santiago".parse().expect("a zone");
    assert_eq!(instant("2026-09-06", santiago), Ok(utc("2026-09-06T04:00:00Z")));
    // Samoa skipped 2011-12-30 altogether.
    let apia: Tz = "Pacific/Apia".parse().expect("a zone");
    assert_eq!(instant("2011-12-30", apia), Err(TimeError::Nonexistent("Pacific/Apia")));
}

#[test]
fn time_errors_name_the_line_and_column() {
    let err = error(&source(WORKDAY), &format!("{HEADER}\nE1,,2026-03-08T02:30,,,,\n"));
    assert!(
        matches!(&err, ParseError::NonexistentTime { line: 2, column, .. } if column == "Effective_Date")
    );
    let err = error(&source(WORKDAY), &format!("{HEADER}\nE1,,,,,,\nE2,,soon,,,,\n"));
    assert!(matches!(&err, ParseError::BadTime { line: 3, column } if column == "Effective_Date"));
}

#[test]
fn csv_line_numbers_count_blank_lines_and_line_breaks_in_quotes() {
    let text = format!("{HEADER}\r\n\r\n\r\nE1,,,,,,\r\nE2,,,,,\"a\nb\",\r\n\nE3,,,,,,\nE4,,,,,,\n");
    let lines: Vec<_> = rows(&source(WORKDAY), &text).into_iter().map(|r| r.line).collect();
    assert_eq!(lines, [4, 5, 8, 9]);
}

#[test]
fn malformed_csv_names_the_line() {
    let err = error(&source(WORKDAY), &format!("{HEADER}\nE1,,,,,,\nE2,only-three,x\n"));
    assert!(matches!(err, ParseError::Csv { line: 3, .. }), "{err}");
    let err = error(&source(WORKDAY), &format!("{HEADER}\nE1,,,,,,\n\n\nE2,only-three,x\n"));
    assert!(matches!(err, ParseError::Csv { line: 5, .. }), "{err}");
    let mut bytes = format!("{HEADER}\nE1,,,,,,\n").into_bytes();
    bytes.extend_from_slice(b"E2,\xFF,,,,,\n");
    let err = parse(&source(WORKDAY), bytes.as_slice()).expect_err("refused");
    assert!(matches!(err, ParseError::NotUtf8 { line: 3 }), "{err}");
}

#[test]
fn errors_never_contain_a_cell_value() {
    let secret = "Zz9secret";
    let csv = |body: &str| format!("{HEADER}\n{body}\n");
    let cases = [
        error(&source(WORKDAY), &csv(&format!("{secret} x,,,,,,"))),
        error(&source(WORKDAY), &csv(&format!("{secret},,,,,,\n{secret},,,,,,"))),
        error(&source(WORKDAY), &csv(&format!("E1,,{secret},,,,"))),
        error(&source(WORKDAY), &csv(&format!("E1,,2026-03-08T02:30,,{secret},{secret},"))),
        error(&source(WORKDAY), &csv(&format!("E1,{secret},x"))),
        error(&source(WORKDAY), &csv(&format!("{}{secret},,,,,,", "x".repeat(130)))),
        error(&jsonl(), &format!("\"{secret}\"")),
        error(&jsonl(), &format!("{{\"Employee_ID\": \"{secret}\", \"Org_Units\": [\"{secret}\"]}}")),
        error(&jsonl(), &format!("{{\"Employee_ID\": \"E1\", \"Effective_Date\": \"{secret}\"}}")),
        error(&jsonl(), &format!("{{\"Employee_ID\": {secret}}}")),
    ];
    for err in &cases {
        let shown = format!("{} {err:?}", chain(err));
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("line"), "{shown}");
    }
}
