//! `herald events append|read|tail|categories`, run as processes against a
//! running `herald serve`.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cli_jetstream::{ok, run};
use crate::support::{run_herald, wait_child, Finished, TestServer, HERALD, WAIT};

/// Runs a command that must fail with exit code 1; its stderr, trimmed.
fn fails(server: &TestServer, args: &[&str]) -> String {
    let done = run(server, args);
    assert_eq!(done.status.code(), Some(1), "herald {args:?}: {done:?}");
    assert!(done.stdout.is_empty(), "herald {args:?}: {done:?}");
    done.stderr.trim().to_string()
}

/// Runs `herald <args> --server <url>` with `input` on stdin.
fn run_with_stdin(server: &TestServer, args: &[&str], input: &str) -> Finished {
    let url = server.url();
    let mut child = Command::new(HERALD)
        .args(args)
        .args(["--server", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let Some(status) = wait_child(&mut child, WAIT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("herald {args:?} was still running after {WAIT:?}");
    };
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Each line of `--json` output parsed.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// Appends with `--json`; the acknowledgement.
fn append(server: &TestServer, aggregate: &str, event_type: &str, data: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "events", "append", aggregate, "--type", event_type, "--data", data, "--json",
    ];
    args.extend(extra);
    let out = ok(server, &args);
    let mut lines = json_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    lines.remove(0)
}

#[test]
fn cli_events_append_then_read_shows_the_envelope() {
    let server = TestServer::start();
    let opened = ok(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "Opened",
            "--data",
            r#"{"owner":"ada"}"#,
            "--no-events",
        ],
    );
    let opened = opened.trim();
    let prefix = "Appended Opened to accounts.a-1 at position 1 (version 1), id ";
    assert!(opened.starts_with(prefix), "{opened}");
    let opened_id = opened[prefix.len()..].to_string();
    assert_eq!(opened_id.len(), 26, "a ULID: {opened}");

    // Data from a file, pretty-printed: stored compact, keys in their order.
    let dir = crate::support::TempDir::new("events");
    let file = dir.path().join("deposit.json");
    std::fs::write(&file, "{\n  \"amount\": 100,\n  \"memo\": \"rent  due\"\n}\n").unwrap();
    let deposited = append(
        &server,
        "accounts.a-1",
        "Deposited",
        r#"{"amount":50}"#,
        &[
            "--expected-version",
            "1",
            "--schema-version",
            "2",
            "--correlation-id",
            "corr-1",
            "--causation-id",
            "cmd-9",
        ],
    );
    assert_eq!(
        (deposited["position"].as_u64(), deposited["version"].as_u64()),
        (Some(2), Some(2)),
        "{deposited}"
    );
    assert_eq!(deposited["correlationid"], "corr-1");
    let from_file = ok(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "Deposited",
            "--data-file",
            file.to_str().unwrap(),
            "--expected-version",
            "2",
            "--schema-version",
            "2",
            "--correlation-id",
            "corr-1",
            "--causation-id",
            "cmd-9",
            "--json",
        ],
    );
    let from_file = &json_lines(&from_file)[0];
    assert_eq!(
        (from_file["position"].as_u64(), from_file["version"].as_u64()),
        (Some(3), Some(3)),
        "{from_file}"
    );
    assert_eq!(from_file["correlationid"], "corr-1");
    // From stdin.
    let piped = run_with_stdin(
        &server,
        &["events", "append", "accounts.a-1", "--type", "Withdrawn"],
        "{\"amount\": 5}\n",
    );
    assert!(piped.status.success(), "{piped:?}");
    assert!(
        piped
            .stdout
            .starts_with("Appended Withdrawn to accounts.a-1 at position 4 (version 4)"),
        "{piped:?}"
    );

    let events = json_lines(&ok(&server, &["events", "read", "accounts.a-1", "--json"]));
    assert_eq!(events.len(), 4, "{events:?}");
    let first = &events[0];
    assert_eq!(first["position"], 1);
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["id"], opened_id.as_str());
    assert_eq!(first["type"], "Opened");
    assert_eq!(first["source"], "herald-cli");
    assert_eq!(first["subject"], "accounts.a-1");
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["schemaversion"], 1);
    assert_eq!(first["correlationid"], opened_id.as_str(), "a new chain");
    assert!(first.get("causationid").is_none(), "{first}");
    assert_eq!(first["data"], json!({"owner": "ada"}));
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
    let second = &events[1];
    assert_eq!(second["id"], deposited["id"]);
    assert_eq!(second["correlationid"], "corr-1");
    let third = &events[2];
    assert_eq!(third["id"], from_file["id"]);
    assert_eq!(
        (third["schemaversion"].as_u64(), third["causationid"].as_str()),
        (Some(2), Some("cmd-9"))
    );
    assert_eq!(third["data"], json!({"amount": 100, "memo": "rent  due"}));
    assert_eq!(events[3]["data"], json!({"amount": 5}));

    let table = ok(&server, &["events", "read", "accounts.a-1"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Position",
            "Time",
            "Type",
            "Id",
            "Schema",
            "Correlation",
            "Causation",
            "Data"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(row[0], "3", "{table}");
    assert_eq!(
        row[2..7],
        [
            "Deposited",
            from_file["id"].as_str().unwrap(),
            "2",
            "corr-1",
            "cmd-9"
        ]
    );
    assert!(
        lines[3].ends_with(r#"{"amount":100,"memo":"rent  due"}"#),
        "{table}"
    );
    assert!(
        lines[1].contains(&opened_id) && lines[1].ends_with(r#"{"owner":"ada"}"#),
        "{table}"
    );

    // --from is a stream position.
    let tail_of_it = json_lines(&ok(
        &server,
        &["events", "read", "accounts.a-1", "--from", "3", "--json"],
    ));
    let positions: Vec<u64> = tail_of_it
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [3, 4]);
}

#[test]
fn cli_events_stale_expected_version_is_a_conflict() {
    let server = TestServer::start();
    append(&server, "accounts.a-1", "Opened", "{}", &["--no-events"]);
    append(
        &server,
        "accounts.a-1",
        "Deposited",
        r#"{"amount":1}"#,
        &["--expected-version", "1"],
    );

    let stale = fails(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "Deposited",
            "--data",
            "{}",
            "--expected-version",
            "1",
        ],
    );
    assert_eq!(
        stale,
        "error: version conflict on accounts.a-1: expected version 1, the aggregate has moved on (it is at version 2)"
    );
    let again = fails(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "Opened",
            "--data",
            "{}",
            "--no-events",
        ],
    );
    assert_eq!(
        again,
        "error: version conflict on accounts.a-1: expected no events, the aggregate has moved on (it is at version 2)"
    );
    let missing = fails(
        &server,
        &[
            "events",
            "append",
            "accounts.new",
            "--type",
            "Deposited",
            "--data",
            "{}",
            "--expected-version",
            "3",
        ],
    );
    assert_eq!(
        missing,
        "error: version conflict on accounts.new: expected version 3, the aggregate has moved on (it has no events)"
    );
    // Nothing was stored by the refused appends.
    let events = json_lines(&ok(&server, &["events", "read", "accounts", "--json"]));
    assert_eq!(events.len(), 2, "{events:?}");
    // The current version is accepted.
    let next = append(
        &server,
        "accounts.a-1",
        "Closed",
        "null",
        &["--expected-version", "2"],
    );
    assert_eq!(next["version"], 3);
}

