//! Damaged data directories: a torn or corrupt tail of the last segment
//! file. The server must start, keep every intact record, say what it
//! dropped, and go on accepting messages. Herald only (the files are
//! Herald's own format).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;

use async_nats::jetstream::stream::Config;

use crate::server::is_nats_server;
use crate::util::*;

const MESSAGES: u64 = 100;

/// The newest segment file of stream `name`.
fn last_segment(env: &Env, name: &str) -> PathBuf {
    let dir = env
        .server
        .data_dir()
        .join("jetstream/streams")
        .join(name)
        .join("msgs");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment file")
}

async fn stream_with_messages(name: &str) -> Env {
    let env = Env::start().await;
    env.stream(Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        ..Default::default()
    })
    .await;
    for i in 1..=MESSAGES {
        let ack = env
            .publish(&format!("{}.m", name.to_lowercase()), format!("message {i}"))
            .await;
        assert_eq!(ack.sequence, i);
    }
    env
}

/// Restarts, then checks messages 1..=intact and that the log names the damage.
async fn restart_and_check(env: &mut Env, name: &str, intact: u64) {
    env.server.restart();
    env.reconnect().await;
    let info = env.info(name).await;
    assert_eq!(info.state.messages, intact, "intact records kept");
    assert_eq!(info.state.last_sequence, intact);
    let stream = within("get stream", env.js.get_stream(name))
        .await
        .expect("stream");
    for seq in 1..=intact {
        let msg = within("get", stream.get_raw_message(seq))
            .await
            .expect("intact message");
        assert_eq!(msg.payload, format!("message {seq}").as_bytes());
    }
    let log = env.server.log();
    assert!(
        log.contains("damaged tail"),
        "the server says what it cut off:\n{log}"
    );
    // Publishing goes on after the kept records.
    let ack = env.publish(&format!("{}.m", name.to_lowercase()), "after").await;
    assert_eq!(ack.sequence, intact + 1);
}

#[tokio::test]
async fn torn_tail_of_the_last_segment_is_cut_off_and_the_rest_kept() {
    if is_nats_server() {
        eprintln!("skipped: herald's file format");
        return;
    }
    let mut env = stream_with_messages("TORN").await;
    env.server.stop();
    let segment = last_segment(&env, "TORN");
    let len = std::fs::metadata(&segment).expect("segment").len();
    // Cut the last record in half, then add bytes a crashed write left.
    let file = OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment");
    file.set_len(len - 7).expect("truncate");
    drop(file);
    let mut file = OpenOptions::new()
        .append(true)
        .open(&segment)
        .expect("open segment");
    file.write_all(&[0xAB; 13]).expect("garbage");
    drop(file);
    restart_and_check(&mut env, "TORN", MESSAGES - 1).await;
}

#[tokio::test]
async fn corrupt_last_record_fails_its_checksum_and_is_dropped() {
    if is_nats_server() {
        eprintln!("skipped: herald's file format");
        return;
    }
    let mut env = stream_with_messages("FLIPPED").await;
    env.server.stop();
    let segment = last_segment(&env, "FLIPPED");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    // The payload of the last message ends just before any trailing floor
    // record; flip a byte inside "message 100".
    let at = bytes
        .windows(11)
        .rposition(|w| w == b"message 100")
        .expect("last payload in the file");
    bytes[at + 3] ^= 0x20;
    std::fs::write(&segment, &bytes).expect("write segment");
    restart_and_check(&mut env, "FLIPPED", MESSAGES - 1).await;
}
