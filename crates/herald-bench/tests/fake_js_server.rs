//! End-to-end runs of `js-pub` and `js-replay` against a tiny in-process
//! server speaking just enough JetStream: stream delete/create/info,
//! PubAcks (held back until the client stops writing, so the client's
//! window is what limits the messages in flight), durable pull consumers
//! with `MSG.NEXT`, status messages and `$JS.ACK` acks.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use herald_bench::js::{AckPolicy, Storage, StreamArgs, SyncMode};
use herald_bench::jspub::{self, JsPubArgs, LoadArgs};
use herald_bench::jsreplay::{self, JsReplayArgs};
use herald_bench::CommonArgs;
use serde_json::{json, Value};

/// What the fake does besides the plain protocol.
#[derive(Clone, Copy, Default)]
struct Knobs {
    /// Answer `$JS.API` with 503 no responders, as a server without JetStream.
    no_jetstream: bool,
    /// Refuse messages after this many are stored, with an error PubAck.
    max_msgs: Option<usize>,
    /// Send an idle heartbeat (status 100) before each batch.
    heartbeats: bool,
    /// Deliver at most half of each pull request, then end it with 408.
    short_batches: bool,
    /// Fail this many stream creates with a 500 error first.
    create_failures: u32,
}

#[derive(Default)]
struct Stream {
    config: Value,
    msgs: Vec<(String, Vec<u8>)>,
}

#[derive(Default)]
struct State {
    knobs: Knobs,
    streams: HashMap<String, Stream>,
    /// (stream, consumer) -> (config, index of the next message to deliver).
    consumers: HashMap<(String, String), (Value, usize)>,
    /// `$JS.ACK` messages received.
    acks: u64,
    /// Most PubAcks owed to one connection at any moment.
    max_unacked: usize,
    /// Every `$JS.API` subject requested, in order.
    api_calls: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

/// Starts the server; returns its `host:port` and its state.
fn start(knobs: Knobs) -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = Arc::new(Mutex::new(State {
        knobs,
        ..State::default()
    }));
    let shared = Arc::clone(&state);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                let _ = Session::serve(stream.unwrap(), &state);
            });
        }
    });
    (addr, shared)
}

struct Session<'a> {
    out: TcpStream,
    state: &'a Mutex<State>,
    /// (pattern, sid) of this connection's subscriptions.
    subs: Vec<(String, String)>,
    /// Replies to PUBs not sent yet.
    owed: Vec<u8>,
    owed_count: usize,
}

