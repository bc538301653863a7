//! Reading an HR extract into rows, before anything is compared or published.
//!
//! A source's configuration ([`HrFileSource`]) says which column holds what;
//! this stage turns every line of the file into a [`Row`] or refuses the
//! whole file. Both formats share one row builder, fed by a "cell of this
//! column" lookup:
//!
//! - **CSV** has a header row, cells are trimmed, a UTF-8 byte-order mark is
//!   dropped. Every column the source names must be in the header: a file
//!   exported with a different layout stops here instead of quietly emptying
//!   an attribute for everyone (which the diff would turn into updates).
//! - **JSONL** is one object per line (blank and `#` lines skipped); a key
//!   that is absent or `null` is an empty cell, strings, numbers and
//!   booleans are text, a list or an object is refused.
//!
//! Times written without an offset are wall-clock times in the source's
//! `time_zone`: an ambiguous time (the hour repeated when clocks go back)
//! takes the earlier instant, a time skipped when clocks go forward is
//! refused, and a bare date is the first instant of that day there.
//!
//! Errors name the 1-based line and the column, never a cell's value: cells
//! are HR data and error messages end up in terminals, tickets and logs.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use scimfleet_runtime::config::{FileFormat, HrFileSource, StatusColumn};
use scimfleet_schemas::{IdError, PersonId, PersonStatus};
use serde_json::Value;

/// One person's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The 1-based line the row starts on.
    pub line: usize,
    /// The person's HR id.
    pub person: PersonId,
    /// The status the row's status column maps to (active without one).
    pub status: PersonStatus,
    /// Person attribute → value; empty cells are left out.
    pub attributes: BTreeMap<String, String>,
    /// The person's HR groups, in file order, empties dropped.
    pub groups: Vec<String>,
    /// When the row's change takes effect, if the file says.
    pub effective_at: Option<DateTime<Utc>>,
}

/// Why a file could not be read (line 1-based, column named, never a value).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Reading the input failed.
    #[error("the file could not be read")]
    Io(#[source] io::Error),
    /// The configured CSV delimiter is not one ASCII character.
    #[error("`delimiter` must be a single ASCII character")]
    Delimiter,
    /// The CSV is malformed (for example a row with a different number of fields).
    #[error("line {line}: not well-formed CSV")]
    Csv {
        /// The line.
        line: usize,
        /// What the CSV reader found.
        #[source]
        source: csv::Error,
    },
    /// A line is not UTF-8 text.
    #[error("line {line}: not UTF-8 text")]
    NotUtf8 {
        /// The line.
        line: usize,
    },
    /// A JSONL line is not one JSON object.
    #[error("line {line}: not a JSON object")]
    NotObject {
        /// The line.
        line: usize,
    },
    /// The CSV header lacks a column the source names.
    #[error("the header has no column `{column}`")]
    MissingColumn {
        /// The column.
        column: String,
    },
    /// A JSONL value is a list or an object where text was expected.
    #[error("line {line}, column `{column}`: a list or object where text was expected")]
    NotText {
        /// The line.
        line: usize,
        /// The column.
        column: String,
    },
    /// The person id cell is empty.
    #[error("line {line}, column `{column}`: the person id is empty")]
    EmptyPersonId {
        /// The line.
        line: usize,
        /// The column.
        column: String,
    },
    /// The person id cell is not a valid [`PersonId`].
    #[error("line {line}, column `{column}`: {reason}")]
    InvalidPersonId {
        /// The line.
        line: usize,
        /// The column.
        column: String,
        /// Why (names the rule, not the value).
        reason: IdError,
    },
    /// Two rows are for the same person.
    #[error("lines {first} and {second} are for the same person")]
    DuplicatePerson {
        /// The earlier line.
        first: usize,
        /// The later line.
        second: usize,
    },
    /// A time cell is neither RFC 3339, a local date-time nor a date.
    #[error(
        "line {line}, column `{column}`: not a date (YYYY-MM-DD), a local date-time \
         (YYYY-MM-DDTHH:MM[:SS]) or an RFC 3339 date-time"
    )]
    BadTime {
        /// The line.
        line: usize,
        /// The column.
        column: String,
    },
    /// A local time falls in the gap when clocks go forward.
    #[error("line {line}, column `{column}`: that local time does not exist in {zone} (clocks went forward)")]
    NonexistentTime {
        /// The line.
        line: usize,
        /// The column.
        column: String,
        /// The source's time zone.
        zone: &'static str,
    },
}

