//! The client commands of the binary: `herald pub`, `sub`, `req`, `reply`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{run_herald, wait_child, TestServer, HERALD, WAIT};

/// A long-running client command whose stderr line tells it is ready.
struct Background {
    child: Child,
    stdout: mpsc::Receiver<String>,
}

impl Background {
    fn start(args: &[&str], ready_prefix: &str) -> Background {
        let mut child = Command::new(HERALD)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (ready_tx, ready_rx) = mpsc::channel();
        let prefix = ready_prefix.to_string();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if line.starts_with(&prefix) {
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
        ready_rx.recv_timeout(WAIT).expect("client command became ready");
        Background { child, stdout: rx }
    }

    /// Stdout lines until the process exits (bounded by WAIT).
    fn finish(mut self) -> Vec<String> {
        let status = wait_child(&mut self.child, WAIT).expect("command exits by itself");
        assert!(status.success(), "exit status {status:?}");
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut lines = Vec::new();
        while let Ok(line) = self
            .stdout
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cli_pub_reaches_cli_sub_with_headers_and_counter() {
    let server = TestServer::start();
    let url = server.url();
    let sub = Background::start(
        &["sub", "cli.>", "--count", "3", "--server", &url],
        "Listening on",
    );
    let published = run_herald(&[
        "pub",
        "cli.orders",
        "order {{i}}",
        "--header",
        "Trace-Id:abc",
        "--count",
        "3",
        "--server",
        &url,
    ]);
    assert!(published.status.success(), "{}", published.stderr);
    assert_eq!(published.stdout.trim(), "Published 3 message(s) to cli.orders");
    let lines = sub.finish();
    let text = lines.join("\n");
    for i in 1..=3 {
        assert!(
            text.contains(&format!("[#{i}] Received on \"cli.orders\"")),
            "{text}"
        );
        assert!(text.contains(&format!("order {i}")), "{text}");
    }
    assert_eq!(text.matches("Trace-Id: abc").count(), 3, "{text}");
}

#[test]
fn cli_queue_subscribers_share_the_messages() {
    let server = TestServer::start();
    let url = server.url();
    let a = Background::start(
        &["sub", "cli.jobs", "--queue", "w", "--server", &url],
        "Listening on",
    );
    let b = Background::start(
        &["sub", "cli.jobs", "--queue", "w", "--server", &url],
        "Listening on",
    );
    let published = run_herald(&["pub", "cli.jobs", "job {{i}}", "--count", "40", "--server", &url]);
    assert!(published.status.success(), "{}", published.stderr);
    let collect = |bg: &Background| {
        let mut got = Vec::new();
        while let Ok(line) = bg.stdout.recv_timeout(Duration::from_millis(500)) {
            if let Some(job) = line.strip_prefix("job ") {
                got.push(job.parse::<u32>().unwrap());
            }
        }
        got
    };
    let (got_a, got_b) = (collect(&a), collect(&b));
    let mut all: Vec<u32> = got_a.iter().chain(&got_b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>(), "each job exactly once");
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both members got work: {got_a:?} {got_b:?}"
    );
}

#[test]
fn cli_req_gets_reply_and_reports_no_responders() {
    let server = TestServer::start();
    let url = server.url();
    let replier = Background::start(
        &["reply", "cli.time", "noon", "--count", "1", "--server", &url],
        "Answering",
    );
    let answered = run_herald(&["req", "cli.time", "", "--server", &url]);
    assert!(answered.status.success(), "{}", answered.stderr);
    assert_eq!(answered.stdout.trim(), "noon");
    replier.finish();

    let started = Instant::now();
    let nobody = run_herald(&["req", "cli.nobody", "x", "--timeout", "4s", "--server", &url]);
    assert!(!nobody.status.success());
    assert!(
        nobody.stderr.contains("no responders on cli.nobody"),
        "{}",
        nobody.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no-responders is not a timeout"
    );
}

#[test]
fn cli_reports_a_server_that_is_down() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("nats://127.0.0.1:{port}");
    for args in [
        vec!["pub", "a", "b"],
        vec!["sub", "a"],
        vec!["req", "a", "b"],
        vec!["reply", "a", "b"],
    ] {
        let mut full = args.clone();
        full.extend(["--server", &url]);
        let started = Instant::now();
        let run = run_herald(&full);
        assert!(!run.status.success(), "{args:?}");
        assert!(
            run.stderr.contains(&format!("cannot connect to {url}")) && run.stderr.contains("herald serve"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(started.elapsed() < Duration::from_secs(5), "{args:?} fails fast");
    }
}
