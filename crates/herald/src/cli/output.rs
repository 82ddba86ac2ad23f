//! Output helpers of the JetStream commands: aligned tables and key/value
//! blocks for people, JSON for machines, and error messages that say what
//! was not found.

use std::fmt::{Display, Write as _};
use std::time::Duration;

use anyhow::anyhow;
use herald_client::jetstream::Timestamp;
use herald_client::{Error, Headers};
use herald_protocol::jetstream::time::format_go_duration;

/// Where to connect and how to print; shared by `stream`, `consumer`, `kv`.
#[derive(Debug, clap::Args)]
pub struct JsCommon {
    /// Server URL.
    #[arg(long, short = 's', env = "HERALD_SERVER", default_value = super::SERVER_DEFAULT, global = true)]
    pub server: String,
    /// Print JSON instead of text (the JetStream API's own JSON where there is one).
    #[arg(long, global = true)]
    pub json: bool,
}

/// An SDK error as a message for people: `stream not found: ORDERS (10059)`.
pub fn js_error(err: Error, what: impl Display) -> anyhow::Error {
    match err {
        Error::JetStream(api) => anyhow!("{}: {what} ({})", api.description, api.err_code),
        Error::JetStreamNotEnabled { .. } => {
            anyhow!("JetStream is not enabled on the server (no responders on $JS.API)")
        }
        Error::Timeout => anyhow!("no reply from the server in time: {what}"),
        Error::InvalidArgument(text) => anyhow!(text),
        Error::JetStreamStatus { code, description } => anyhow!("{description}: {what} (status {code})"),
        other => anyhow!("{other}: {what}"),
    }
}

/// A table with a header row; columns are padded to their widest cell,
/// numeric columns right-aligned.
pub struct Table {
    header: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns whose name starts with `>` are numeric (the `>` is dropped).
    pub fn new(columns: &[&'static str]) -> Table {
        Table {
            header: columns.iter().map(|c| c.trim_start_matches('>')).collect(),
            numeric: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                if self.numeric[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < row.len() {
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `title` then `  label:  value` lines, values aligned.
pub fn fields(title: &str, fields: &[(&str, String)]) -> String {
    let width = fields.iter().map(|(l, _)| l.len() + 1).max().unwrap_or(0);
    let mut out = format!("{title}\n");
    for (label, value) in fields {
        let _ = writeln!(out, "  {:<width$}  {value}", format!("{label}:"));
    }
    out
}

/// `-1` (and other negatives) as `unlimited`.
pub fn limit(value: i64) -> String {
    if value < 0 {
        "unlimited".into()
    } else {
        value.to_string()
    }
}

/// A byte limit: `unlimited` or `1.5 MiB`.
pub fn byte_limit(value: i64) -> String {
    match u64::try_from(value) {
        Ok(v) => bytes(v),
        Err(_) => "unlimited".into(),
    }
}

/// Nanoseconds as a Go duration (`1m30s`), `0` as `zero_text`.
pub fn nanos(value: i64, zero_text: &str) -> String {
    if value <= 0 {
        zero_text.into()
    } else {
        format_go_duration(value)
    }
}

/// `512 B`, `1.5 KiB`, `3.0 MiB`…
pub fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    let mut size = value as f64 / 1024.0;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    format!("{size:.1} {}", UNITS[unit])
}

/// A time, or `never` for Go's zero time.
pub fn time(value: &Timestamp) -> String {
    if value.is_go_zero() {
        "never".into()
    } else {
        value.to_rfc3339()
    }
}

/// A duration as a Go duration text.
pub fn duration(value: Duration) -> String {
    format_go_duration(i64::try_from(value.as_nanos()).unwrap_or(i64::MAX))
}

/// Headers as indented `Name: value` lines.
pub fn header_lines(headers: Option<&Headers>) -> String {
    let mut out = String::new();
    if let Some(headers) = headers {
        for (name, value) in headers.iter() {
            let _ = writeln!(out, "{name}: {value}");
        }
    }
    out
}

/// A JSON string literal.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON object written field by field.
#[derive(Default)]
pub struct JsonObject(String);

impl JsonObject {
    pub fn new() -> JsonObject {
        JsonObject::default()
    }

    fn key(&mut self, key: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push_str(&json_string(key));
        self.0.push(':');
    }

    pub fn str(mut self, key: &str, value: &str) -> JsonObject {
        self.key(key);
        self.0.push_str(&json_string(value));
        self
    }

    pub fn num(mut self, key: &str, value: impl Into<i128>) -> JsonObject {
        self.key(key);
        self.0.push_str(&value.into().to_string());
        self
    }

    /// A value that is already JSON.
    pub fn raw(mut self, key: &str, json: &str) -> JsonObject {
        self.key(key);
        self.0.push_str(json);
        self
    }

    /// Headers as `{"Name":["value",…]}`, as Go's `nats.Header` marshals.
    pub fn headers(self, key: &str, headers: Option<&Headers>) -> JsonObject {
        let mut grouped: Vec<(&str, Vec<String>)> = Vec::new();
        for (name, value) in headers.into_iter().flat_map(Headers::iter) {
            match grouped.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(json_string(value)),
                None => grouped.push((name, vec![json_string(value)])),
            }
        }
        let mut object = JsonObject::new();
        for (name, values) in grouped {
            object = object.raw(name, &format!("[{}]", values.join(",")));
        }
        self.raw(key, &object.finish())
    }

    pub fn finish(mut self) -> String {
        if self.0.is_empty() {
            self.0.push('{');
        }
        self.0.push('}');
        self.0
    }
}

/// Writes to stdout; when stdout was closed (e.g. piped into `head`), ends
/// the process quietly instead of panicking like `print!`.
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// `print!` through [`write_stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` through [`write_stdout`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Writes API JSON to stdout, with a newline.
pub fn print_json(json: &[u8]) {
    outln!("{}", String::from_utf8_lossy(json));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["Name", ">Messages", "Subjects"]);
        table.row(vec!["ORDERS".into(), "5".into(), "orders.>".into()]);
        table.row(vec!["A".into(), "12345".into(), "a, b".into()]);
        assert_eq!(
            table.render(),
            "Name    Messages  Subjects\nORDERS         5  orders.>\nA          12345  a, b\n"
        );
    }

    #[test]
    fn json_objects() {
        let mut headers = Headers::new();
        headers.append("A", "1");
        headers.append("A", "2\"");
        let json = JsonObject::new()
            .str("s", "x\ny")
            .num("n", 5u64)
            .headers("h", Some(&headers))
            .headers("none", None)
            .finish();
        assert_eq!(json, r#"{"s":"x\ny","n":5,"h":{"A":["1","2\""]},"none":{}}"#);
        assert_eq!(json_string("\u{1}"), r#""\u0001""#);
    }

    #[test]
    fn sizes_and_limits() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        assert_eq!(limit(-1), "unlimited");
        assert_eq!(byte_limit(2048), "2.0 KiB");
        assert_eq!(nanos(0, "unlimited"), "unlimited");
        assert_eq!(nanos(90_000_000_000, "-"), "1m30s");
        let err = js_error(
            Error::JetStream(herald_protocol::jetstream::ApiError::new(
                herald_protocol::jetstream::ApiErrorCode::StreamNotFound,
            )),
            "ORDERS",
        );
        assert_eq!(err.to_string(), "stream not found: ORDERS (10059)");
    }
}