/// Reads every row of `input` as `source` lays it out.
pub fn parse(source: &HrFileSource, input: impl Read) -> Result<Vec<Row>, ParseError> {
    let input = skip_bom(input).map_err(ParseError::Io)?;
    let rows = match source.format {
        FileFormat::Csv => parse_csv(source, input)?,
        FileFormat::Jsonl => parse_jsonl(source, input)?,
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for row in &rows {
        if let Some(first) = seen.insert(row.person.as_str(), row.line) {
            return Err(ParseError::DuplicatePerson { first, second: row.line });
        }
    }
    Ok(rows)
}

/// `input` without a leading UTF-8 byte-order mark.
fn skip_bom(mut input: impl Read) -> io::Result<impl Read> {
    let mut head = Vec::with_capacity(3);
    input.by_ref().take(3).read_to_end(&mut head)?;
    if head == b"\xEF\xBB\xBF" {
        head.clear();
    }
    Ok(io::Cursor::new(head).chain(input))
}

/// Every column `source` reads, person id first.
fn columns(source: &HrFileSource) -> impl Iterator<Item = &str> {
    std::iter::once(source.person_id.as_str())
        .chain(source.attributes.values().map(String::as_str))
        .chain(source.status.as_ref().map(|s| s.column.as_str()))
        .chain(source.effective_at.as_deref())
        .chain(source.groups.as_ref().map(|g| g.column.as_str()))
}

fn parse_csv(source: &HrFileSource, mut input: impl Read) -> Result<Vec<Row>, ParseError> {
    let delimiter = match source.delimiter {
        None => b',',
        Some(c) => u8::try_from(c).ok().filter(u8::is_ascii).ok_or(ParseError::Delimiter)?,
    };
    let mut data = Vec::new();
    input.read_to_end(&mut data).map_err(ParseError::Io)?;
    let lines = Lines::of(&data);
    let mut reader =
        csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).from_reader(data.as_slice());
    let header = reader.headers().map_err(|e| csv_error(e, &lines, 1))?.clone();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        index.entry(name).or_insert(i);
    }
    if let Some(column) = columns(source).find(|c| !index.contains_key(c)) {
        return Err(ParseError::MissingColumn { column: column.to_owned() });
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut last = 1;
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, &lines, last + 1)),
        }
        let line = lines.at(record.position(), last + 1);
        last = line;
        let cell =
            |column: &str| Ok(index.get(column).and_then(|&i| record.get(i)).unwrap_or_default().to_owned());
        rows.push(row(source, line, cell)?);
    }
    Ok(rows)
}

/// Line numbers of a CSV file's records. The reader's own are off for the
/// first record after a blank line, whose byte offset is then the blank
/// line's (<https://github.com/BurntSushi/rust-csv/issues/208>); a record
/// never starts with a line break, so those are skipped before counting.
struct Lines<'a> {
    data: &'a [u8],
    /// The offset of every `\n`.
    breaks: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn of(data: &'a [u8]) -> Self {
        let breaks = data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect();
        Self { data, breaks }
    }

    /// The 1-based line of the record at `position` (`fallback` without one).
    fn at(&self, position: Option<&csv::Position>, fallback: usize) -> usize {
        let Some(position) = position else { return fallback };
        let mut start = usize::try_from(position.byte()).unwrap_or(usize::MAX).min(self.data.len());
        while matches!(self.data.get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        self.breaks.partition_point(|&b| b < start) + 1
    }
}

/// A CSV reader error as a [`ParseError`] at its line (`fallback` when it has none).
fn csv_error(error: csv::Error, lines: &Lines<'_>, fallback: usize) -> ParseError {
    let line = lines.at(error.position(), fallback);
    // No I/O errors: the reader reads from memory.
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => ParseError::NotUtf8 { line },
        _ => ParseError::Csv { line, source: error },
    }
}

