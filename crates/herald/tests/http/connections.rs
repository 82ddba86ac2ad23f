//! Limits on HTTP connections themselves: a client that trickles its
//! request head in, or leaves a keep-alive connection idle, is disconnected
//! after `--http-idle-timeout-ms`; one that keeps sending requests is not.
//! (A client that stops reading is covered in `push`.)

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::util::{within, Env};

const IDLE_TIMEOUT_MS: u64 = 1_000;
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n";

async fn connect(env: &Env) -> TcpStream {
    let address = env.server.http_url().trim_start_matches("http://").to_string();
    TcpStream::connect(address)
        .await
        .expect("connect to the HTTP port")
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    within(
        "the server closes the connection",
        stream.read_to_end(&mut received),
    )
    .await
    .expect("read");
    received
}

/// Reads one whole `/healthz` answer (its body ends the first read burst).
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut buffer = vec![0; 4096];
    let n = within("an answer", stream.read(&mut buffer)).await.expect("read");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let env = Env::start_with(&["--http-idle-timeout-ms", &IDLE_TIMEOUT_MS.to_string()]).await;
    let mut stream = connect(&env).await;
    // Requests closer together than the timeout keep the connection open.
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(IDLE_TIMEOUT_MS / 5)).await;
        }
        stream.write_all(HEALTHZ).await.unwrap();
        assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
    }
    // Idle from the last answer on.
    let idle_since = Instant::now();
    let rest = read_until_closed(&mut stream).await;
    assert!(rest.is_empty(), "nothing more was sent: {rest:?}");
    assert!(
        idle_since.elapsed() >= Duration::from_millis(IDLE_TIMEOUT_MS / 2),
        "closed after {:?}",
        idle_since.elapsed()
    );
}

#[tokio::test]
async fn a_client_that_trickles_its_request_head_is_disconnected() {
    let env = Env::start_with(&["--http-idle-timeout-ms", &IDLE_TIMEOUT_MS.to_string()]).await;
    let mut stream = connect(&env).await;
    let started = Instant::now();
    // One byte every 100 ms: each arrives well within the timeout, the
    // whole head never does.
    let trickle = async {
        for &byte in HEALTHZ.iter().cycle().take(200) {
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    within("the server stops the trickle", trickle).await;
    let closed_after = started.elapsed();
    assert!(
        closed_after < Duration::from_secs(5),
        "the connection stayed open for {closed_after:?}"
    );
    // Whatever the server still sends is not an answer to a whole request
    // (the close may also reset the connection, when a byte was in flight).
    let mut rest = Vec::new();
    let _ = within("the server closes the connection", stream.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(!text.contains("200 OK"), "{text}");
}

#[tokio::test]
async fn connections_beyond_max_connections_are_closed_at_once() {
    let env = Env::start_with(&["--max-connections", "3"]).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&env).await;
        stream.write_all(HEALTHZ).await.unwrap();
        assert!(read_answer(&mut stream).await.starts_with("HTTP/1.1 200"));
        open.push(stream);
    }
    let mut refused = connect(&env).await;
    let _ = refused.write_all(HEALTHZ).await;
    let mut rest = Vec::new();
    let _ = within("the extra connection is closed", refused.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty(),
        "it was answered: {}",
        String::from_utf8_lossy(&rest)
    );

    // Room again once one closes.
    drop(open.pop());
    let answer = within("a connection is served again", async {
        loop {
            let mut stream = connect(&env).await;
            let _ = stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n")
                .await;
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            if !answer.is_empty() {
                return String::from_utf8_lossy(&answer).into_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.lines().any(|line| line
            .strip_prefix("herald_http_connections_refused_total ")
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 1)),
        "{answer}"
    );
}
