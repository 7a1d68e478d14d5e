//! Output: tables, key/value details, JSON and CSV. Data goes to stdout, messages to
//! stderr (see [`note`]). Table cells, details values, CSV cells and messages may hold
//! other people's text, so their control characters are shown escaped ([`crate::safe`]);
//! JSON escapes them by itself.

use crate::error::Error;
use crate::safe;
use serde::Serialize;
use std::io::Write;

/// How data is printed (`-o/--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people, times in local time.
    #[default]
    Table,
    /// JSON for scripts, times in RFC 3339.
    Json,
    /// Comma-separated values (`usage`, and any other table).
    Csv,
    /// A printable, self-contained HTML page (`invoices show`, `admin report`); elsewhere a
    /// table.
    Html,
}

/// Writes `text` to stdout. A closed pipe (`berth jobs | head`) is not an error.
pub fn emit(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io(
            crate::error::tr(berth_i18n::cli::Msg::WritingStdout),
            e,
        )),
        _ => Ok(()),
    }
}

/// Prints a message for people on stderr, control characters escaped.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("{}", safe::text(&text.to_string()));
}

/// Renders a value as pretty JSON with a trailing newline.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // Serialising plain data structures cannot fail.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    s.push('\n');
    s
}

/// Prints a value as JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), Error> {
    emit(&to_json(value))
}

/// Columns of text.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers (printed in upper case).
    pub fn new<I, S>(headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Aligned columns separated by two spaces, without trailing blanks.
    pub fn render(&self) -> String {
        let header: Vec<String> = self.headers.iter().map(|h| header_label(h)).collect();
        let rows: Vec<Vec<String>> = std::iter::once(header)
            .chain(
                self.rows
                    .iter()
                    .map(|r| r.iter().map(|c| safe::cell(c)).collect()),
            )
            .collect();
        let mut widths = vec![0; self.headers.len()];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(display_width(cell));
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                if i + 1 < row.len() {
                    line.extend(std::iter::repeat_n(' ', widths[i] - display_width(cell)));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// RFC 4180 CSV with a header row of the column names as given.
    pub fn render_csv(&self) -> String {
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let cells: Vec<String> = row.iter().map(|c| csv_cell(&safe::csv(c))).collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }

    /// Prints the table (or CSV); an empty table prints `empty` on stderr instead.
    pub fn print(&self, format: Format, empty: &str) -> Result<(), Error> {
        match format {
            Format::Csv => emit(&self.render_csv()),
            _ if self.is_empty() => {
                note(empty);
                Ok(())
            }
            _ => emit(&self.render()),
        }
    }
}

/// A column's header as people read it: the key's words in the run's language, in upper
/// case (the key itself stays the CSV column name).
fn header_label(key: &str) -> String {
    berth_i18n::cli::header(key)
        .map_or(key, |m| berth_i18n::t(crate::error::lang(), m))
        .to_uppercase()
}

/// A `show` label in the run's language.
fn field_label(key: &str) -> &str {
    berth_i18n::cli::label(key).map_or(key, |m| berth_i18n::t(crate::error::lang(), m))
}

/// Key/value lines for one object (`show` commands).
#[derive(Debug, Clone, Default)]
pub struct Details {
    fields: Vec<(String, String)>,
}

impl Details {
    /// No fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field; a multi-line value is indented under the key.
    pub fn field(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fields.push((key.to_owned(), value.into()));
        self
    }

    /// Renders `Key:  value` lines with values aligned.
    pub fn render(&self) -> String {
        let width = self
            .fields
            .iter()
            .map(|(k, _)| display_width(k) + 1)
            .max()
            .unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.fields {
            let label = format!("{}:", field_label(key));
            let pad = width - display_width(&label) + 2;
            let value = safe::text(value);
            let mut lines = value.lines();
            let first = lines.next().unwrap_or("");
            let line = format!("{label}{}{first}", " ".repeat(pad));
            out.push_str(line.trim_end());
            out.push('\n');
            for more in lines {
                out.push_str(&" ".repeat(width + 2));
                out.push_str(more);
                out.push('\n');
            }
        }
        out
    }

    /// Prints the details as a table or as CSV rows of `key,value`.
    pub fn print(&self, format: Format) -> Result<(), Error> {
        match format {
            Format::Csv => {
                let mut t = Table::new(["field", "value"]);
                for (k, v) in &self.fields {
                    t.row([k.clone(), v.clone()]);
                }
                emit(&t.render_csv())
            }
            _ => emit(&self.render()),
        }
    }
}

fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

/// Terminal columns a string takes: East Asian wide characters (Hangul, CJK) take two.
pub fn display_width(s: &str) -> usize {
    s.chars().map(|c| if is_wide(c) { 2 } else { 1 }).sum()
}

fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_without_trailing_blanks() {
        let mut t = Table::new(["id", "state", "reason"]);
        t.row(["a1", "running", ""]);
        t.row(["b22222", "pending", "waiting for 2 free devices"]);
        assert_eq!(
            t.render(),
            "ID      STATE    REASON\n\
             a1      running\n\
             b22222  pending  waiting for 2 free devices\n"
        );
    }

    #[test]
    fn tables_pad_short_rows_and_flatten_newlines() {
        let mut t = Table::new(["a", "b"]);
        t.row(["x"]);
        t.row(["line one\nline two", "z"]);
        assert_eq!(
            t.render(),
            "A                  B\nx\nline one line two  z\n"
        );
    }

    #[test]
    fn wide_characters_take_two_columns() {
        assert_eq!(display_width("부산"), 4);
        assert_eq!(display_width("busan"), 5);
        let mut t = Table::new(["org", "n"]);
        t.row(["부산", "1"]);
        t.row(["acme-ai", "2"]);
        assert_eq!(t.render(), "ORG      N\n부산     1\nacme-ai  2\n");
    }

    #[test]
    fn empty_tables_render_the_header() {
        let t = Table::new(["id"]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "ID\n");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(["org", "note"]);
        t.row(["acme", "a,b"]);
        t.row(["x", "say \"hi\""]);
        assert_eq!(
            t.render_csv(),
            "org,note\r\nacme,\"a,b\"\r\nx,\"say \"\"hi\"\"\"\r\n"
        );
    }

    #[test]
    fn untrusted_text_is_escaped_in_tables_details_and_csv() {
        let mut t = Table::new(["name", "reason"]);
        t.row(["evil\u{1b}[2J", "bell\u{7}\nnext"]);
        let text = t.render();
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(
            text.contains(r"evil\x1b[2J") && text.contains(r"bell\x07 next"),
            "{text}"
        );
        let csv = t.render_csv();
        assert!(
            csv.contains(r"evil\x1b[2J") && !csv.contains('\u{1b}'),
            "{csv:?}"
        );
        let d = Details::new().field("Command", "printf '\u{1b}]0;pwned\u{7}'");
        assert_eq!(d.render(), "Command:  printf '\\x1b]0;pwned\\x07'\n");
    }

    #[test]
    fn details_align_values_and_indent_continuations() {
        let d = Details::new()
            .field("ID", "r1")
            .field("Devices", "GPU-1\nGPU-2")
            .field("Reason", "");
        assert_eq!(
            d.render(),
            "ID:       r1\nDevices:  GPU-1\n          GPU-2\nReason:\n"
        );
    }
}
