//! The JetStream commands of the binary: `herald stream`, `consumer`, `kv`,
//! run as processes against a running `herald serve`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{run_herald, wait_child, Finished, TestServer, HERALD, WAIT};

/// Runs `herald <args> --server <url>` and requires success.
pub(crate) fn ok(server: &TestServer, args: &[&str]) -> String {
    let done = run(server, args);
    assert!(
        done.status.success(),
        "herald {args:?} failed ({:?}); stdout: {}\nstderr: {}",
        done.status,
        done.stdout,
        done.stderr
    );
    done.stdout
}

/// Runs `herald <args> --server <url>`.
pub(crate) fn run(server: &TestServer, args: &[&str]) -> Finished {
    let url = server.url();
    let mut all = args.to_vec();
    all.extend(["--server", url.as_str()]);
    run_herald(&all)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn cli_stream_add_ls_info_get_purge_rm() {
    let server = TestServer::start();
    let out = ok(
        &server,
        &[
            "stream",
            "add",
            "ORDERS",
            "--subjects",
            "orders.>,returns.*",
            "--storage",
            "memory",
            "--max-age",
            "1h",
            "--max-msgs-per-subject",
            "10",
            "--dupe-window",
            "30s",
            "--allow-direct",
            "--sync",
            "always",
        ],
    );
    assert!(out.starts_with("Stream ORDERS created"), "{out}");
    assert!(out.contains("Max age:") && out.contains("1h0m0s"), "{out}");
    ok(&server, &["stream", "add", "AUDIT"]);

    let ls = ok(&server, &["stream", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines.len(), 3, "{ls}");
    assert!(
        lines[0].starts_with("Name") && lines[0].contains("Messages"),
        "{ls}"
    );
    assert!(
        lines[1].starts_with("AUDIT ") && lines[2].starts_with("ORDERS "),
        "{ls}"
    );
    assert!(
        lines[2].contains("orders.>, returns.*") && lines[2].contains("memory"),
        "{ls}"
    );

    let info = json(&ok(&server, &["stream", "info", "ORDERS", "--json"]));
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.stream_info_response");
    assert_eq!(info["config"]["name"], "ORDERS");
    assert_eq!(
        info["config"]["subjects"],
        serde_json::json!(["orders.>", "returns.*"])
    );
    assert_eq!(info["config"]["storage"], "memory");
    assert_eq!(info["config"]["max_age"], 3_600_000_000_000i64);
    assert_eq!(info["config"]["max_msgs_per_subject"], 10);
    assert_eq!(info["config"]["duplicate_window"], 30_000_000_000i64);
    assert_eq!(info["config"]["allow_direct"], true);
    assert_eq!(info["config"]["metadata"]["herald.sync"], "always");
    assert_eq!(info["state"]["messages"], 0);

    ok(&server, &["pub", "orders.new", "hello", "-H", "Trace:t1"]);
    ok(&server, &["pub", "orders.new", "again"]);
    ok(&server, &["pub", "returns.x", "back"]);
    let info = json(&ok(&server, &["stream", "info", "ORDERS", "--json"]));
    assert_eq!(info["state"]["messages"], 3);

    let get = ok(&server, &["stream", "get", "ORDERS", "1"]);
    assert!(get.starts_with("Message 1 in stream ORDERS"), "{get}");
    assert!(get.contains("orders.new") && get.contains("Trace: t1"), "{get}");
    assert!(get.trim_end().ends_with("hello"), "{get}");
    let last = json(&ok(
        &server,
        &["stream", "get", "ORDERS", "--last-for", "orders.new", "--json"],
    ));
    assert_eq!(last["message"]["seq"], 2);
    assert_eq!(last["message"]["subject"], "orders.new");
    assert_eq!(last["message"]["data"], "YWdhaW4="); // "again"

    let purge = ok(&server, &["stream", "purge", "ORDERS", "--subject", "orders.new"]);
    assert!(purge.contains("Purged 2 message(s) on orders.new"), "{purge}");
    let purge = json(&ok(&server, &["stream", "purge", "ORDERS", "--json"]));
    assert_eq!(
        (purge["success"].as_bool(), purge["purged"].as_u64()),
        (Some(true), Some(1))
    );

    assert!(ok(&server, &["stream", "rm", "ORDERS"]).contains("Stream ORDERS deleted"));
    let ls = json(&ok(&server, &["stream", "ls", "--json"]));
    assert_eq!(ls["total"], 1);
    assert_eq!(ls["streams"][0]["config"]["name"], "AUDIT");
}

#[test]
fn cli_consumer_add_ls_next_acks_and_info() {
    let server = TestServer::start();
    ok(&server, &["stream", "add", "JOBS", "--subjects", "jobs.>"]);
    for job in ["one", "two", "three"] {
        ok(&server, &["pub", &format!("jobs.{job}"), &format!("job {job}")]);
    }
    let add = ok(
        &server,
        &[
            "consumer",
            "add",
            "JOBS",
            "worker",
            "--filter",
            "jobs.>",
            "--ack-wait",
            "30s",
            "--max-deliver",
            "5",
            "--dead-letter",
            "dlq.jobs",
        ],
    );
    assert!(add.starts_with("Consumer worker on stream JOBS created"), "{add}");
    assert!(add.contains("herald.dead_letter_subject=dlq.jobs"), "{add}");
    let ls = ok(&server, &["consumer", "ls", "JOBS"]);
    let row = ls.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("worker") && row.contains("pull") && row.contains("explicit"),
        "{ls}"
    );

    let next = run(
        &server,
        &[
            "consumer", "next", "JOBS", "worker", "--count", "2", "--wait", "2s",
        ],
    );
    assert!(next.status.success(), "{next:?}");
    assert!(
        next.stdout.contains("[#1] JOBS > worker  stream seq 1"),
        "{}",
        next.stdout
    );
    assert!(
        next.stdout.contains("job one") && next.stdout.contains("job two"),
        "{}",
        next.stdout
    );
    assert!(!next.stdout.contains("job three"), "{}", next.stdout);
    assert!(
        next.stderr.contains("acknowledged 2 message(s)"),
        "{}",
        next.stderr
    );

    // --no-ack leaves the third pending for redelivery; --json prints one object per message.
    let line = ok(
        &server,
        &[
            "consumer", "next", "JOBS", "worker", "--no-ack", "--wait", "2s", "--json",
        ],
    );
    let message = json(&line);
    assert_eq!(message["subject"], "jobs.three");
    assert_eq!(
        (message["stream_seq"].as_u64(), message["delivered"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(message["data"], "job three");

    let info = json(&ok(&server, &["consumer", "info", "JOBS", "worker", "--json"]));
    assert_eq!(info["type"], "io.nats.jetstream.api.v1.consumer_info_response");
    assert_eq!(info["ack_floor"]["stream_seq"], 2);
    assert_eq!(info["num_ack_pending"], 1);
    assert_eq!(
        info["config"]["metadata"]["herald.dead_letter_subject"],
        "dlq.jobs"
    );

    let empty = run(
        &server,
        &["consumer", "next", "JOBS", "worker", "--wait", "300ms"],
    );
    assert!(empty.status.success() && empty.stdout.is_empty(), "{empty:?}");
    assert!(empty.stderr.contains("No messages available"), "{}", empty.stderr);
    assert!(ok(&server, &["consumer", "rm", "JOBS", "worker"]).contains("deleted"));
    assert!(ok(&server, &["consumer", "ls", "JOBS"]).contains("No consumers"));
}

#[test]
fn cli_kv_put_get_ls_del() {
    let server = TestServer::start();
    let put = run(&server, &["kv", "put", "cfg", "mode", "fast", "--history", "5"]);
    assert!(put.status.success(), "{put:?}");
    assert_eq!(put.stdout.trim(), "cfg > mode = fast (revision 1)");
    assert!(
        put.stderr.contains("Created bucket cfg (history 5)"),
        "{}",
        put.stderr
    );
    ok(&server, &["kv", "put", "cfg", "mode", "safe"]);
    ok(&server, &["kv", "put", "cfg", "a.b", "nested"]);
    let info = json(&ok(&server, &["stream", "info", "KV_cfg", "--json"]));
    assert_eq!(info["config"]["max_msgs_per_subject"], 5);
    assert_eq!(info["config"]["subjects"], serde_json::json!(["$KV.cfg.>"]));

    assert_eq!(ok(&server, &["kv", "get", "cfg", "mode", "--raw"]), "safe\n");
    let entry = json(&ok(&server, &["kv", "get", "cfg", "mode", "--json"]));
    assert_eq!(
        (entry["revision"].as_u64(), entry["value"].as_str()),
        (Some(2), Some("safe"))
    );
    assert_eq!(ok(&server, &["kv", "ls", "cfg"]), "a.b\nmode\n");

    assert_eq!(
        ok(&server, &["kv", "del", "cfg", "mode"]).trim(),
        "Deleted cfg > mode"
    );
    let gone = run(&server, &["kv", "get", "cfg", "mode"]);
    assert_eq!(gone.status.code(), Some(1), "{gone:?}");
    assert_eq!(gone.stderr.trim(), "error: key not found: cfg > mode");
    assert_eq!(ok(&server, &["kv", "ls", "cfg"]), "a.b\n");
    let buckets = json(&ok(&server, &["kv", "ls", "--json"]));
    assert_eq!(buckets["buckets"], serde_json::json!(["cfg"]));
}

#[test]
fn cli_kv_watch_prints_current_values_then_changes() {
    let server = TestServer::start();
    ok(&server, &["kv", "put", "cfg", "a", "1"]);
    let url = server.url();
    let mut child = Command::new(HERALD)
        .args(["kv", "watch", "cfg", "--count", "3", "--server", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald kv watch starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.starts_with("Watching bucket cfg") {
                let _ = ready_tx.send(());
            }
        }
    });
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    if ready_rx.recv_timeout(WAIT).is_err() {
        let _ = child.kill();
        panic!("kv watch did not start");
    }
    ok(&server, &["kv", "put", "cfg", "b", "2"]);
    ok(&server, &["kv", "del", "cfg", "a"]);
    let status = wait_child(&mut child, WAIT);
    if status.is_none() {
        let _ = child.kill();
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        lines.push(line);
    }
    assert!(status.is_some_and(|s| s.success()), "{status:?}; {lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].contains("PUT cfg > a: 1 (revision 1)"), "{lines:?}");
    assert!(lines[1].contains("PUT cfg > b: 2 (revision 2)"), "{lines:?}");
    assert!(lines[2].contains("DEL cfg > a (revision 3)"), "{lines:?}");
}

#[test]
fn cli_jetstream_errors_exit_1_with_a_clear_message() {
    let server = TestServer::start();
    let missing = run(&server, &["stream", "info", "ORDERS"]);
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert_eq!(missing.stderr.trim(), "error: stream not found: ORDERS (10059)");
    assert!(missing.stdout.is_empty());

    ok(&server, &["stream", "add", "ORDERS", "--subjects", "orders.>"]);
    let overlap = run(&server, &["stream", "add", "OTHER", "--subjects", "orders.new"]);
    assert_eq!(overlap.status.code(), Some(1), "{overlap:?}");
    assert!(overlap.stderr.contains("(10065)"), "{}", overlap.stderr);

    let consumer = run(&server, &["consumer", "info", "ORDERS", "nope"]);
    assert_eq!(consumer.status.code(), Some(1));
    assert_eq!(
        consumer.stderr.trim(),
        "error: consumer not found: ORDERS > nope (10014)"
    );

    let message = run(&server, &["stream", "get", "ORDERS", "7"]);
    assert_eq!(message.status.code(), Some(1));
    assert!(message.stderr.contains("(10037)"), "{}", message.stderr);

    let bad_name = run(&server, &["stream", "add", "a.b"]);
    assert_eq!(bad_name.status.code(), Some(1));
    assert_eq!(bad_name.stderr.trim(), "error: invalid stream name \"a.b\"");

    let bucket = run(&server, &["kv", "get", "nobucket", "k"]);
    assert_eq!(bucket.status.code(), Some(1));
    assert_eq!(bucket.stderr.trim(), "error: bucket not found: nobucket");

    let no_server = run_herald(&["stream", "ls", "--server", "nats://127.0.0.1:1"]);
    assert_eq!(no_server.status.code(), Some(1));
    assert!(
        no_server.stderr.contains("connection refused"),
        "{}",
        no_server.stderr
    );
}