fn matches(pattern: &str, subject: &str) -> bool {
    let (p, s): (Vec<_>, Vec<_>) = (pattern.split('.').collect(), subject.split('.').collect());
    if p.last() == Some(&">") {
        return s.len() >= p.len() && p[..p.len() - 1].iter().zip(&s).all(|(p, s)| *p == "*" || p == s);
    }
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

fn api_error(code: u16, err_code: u32, description: &str) -> Value {
    json!({"error": {"code": code, "err_code": err_code, "description": description}})
}

impl<'a> Session<'a> {
    fn serve(stream: TcpStream, state: &'a Mutex<State>) -> std::io::Result<()> {
        let mut session = Session {
            out: stream.try_clone()?,
            state,
            subs: Vec::new(),
            owed: Vec::new(),
            owed_count: 0,
        };
        session
            .out
            .write_all(b"INFO {\"server_id\":\"fake\",\"headers\":true,\"jetstream\":true}\r\n")?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            // Owed PubAcks go out only once the client has nothing more to say.
            if reader.buffer().is_empty() && session.owed_count > 0 {
                session.out.write_all(&session.owed)?;
                session.owed.clear();
                session.owed_count = 0;
            }
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["PING"] => session.out.write_all(b"PONG\r\n")?,
                ["SUB", subject, sid] => session.subs.push((subject.to_string(), sid.to_string())),
                ["PUB", subject, rest @ ..] => {
                    let (reply, size) = match rest {
                        [size] => (None, size),
                        [reply, size] => (Some(reply.to_string()), size),
                        _ => panic!("bad PUB {line:?}"),
                    };
                    let mut payload = vec![0; size.parse::<usize>().unwrap() + 2];
                    reader.read_exact(&mut payload)?;
                    payload.truncate(payload.len() - 2);
                    session.publish(subject, reply.as_deref(), payload)?;
                }
                _ => {} // CONNECT, PONG
            }
        }
    }

    /// `MSG` (or, with headers, `HMSG`) to this connection's subscription matching `to`.
    fn frame(&self, to: &str, subject: &str, reply: Option<&str>, headers: &[u8], body: &[u8]) -> Vec<u8> {
        let Some((_, sid)) = self.subs.iter().find(|(p, _)| matches(p, to)) else {
            return Vec::new();
        };
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut frame = if headers.is_empty() {
            format!("MSG {subject} {sid}{reply} {}\r\n", body.len())
        } else {
            let total = headers.len() + body.len();
            format!("HMSG {subject} {sid}{reply} {} {total}\r\n", headers.len())
        }
        .into_bytes();
        frame.extend_from_slice(headers);
        frame.extend_from_slice(body);
        frame.extend_from_slice(b"\r\n");
        frame
    }

    fn reply_json(&mut self, reply: &str, value: &Value) -> std::io::Result<()> {
        let frame = self.frame(reply, reply, None, b"", value.to_string().as_bytes());
        self.out.write_all(&frame)
    }

    fn status(&self, reply: &str, status: &str) -> Vec<u8> {
        self.frame(
            reply,
            reply,
            None,
            format!("NATS/1.0 {status}\r\n\r\n").as_bytes(),
            b"",
        )
    }

    fn publish(&mut self, subject: &str, reply: Option<&str>, payload: Vec<u8>) -> std::io::Result<()> {
        let knobs = self.state.lock().unwrap().knobs;
        if let Some(api) = subject.strip_prefix("$JS.API.") {
            let reply = reply.expect("API request without a reply subject");
            if knobs.no_jetstream {
                let frame = self.status(reply, "503");
                return self.out.write_all(&frame);
            }
            self.state.lock().unwrap().api_calls.push(subject.to_string());
            return self.api(api, reply, &payload);
        }
        if subject.starts_with("$JS.ACK.") {
            assert_eq!(payload, b"+ACK");
            self.state.lock().unwrap().acks += 1;
            return Ok(());
        }
        let Some(reply) = reply else { return Ok(()) };
        let answer = {
            let mut state = self.state.lock().unwrap();
            let Some((name, stream)) = state.streams.iter_mut().next() else {
                drop(state);
                let frame = self.status(reply, "503");
                return self.out.write_all(&frame);
            };
            if knobs.max_msgs.is_some_and(|max| stream.msgs.len() >= max) {
                api_error(503, 10077, "maximum messages exceeded")
            } else {
                stream.msgs.push((subject.to_string(), payload));
                json!({"stream": name, "seq": stream.msgs.len()})
            }
        };
        let frame = self.frame(reply, reply, None, b"", answer.to_string().as_bytes());
        self.owed.extend_from_slice(&frame);
        self.owed_count += 1;
        let mut state = self.state.lock().unwrap();
        state.max_unacked = state.max_unacked.max(self.owed_count);
        Ok(())
    }

    fn api(&mut self, api: &str, reply: &str, payload: &[u8]) -> std::io::Result<()> {
        let tokens: Vec<&str> = api.split('.').collect();
        let mut state = self.state.lock().unwrap();
        let answer = match tokens.as_slice() {
            ["STREAM", "DELETE", name] => match state.streams.remove(*name) {
                Some(_) => json!({"success": true}),
                None => api_error(404, 10059, "stream not found"),
            },
            ["STREAM", "CREATE", name] => {
                let config: Value = serde_json::from_slice(payload).unwrap();
                assert_eq!(config["subjects"], json!(["bench.js.>"]));
                if state.knobs.create_failures > 0 {
                    state.knobs.create_failures -= 1;
                    api_error(500, 10049, "error creating store for stream")
                } else if state.streams.contains_key(*name) {
                    api_error(400, 10058, "stream name already in use")
                } else {
                    let stream = Stream {
                        config: config.clone(),
                        msgs: Vec::new(),
                    };
                    state.streams.insert(name.to_string(), stream);
                    json!({"config": config, "state": {"messages": 0}})
                }
            }
            ["STREAM", "INFO", name] => match state.streams.get(*name) {
                Some(s) => json!({"config": s.config, "state": {
                    "messages": s.msgs.len(), "first_seq": 1, "last_seq": s.msgs.len()}}),
                None => api_error(404, 10059, "stream not found"),
            },
            ["CONSUMER", "DELETE", stream, name] => {
                match state.consumers.remove(&(stream.to_string(), name.to_string())) {
                    Some(_) => json!({"success": true}),
                    None => api_error(404, 10014, "consumer not found"),
                }
            }
            ["CONSUMER", "CREATE", stream, name] => {
                let request: Value = serde_json::from_slice(payload).unwrap();
                assert_eq!(request["config"]["durable_name"], *name);
                assert_eq!(request["config"]["deliver_policy"], "all");
                let key = (stream.to_string(), name.to_string());
                state.consumers.insert(key, (request["config"].clone(), 0));
                json!({"name": name, "config": request["config"]})
            }
            ["CONSUMER", "MSG", "NEXT", stream, name] => {
                let request: Value = serde_json::from_slice(payload).unwrap();
                let batch = request["batch"].as_u64().unwrap() as usize;
                assert!(request["expires"].as_u64().unwrap() > 0);
                let frames = self.deliver(&mut state, stream, name, reply, batch);
                drop(state);
                return self.out.write_all(&frames);
            }
            _ => api_error(400, 10003, "unknown request"),
        };
        drop(state);
        self.reply_json(reply, &answer)
    }

    /// The frames answering one pull request.
    fn deliver(&self, state: &mut State, stream: &str, name: &str, reply: &str, batch: usize) -> Vec<u8> {
        let knobs = state.knobs;
        let msgs = &state.streams[stream].msgs;
        let (_, next) = state
            .consumers
            .get_mut(&(stream.to_string(), name.to_string()))
            .expect("pull from an unknown consumer");
        let mut frames = Vec::new();
        if knobs.heartbeats {
            frames.extend(self.status(reply, "100 Idle Heartbeat"));
        }
        let n = if knobs.short_batches {
            batch.div_ceil(2)
        } else {
            batch
        };
        let n = n.min(msgs.len() - *next);
        for _ in 0..n {
            let (subject, payload) = &msgs[*next];
            *next += 1;
            let pending = msgs.len() - *next;
            let ack = format!(
                "$JS.ACK.{stream}.{name}.1.{0}.{0}.1700000000000000000.{pending}",
                *next
            );
            frames.extend(self.frame(reply, subject, Some(&ack), b"", payload));
        }
        if n < batch {
            let status = format!(
                "408 Request Timeout\r\nNats-Pending-Messages: {}\r\nNats-Pending-Bytes: 0",
                batch - n
            );
            frames.extend(self.status(reply, &status));
        }
        frames
    }
}