#[test]
fn cli_events_category_read_spans_aggregates_in_order() {
    let server = TestServer::start();
    append(&server, "accounts.a-1", "Opened", r#"{"owner":"ada"}"#, &[]);
    append(&server, "accounts.a-2", "Opened", r#"{"owner":"bob"}"#, &[]);
    append(&server, "accounts.a-1", "Deposited", r#"{"amount":7}"#, &[]);
    append(&server, "orders.o-1", "Placed", "{}", &[]);

    let all = json_lines(&ok(&server, &["events", "read", "accounts", "--json"]));
    let seen: Vec<(u64, &str, &str)> = all
        .iter()
        .map(|e| {
            (
                e["position"].as_u64().unwrap(),
                e["subject"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "accounts.a-1", "Opened"),
            (2, "accounts.a-2", "Opened"),
            (3, "accounts.a-1", "Deposited")
        ]
    );

    let table = ok(&server, &["events", "read", "accounts"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].contains("Position  Aggregate"), "{table}");
    let aggregates: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        aggregates,
        ["accounts.a-1", "accounts.a-2", "accounts.a-1"],
        "{table}"
    );

    let page = json_lines(&ok(
        &server,
        &[
            "events", "read", "accounts", "--from", "2", "--max", "1", "--json",
        ],
    ));
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0]["position"].as_u64(), page[0]["subject"].as_str()),
        (Some(2), Some("accounts.a-2"))
    );
    let one = json_lines(&ok(&server, &["events", "read", "accounts.a-1", "--json"]));
    let positions: Vec<u64> = one.iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [1, 3]);

    let empty = run(&server, &["events", "read", "accounts.a-9"]);
    assert!(empty.status.success() && empty.stdout.is_empty(), "{empty:?}");
    assert!(empty.stderr.contains("No events in accounts.a-9"), "{empty:?}");

    let categories = ok(&server, &["events", "categories"]);
    let rows: Vec<Vec<&str>> = categories
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{categories}");
    assert_eq!(rows[1], ["accounts", "ES_accounts", "3", "3"], "{categories}");
    assert_eq!(rows[2], ["orders", "ES_orders", "1", "1"], "{categories}");
    let categories = json_lines(&ok(&server, &["events", "categories", "--json"]));
    assert_eq!(categories[0]["categories"], json!(["accounts", "orders"]));
}

