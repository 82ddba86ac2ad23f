//! End-to-end runs of the workloads against a tiny in-process server that
//! speaks just enough of the NATS protocol (CONNECT, PING, SUB with queue
//! groups and `*` wildcards, PUB with reply subjects).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use herald_bench::memory::{self, MemoryArgs};
use herald_bench::pubsub::{self, PubsubArgs};
use herald_bench::reqrep::{self, ReqrepArgs};
use herald_bench::CommonArgs;

struct Sub {
    pattern: String,
    queue: Option<String>,
    sid: String,
    out: Arc<Mutex<TcpStream>>,
}

#[derive(Default)]
struct Registry {
    subs: Vec<Sub>,
    /// Round-robin position per queue group.
    turns: Vec<(String, usize)>,
}

fn matches(pattern: &str, subject: &str) -> bool {
    let (p, s): (Vec<_>, Vec<_>) = (pattern.split('.').collect(), subject.split('.').collect());
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

/// Starts the server; returns its `host:port`.
fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let registry = Arc::new(Mutex::new(Registry::default()));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let registry = Arc::clone(&registry);
            thread::spawn(move || {
                let _ = serve(stream.unwrap(), &registry);
            });
        }
    });
    addr
}

fn serve(stream: TcpStream, registry: &Mutex<Registry>) -> std::io::Result<()> {
    let out = Arc::new(Mutex::new(stream.try_clone()?));
    out.lock()
        .unwrap()
        .write_all(b"INFO {\"server_id\":\"fake\",\"headers\":true}\r\n")?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["PING"] => out.lock().unwrap().write_all(b"PONG\r\n")?,
            ["SUB", subject, rest @ ..] => {
                let (queue, sid) = match rest {
                    [sid] => (None, sid),
                    [queue, sid] => (Some(queue.to_string()), sid),
                    _ => panic!("bad SUB {line:?}"),
                };
                let sub = Sub {
                    pattern: subject.to_string(),
                    queue,
                    sid: sid.to_string(),
                    out: Arc::clone(&out),
                };
                registry.lock().unwrap().subs.push(sub);
            }
            ["PUB", subject, rest @ ..] => {
                let (reply, size) = match rest {
                    [size] => (None, size),
                    [reply, size] => (Some(*reply), size),
                    _ => panic!("bad PUB {line:?}"),
                };
                let mut payload = vec![0; size.parse::<usize>().unwrap() + 2];
                reader.read_exact(&mut payload)?;
                payload.truncate(payload.len() - 2);
                deliver(registry, subject, reply, &payload);
            }
            _ => {} // CONNECT, PONG
        }
    }
}

fn deliver(registry: &Mutex<Registry>, subject: &str, reply: Option<&str>, payload: &[u8]) {
    let mut reg = registry.lock().unwrap();
    let mut targets: Vec<usize> = Vec::new();
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, sub) in reg
        .subs
        .iter()
        .enumerate()
        .filter(|(_, s)| matches(&s.pattern, subject))
    {
        match &sub.queue {
            None => targets.push(i),
            Some(q) => match groups.iter_mut().find(|(g, _)| g == q) {
                Some((_, members)) => members.push(i),
                None => groups.push((q.clone(), vec![i])),
            },
        }
    }
    for (group, members) in groups {
        let at = match reg.turns.iter().position(|(g, _)| *g == group) {
            Some(at) => at,
            None => {
                reg.turns.push((group, 0));
                reg.turns.len() - 1
            }
        };
        reg.turns[at].1 += 1;
        targets.push(members[reg.turns[at].1 % members.len()]);
    }
    for i in targets {
        let sub = &reg.subs[i];
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        let mut frame = format!("MSG {subject} {}{reply} {}\r\n", sub.sid, payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        sub.out.lock().unwrap().write_all(&frame).unwrap();
    }
}

fn common(addr: &str) -> CommonArgs {
    CommonArgs {
        server: format!("nats://{addr}"),
        json: true,
    }
}

fn pubsub_args(addr: &str) -> PubsubArgs {
    PubsubArgs {
        common: common(addr),
        subs: 1,
        pubs: 1,
        subject: "bench.subject".into(),
        queue: None,
        size: 128,
        msgs: 20_000,
        window: 2_000,
        window_bytes: 16 << 20,
        timeout: 10.0,
    }
}

#[test]
fn fan_out_delivers_everything_to_everyone() {
    let addr = start();
    let args = PubsubArgs {
        subs: 3,
        pubs: 2,
        msgs: 20_001,
        ..pubsub_args(&addr)
    };
    let report = pubsub::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.published, 20_001);
    assert_eq!(report.per_sub, vec![20_001; 3]);
    assert_eq!((report.duplicates, report.missing), (0, 0));
    assert!(report.msgs_per_sec > 0.0);
}

#[test]
fn queue_group_splits_the_messages() {
    let addr = start();
    let args = PubsubArgs {
        subs: 3,
        queue: Some("workers".into()),
        size: 4096,
        ..pubsub_args(&addr)
    };
    let report = pubsub::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.delivered, 20_000);
    assert!(report.per_sub.iter().all(|&n| n > 0), "{:?}", report.per_sub);
    assert!(report.verified);
}

#[test]
fn lost_messages_are_reported_after_the_timeout() {
    let addr = start();
    // A fourth member the bench does not know about takes a share.
    let mut thief = TcpStream::connect(&addr).unwrap();
    thief
        .write_all(b"CONNECT {}\r\nSUB bench.subject workers 99\r\n")
        .unwrap();
    thread::spawn(move || std::io::copy(&mut thief, &mut std::io::sink()));
    thread::sleep(std::time::Duration::from_millis(100));
    let args = PubsubArgs {
        subs: 3,
        queue: Some("workers".into()),
        timeout: 0.5,
        ..pubsub_args(&addr)
    };
    let report = pubsub::run(&args).unwrap();
    let error = report.error.expect("an error");
    assert!(error.contains("no message for"), "{error}");
    assert!(report.delivered < 20_000);
}

#[test]
fn request_reply_measures_every_round_trip() {
    let addr = start();
    let args = ReqrepArgs {
        common: common(&addr),
        count: 500,
        warmup: 50,
        size: 64,
        subject: "bench.req".into(),
        timeout: 10.0,
    };
    let report = reqrep::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.count, 500);
    assert_eq!(report.unexpected, 0);
    let latency = report.latency.unwrap();
    assert!(latency.p50_us <= latency.p99_us && latency.p99_us <= latency.max_us);
}

#[test]
fn memory_holds_the_connections() {
    let addr = start();
    let args = MemoryArgs {
        common: common(&addr),
        conns: 50,
        pid: std::process::id(),
        settle: 0.1,
    };
    let report = memory::run(&args).unwrap();
    assert_eq!(report.error, None);
    assert_eq!(report.conns, 50);
    assert!(report.rss_before_kib > 0);
}