fn stream_args() -> StreamArgs {
    StreamArgs {
        stream: "BENCH".into(),
        storage: Storage::File,
        sync: SyncMode::Default,
    }
}

fn load(msgs: u64, in_flight: usize) -> LoadArgs {
    LoadArgs {
        conns: 1,
        msgs,
        size: 64,
        in_flight,
        timeout: 5.0,
    }
}

fn pub_args(addr: &str, load: LoadArgs) -> JsPubArgs {
    JsPubArgs {
        common: CommonArgs {
            server: format!("nats://{addr}"),
            json: true,
        },
        stream: stream_args(),
        load,
    }
}

fn replay_args(addr: &str, msgs: u64, ack: AckPolicy) -> JsReplayArgs {
    JsReplayArgs {
        common: CommonArgs {
            server: addr.into(),
            json: true,
        },
        stream: stream_args(),
        load: load(msgs, 128),
        no_fill: false,
        consumer: "bench-replay".into(),
        ack,
        batch: 300,
        pulls: 2,
        expires: 60.0,
        max_ack_pending: 20_000,
    }
}

#[test]
fn js_pub_counts_every_ack_within_the_window() {
    let (addr, state) = start(Knobs::default());
    let args = pub_args(
        &addr,
        LoadArgs {
            conns: 2,
            ..load(10_001, 64)
        },
    );
    let report = jspub::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(
        (report.published, report.acked, report.expected),
        (10_001, 10_001, 10_001)
    );
    assert_eq!((report.first_seq, report.last_seq), (1, 10_001));
    assert_eq!((report.unexpected, report.duplicates), (0, 0));
    assert!(report.msgs_per_sec > 0.0);
    let latency = report.latency.expect("ack latencies");
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
    let state = state.lock().unwrap();
    assert_eq!(state.streams["BENCH"].msgs.len(), 10_001);
    assert_eq!(state.streams["BENCH"].config["storage"], "file");
    assert!(state.max_unacked <= 64, "{} in flight", state.max_unacked);
    assert!(state.max_unacked > 1, "never pipelined");
}