/// A running `herald events tail`, with its stdout lines as they come.
fn start_tail(server: &TestServer, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(HERALD)
        .args(args)
        .args(["--server", &server.url()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald events tail starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = ready_tx.send(line);
        }
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match ready_rx.recv_timeout(WAIT) {
        Ok(line) if line.starts_with("Tailing ") => {}
        other => {
            let _ = child.kill();
            panic!("tail did not start: {other:?}");
        }
    }
    (child, rx)
}

/// Waits for the process to exit by itself; its stdout lines.
fn finish(mut child: Child, lines: &mpsc::Receiver<String>) -> Vec<String> {
    let status = wait_child(&mut child, WAIT);
    if status.is_none() {
        let _ = child.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        out.push(line);
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}; {out:?}");
    out
}

#[test]
fn cli_events_tail_follows_new_events() {
    let server = TestServer::start();
    append(&server, "accounts.a-1", "Opened", "{}", &[]);

    // --new: not the event already stored, only the two appended after.
    let (child, lines) = start_tail(&server, &["events", "tail", "accounts", "--new", "--count", "2"]);
    append(&server, "accounts.a-2", "Opened", r#"{"owner":"bob"}"#, &[]);
    append(&server, "accounts.a-1", "Deposited", r#"{"amount":7}"#, &[]);
    let out = finish(child, &lines);
    assert_eq!(out.len(), 3, "a header and two events: {out:?}");
    assert!(
        out[0].contains("Position  Aggregate") && out[0].ends_with("Data"),
        "{out:?}"
    );
    let rows: Vec<Vec<&str>> = out[1..].iter().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..2], ["2", "accounts.a-2"], "{out:?}");
    assert_eq!(rows[0][3], "Opened", "{out:?}");
    assert_eq!(rows[1][..2], ["3", "accounts.a-1"], "{out:?}");
    assert!(out[2].ends_with(r#"{"amount":7}"#), "{out:?}");

    // One aggregate, history first, as JSON.
    let (child, lines) = start_tail(
        &server,
        &["events", "tail", "accounts.a-1", "--count", "3", "--json"],
    );
    append(&server, "accounts.a-2", "Deposited", "{}", &[]);
    append(&server, "accounts.a-1", "Closed", "null", &[]);
    let events = json_lines(&finish(child, &lines).join("\n"));
    let seen: Vec<(u64, &str)> = events
        .iter()
        .map(|e| (e["position"].as_u64().unwrap(), e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [(1, "Opened"), (3, "Deposited"), (5, "Closed")]);
    assert_eq!(events[2]["data"], Value::Null);
}

#[test]
fn cli_events_bad_input_is_refused_with_a_clear_message() {
    let server = TestServer::start();
    let dots = fails(
        &server,
        &["events", "append", "a.b.c", "--type", "X", "--data", "{}"],
    );
    assert_eq!(
        dots,
        "error: invalid aggregate \"a.b.c\": expected <category>.<id> with a single dot (neither may contain dots)"
    );
    let category_only = fails(
        &server,
        &["events", "append", "accounts", "--type", "X", "--data", "{}"],
    );
    assert!(
        category_only.contains("expected <category>.<id>"),
        "{category_only}"
    );
    let bad_id = fails(
        &server,
        &["events", "append", "accounts.a*", "--type", "X", "--data", "{}"],
    );
    assert!(
        bad_id.starts_with("error: invalid aggregate id: \"a*\" contains '*'"),
        "{bad_id}"
    );
    let bad_json = fails(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "X",
            "--data",
            "{oops",
        ],
    );
    assert!(
        bad_json.starts_with("error: invalid JSON data in --data: key must be a string at line 1 column 2"),
        "{bad_json}"
    );
    assert!(bad_json.ends_with("(--raw sends it as is)"), "{bad_json}");
    // Stdin is /dev/null here: empty data is not JSON.
    let no_data = fails(&server, &["events", "append", "accounts.a-1", "--type", "X"]);
    assert!(no_data.starts_with("error: no event data in stdin"), "{no_data}");
    let bad_type = fails(
        &server,
        &[
            "events",
            "append",
            "accounts.a-1",
            "--type",
            "Has Space",
            "--data",
            "{}",
        ],
    );
    assert!(
        bad_type.starts_with("error: invalid event type \"Has Space\""),
        "{bad_type}"
    );
    let read = fails(&server, &["events", "read", "a.b.c"]);
    assert!(read.contains("single dot"), "{read}");
    // Refused before anything was created.
    assert_eq!(ok(&server, &["events", "categories"]).trim(), "No categories");

    // --raw stores anything; data that is not JSON reads back as base64.
    let raw = append(&server, "accounts.a-1", "X", "{oops", &["--raw"]);
    assert_eq!(raw["position"], 1);
    let events = json_lines(&ok(&server, &["events", "read", "accounts.a-1", "--json"]));
    assert_eq!(events[0]["data_base64"], "e29vcHM=", "{:?}", events[0]);
    assert!(events[0].get("data").is_none());

    let no_server = run_herald(&["events", "read", "accounts", "--server", "nats://127.0.0.1:1"]);
    assert_eq!(no_server.status.code(), Some(1));
    assert!(
        no_server.stderr.contains("connection refused"),
        "{}",
        no_server.stderr
    );
}
