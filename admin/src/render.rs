//! How every operator command prints: aligned text tables, or JSON.
//!
//! A [`Table`] is a list of [`Column`]s, each with its alignment (numbers
//! right, text left), a minimum width and the gap printed before it. With
//! fixed widths (the default) a cell is padded to its column's width and a
//! longer cell pushes the rest of its line along, as `format!("{:<24}")`
//! does: the line of one row never depends on another row, so rows can be
//! printed as they come. With [`Table::fit`] every column is as wide as its
//! longest cell and line ends are trimmed, for reports read as a whole
//! (`status`). Widths count characters, not bytes.
//!
//! `--json` output is one pretty-printed document ([`json`]); reports
//! written as they are found are JSON Lines ([`json_line`]).

use std::io::{self, Write};

use serde::Serialize;

/// Where a cell sits in its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// One column of a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The header cell.
    pub header: &'static str,
    /// How cells align.
    pub align: Align,
    /// The narrowest the column is.
    pub width: usize,
    /// Printed before the column (nothing before the first one, usually).
    pub gap: &'static str,
}

impl Column {
    /// A left-aligned column at least `width` wide, after one space.
    pub const fn left(header: &'static str, width: usize) -> Self {
        Self { header, align: Align::Left, width, gap: " " }
    }

    /// A right-aligned column at least `width` wide, after one space.
    pub const fn right(header: &'static str, width: usize) -> Self {
        Self { header, align: Align::Right, width, gap: " " }
    }

    /// The same column after `gap` instead of one space.
    pub const fn after(self, gap: &'static str) -> Self {
        Self { gap, ..self }
    }
}

/// Columns and how to lay them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    columns: Vec<Column>,
    fit: bool,
}

impl Table {
    /// A table of fixed-width `columns`.
    pub fn new(columns: impl Into<Vec<Column>>) -> Self {
        Self { columns: columns.into(), fit: false }
    }

    /// Columns as wide as their longest cell (header included), line ends trimmed.
    pub fn fit(self) -> Self {
        Self { fit: true, ..self }
    }

    /// The header line, then one line per row.
    pub fn write(&self, rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
        let widths = self.widths(rows);
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        out.write_all(self.line(&header, &widths).as_bytes())?;
        self.write_rows_with(rows, &widths, out)
    }

    /// One line per row, without the header.
    pub fn write_rows(&self, rows: &[Vec<String>], out: &mut impl Write) -> io::Result<()> {
        self.write_rows_with(rows, &self.widths(rows), out)
    }

    /// [`Table::write`] into a string.
    pub fn render(&self, rows: &[Vec<String>]) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _written = self.write(rows, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn write_rows_with(
        &self,
        rows: &[Vec<String>],
        widths: &[usize],
        out: &mut impl Write,
    ) -> io::Result<()> {
        for row in rows {
            out.write_all(self.line(row, widths).as_bytes())?;
        }
        Ok(())
    }

    fn widths(&self, rows: &[Vec<String>]) -> Vec<usize> {
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.width).collect();
        if self.fit {
            for (width, column) in widths.iter_mut().zip(&self.columns) {
                *width = (*width).max(column.header.chars().count());
            }
            for row in rows {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        widths
    }

    fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let mut line = String::new();
        for ((column, cell), width) in self.columns.iter().zip(cells).zip(widths) {
            line.push_str(column.gap);
            let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
            match column.align {
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&pad);
                }
                Align::Right => {
                    line.push_str(&pad);
                    line.push_str(cell);
                }
            }
        }
        if self.fit {
            line.truncate(line.trim_end().len());
        }
        line.push('\n');
        line
    }
}

/// `value` as one pretty-printed JSON document and a newline.
pub fn json(value: &impl Serialize, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n")
}

/// `value` as one JSON line.
pub fn json_line(value: &impl Serialize, out: &mut (impl Write + ?Sized)) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter().map(|r| r.iter().map(|c| (*c).to_owned()).collect()).collect()
    }

    #[test]
    fn fixed_widths_pad_like_format_and_let_long_cells_overflow() {
        let table =
            Table::new([Column::left("app", 6).after(""), Column::right("n", 4), Column::left("note", 0)]);
        let text = table.render(&rows(&[&["git", "12", "ok"], &["a-long-app", "3", ""]]));
        let expected = format!(
            "{:<6} {:>4} {}\n{:<6} {:>4} {}\n{:<6} {:>4} {}\n",
            "app", "n", "note", "git", "12", "ok", "a-long-app", "3", ""
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn fitted_columns_take_the_longest_cell_and_trim_line_ends() {
        let table = Table::new([
            Column::left("APP", 0).after(""),
            Column::right("N", 0).after("  "),
            Column::left("X", 0).after("  "),
        ])
        .fit();
        let text = table.render(&rows(&[&["git", "12345", "é"], &["crm", "1", ""]]));
        assert_eq!(text, "APP      N  X\ngit  12345  é\ncrm      1\n");
    }

    #[test]
    fn json_is_one_document_or_one_line() {
        let mut out = Vec::new();
        json(&serde_json::json!({"a": 1}), &mut out).expect("written");
        json_line(&serde_json::json!({"a": 1}), &mut out).expect("written");
        assert_eq!(String::from_utf8(out).expect("utf-8"), "{\n  \"a\": 1\n}\n{\"a\":1}\n");
    }
}