#[test]
fn js_pub_with_one_in_flight_waits_for_each_ack() {
    let (addr, state) = start(Knobs::default());
    let report = jspub::run(&pub_args(&addr, load(300, 1))).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.acked, 300);
    assert_eq!(state.lock().unwrap().max_unacked, 1);
}

#[test]
fn js_pub_recreates_the_stream() {
    let (addr, state) = start(Knobs::default());
    let mut args = pub_args(&addr, load(500, 32));
    jspub::run(&args).unwrap();
    assert!(state.lock().unwrap().streams["BENCH"]
        .config
        .get("metadata")
        .is_none());
    args.stream.storage = Storage::Memory;
    args.stream.sync = SyncMode::Always;
    let report = jspub::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.first_seq, report.last_seq), (1, 500));
    assert_eq!(report.sync, SyncMode::Always);
    let state = state.lock().unwrap();
    let config = &state.streams["BENCH"].config;
    assert_eq!(config["storage"], "memory");
    assert_eq!(config["metadata"], json!({"herald.sync": "always"}));
    let calls: Vec<&str> = state.api_calls.iter().map(String::as_str).collect();
    assert_eq!(
        calls,
        [
            "$JS.API.STREAM.DELETE.BENCH",
            "$JS.API.STREAM.CREATE.BENCH",
            "$JS.API.STREAM.DELETE.BENCH",
            "$JS.API.STREAM.CREATE.BENCH"
        ]
    );
}

#[test]
fn js_pub_retries_a_failed_stream_create_once() {
    let (addr, state) = start(Knobs {
        create_failures: 1,
        ..Knobs::default()
    });
    let report = jspub::run(&pub_args(&addr, load(10, 8))).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(state.lock().unwrap().api_calls.len(), 3, "delete, create, create");

    let (addr, _state) = start(Knobs {
        create_failures: 2,
        ..Knobs::default()
    });
    let error = format!("{:#}", jspub::run(&pub_args(&addr, load(10, 8))).unwrap_err());
    assert!(
        error.contains("creating stream BENCH: error creating store"),
        "{error}"
    );
}