fn parse_jsonl(source: &HrFileSource, input: impl Read) -> Result<Vec<Row>, ParseError> {
    let mut reader = BufReader::new(input);
    let mut buffer = Vec::new();
    let mut rows = Vec::new();
    let mut line = 0;
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer).map_err(ParseError::Io)? == 0 {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buffer).map_err(|_| ParseError::NotUtf8 { line })?.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        // Parsed as a `Value` first: only syntax errors can occur, and
        // their messages (dropped anyway) never quote the input.
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
            return Err(ParseError::NotObject { line });
        };
        let cell = |column: &str| match object.get(column) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.trim().to_owned()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Array(_) | Value::Object(_)) => {
                Err(ParseError::NotText { line, column: column.to_owned() })
            }
        };
        rows.push(row(source, line, cell)?);
    }
    Ok(rows)
}

/// The row at `line`, given each column's (trimmed) cell.
fn row(
    source: &HrFileSource,
    line: usize,
    cell: impl Fn(&str) -> Result<String, ParseError>,
) -> Result<Row, ParseError> {
    let column = || source.person_id.clone();
    let id = cell(&source.person_id)?;
    if id.is_empty() {
        return Err(ParseError::EmptyPersonId { line, column: column() });
    }
    let person = PersonId::parse(id).map_err(|reason| ParseError::InvalidPersonId {
        line,
        column: column(),
        reason,
    })?;
    let status = match &source.status {
        None => PersonStatus::Active,
        Some(status) => status_of(status, &cell(&status.column)?),
    };
    let mut attributes = BTreeMap::new();
    for (name, column) in &source.attributes {
        let value = cell(column)?;
        if !value.is_empty() {
            attributes.insert(name.clone(), value);
        }
    }
    let groups = match &source.groups {
        None => Vec::new(),
        Some(list) => split(&cell(&list.column)?, list.separator.as_deref().unwrap_or(";")),
    };
    let effective_at = match &source.effective_at {
        None => None,
        Some(column) => instant(&cell(column)?, source.zone()).map_err(|e| e.at(line, column))?,
    };
    Ok(Row { line, person, status, attributes, groups, effective_at })
}

/// The status `value` means: terminated, then suspended, else active
/// (compared trimmed and ignoring case).
fn status_of(column: &StatusColumn, value: &str) -> PersonStatus {
    let value = value.trim().to_lowercase();
    let listed = |values: &[String]| values.iter().any(|v| v.trim().to_lowercase() == value);
    if listed(&column.terminated) {
        PersonStatus::Terminated
    } else if listed(&column.suspended) {
        PersonStatus::Suspended
    } else {
        PersonStatus::Active
    }
}

/// The items of `cell` split on `separator`, trimmed, empties dropped.
fn split(cell: &str, separator: &str) -> Vec<String> {
    if separator.is_empty() {
        return if cell.is_empty() { Vec::new() } else { vec![cell.to_owned()] };
    }
    cell.split(separator).map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect()
}

/// Why a time cell was refused, before the line and column are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeError {
    Unparseable,
    Nonexistent(&'static str),
}

impl TimeError {
    fn at(self, line: usize, column: &str) -> ParseError {
        let column = column.to_owned();
        match self {
            Self::Unparseable => ParseError::BadTime { line, column },
            Self::Nonexistent(zone) => ParseError::NonexistentTime { line, column, zone },
        }
    }
}

/// Local date-times without offset, as HR exports write them.
const LOCAL_FORMATS: [&str; 4] =
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"];

/// The instant `text` names: RFC 3339 as written, a local date-time or the
/// start of a date in `zone`; `None` when empty.
fn instant(text: &str, zone: Tz) -> Result<Option<DateTime<Utc>>, TimeError> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.to_utc()));
    }
    if let Some(local) = LOCAL_FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(text, f).ok()) {
        // `earliest`: the first of an ambiguous pair; none in a gap.
        let at = zone.from_local_datetime(&local).earliest();
        return at.map(|at| Some(at.to_utc())).ok_or(TimeError::Nonexistent(zone.name()));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return start_of_day(date, zone).map(Some).ok_or(TimeError::Nonexistent(zone.name()));
    }
    Err(TimeError::Unparseable)
}

/// The first instant of `date` in `zone`: midnight, or where a gap that
/// swallows midnight ends (clocks going forward at 00:00, as in Chile);
/// `None` for a day the zone skipped entirely.
fn start_of_day(date: NaiveDate, zone: Tz) -> Option<DateTime<Utc>> {
    (0..24 * 60).find_map(|minute| {
        let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)?;
        zone.from_local_datetime(&date.and_time(time)).earliest().map(|at| at.to_utc())
    })
}

#[cfg(test)]
#[path = "parse/tests.rs"]
mod tests;