#[test]
fn js_pub_fails_loudly_on_error_replies() {
    let (addr, _state) = start(Knobs {
        max_msgs: Some(100),
        ..Knobs::default()
    });
    let report = jspub::run(&pub_args(&addr, load(1_000, 64))).unwrap();
    let error = report.error.expect("an error");
    assert!(error.contains("maximum messages exceeded"), "{error}");
    assert!(error.contains("message 100:"), "{error}");
    assert_eq!(report.acked, 100);
}

#[test]
fn js_pub_without_jetstream_says_so() {
    let (addr, _state) = start(Knobs {
        no_jetstream: true,
        ..Knobs::default()
    });
    let error = jspub::run(&pub_args(&addr, load(10, 8))).unwrap_err();
    let error = format!("{error:#}");
    assert!(error.contains("JetStream not available"), "{error}");
    assert!(error.contains("$JS.API.STREAM.DELETE.BENCH"), "{error}");
}

#[test]
fn js_replay_acks_every_message_and_skips_heartbeats() {
    let (addr, state) = start(Knobs {
        heartbeats: true,
        ..Knobs::default()
    });
    let report = jsreplay::run(&replay_args(&addr, 5_000, AckPolicy::Explicit)).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(
        (report.expected, report.delivered, report.acks_sent),
        (5_000, 5_000, 5_000)
    );
    assert_eq!((report.missing, report.duplicates, report.redelivered), (0, 0, 0));
    assert_eq!(report.requests, 17, "5000 messages in batches of 300");
    assert_eq!(report.statuses.get(&100), Some(&17));
    assert_eq!(report.fill.as_ref().map(|f| f.acked), Some(5_000));
    assert!(report.msgs_per_sec > 0.0);
    let state = state.lock().unwrap();
    assert_eq!(state.acks, 5_000);
    assert!(state.consumers.is_empty(), "consumer deleted at the end");
    assert!(state
        .api_calls
        .contains(&"$JS.API.CONSUMER.CREATE.BENCH.bench-replay".to_string()));
}

#[test]
fn js_replay_without_acks() {
    let (addr, state) = start(Knobs::default());
    let report = jsreplay::run(&replay_args(&addr, 2_000, AckPolicy::None)).unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.delivered, report.acks_sent), (2_000, 0));
    assert_eq!(state.lock().unwrap().acks, 0);
}

#[test]
fn js_replay_asks_again_for_what_expired() {
    let (addr, _state) = start(Knobs {
        short_batches: true,
        ..Knobs::default()
    });
    // With expires of 60 s and a timeout of 5 s, losing track of the
    // expired credit would end in a timeout error.
    let report = jsreplay::run(&replay_args(&addr, 3_000, AckPolicy::Explicit)).unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.delivered, report.missing), (3_000, 0));
    assert!(report.statuses[&408] >= 10, "{:?}", report.statuses);
}

#[test]
fn js_replay_no_fill_replays_what_is_there() {
    let (addr, state) = start(Knobs::default());
    jspub::run(&pub_args(&addr, load(1_234, 64))).unwrap();
    let args = JsReplayArgs {
        no_fill: true,
        batch: 1_000,
        ..replay_args(&addr, 1, AckPolicy::Explicit)
    };
    let report = jsreplay::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!((report.expected, report.delivered), (1_234, 1_234));
    assert!(report.fill.is_none());
    let state = state.lock().unwrap();
    assert_eq!(state.acks, 1_234);
    assert_eq!(state.streams["BENCH"].msgs.len(), 1_234, "not refilled");
}

#[test]
fn js_replay_of_an_empty_stream_is_an_error() {
    let (addr, _state) = start(Knobs::default());
    let args = JsReplayArgs {
        no_fill: true,
        ..replay_args(&addr, 1, AckPolicy::Explicit)
    };
    // No stream at all: the info request fails.
    let error = format!("{:#}", jsreplay::run(&args).unwrap_err());
    assert!(error.contains("stream not found"), "{error}");
}
