//! A scripted in-process server for unit tests: it accepts connections on a
//! loopback port and lets a test read what the client sent and answer.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use herald_protocol::{parse_client_op, ClientOp, ConnectInfo, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// One client operation, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Connect(ConnectInfo),
    Pub {
        subject: String,
        reply: Option<String>,
        headers: Option<Vec<u8>>,
        payload: Vec<u8>,
    },
    Sub {
        subject: String,
        queue: Option<String>,
        sid: String,
    },
    Unsub {
        sid: String,
        max: Option<u64>,
    },
    Ping,
    Pong,
    /// The client closed the connection.
    Eof,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub struct FakeServer {
    listener: TcpListener,
}

impl FakeServer {
    pub async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        FakeServer { listener }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.listener.local_addr().unwrap())
    }

    /// Accepts the next connection and sends `INFO` with `max_payload`.
    pub async fn accept_with(&self, max_payload: usize) -> Conn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        let mut conn = Conn {
            stream,
            buf: BytesMut::new(),
        };
        let info = format!(
            "INFO {{\"server_id\":\"fake\",\"version\":\"0\",\"proto\":1,\"headers\":true,\"max_payload\":{max_payload}}}\r\n"
        );
        conn.send(info.as_bytes()).await;
        conn
    }

    pub async fn accept(&self) -> Conn {
        self.accept_with(1024 * 1024).await
    }

    /// Accepts a connection and completes its handshake, returning the
    /// `CONNECT` and the operations sent before the handshake's `PING`.
    pub async fn accept_handshake(&self) -> (Conn, ConnectInfo, Vec<Op>) {
        let mut conn = self.accept().await;
        let (connect, before_ping) = conn.handshake().await;
        (conn, connect, before_ping)
    }
}

pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("fake server writes");
    }

    /// The next operation the client sent.
    pub async fn op(&mut self) -> Op {
        tokio::time::timeout(WAIT, self.read_op())
            .await
            .expect("client sends an operation in time")
    }

    async fn read_op(&mut self) -> Op {
        loop {
            let parsed = parse_client_op(&self.buf, &Limits::default()).expect("client sends valid protocol");
            if let Some((op, used)) = parsed {
                let op = match op {
                    ClientOp::Connect(json) => {
                        Op::Connect(serde_json::from_slice(json).expect("CONNECT JSON"))
                    }
                    ClientOp::Pub {
                        subject,
                        reply,
                        header_len,
                        data,
                    } => {
                        let h = header_len.unwrap_or(0);
                        Op::Pub {
                            subject: text(subject),
                            reply: reply.map(text),
                            headers: header_len.map(|_| data[..h].to_vec()),
                            payload: data[h..].to_vec(),
                        }
                    }
                    ClientOp::Sub { subject, queue, sid } => Op::Sub {
                        subject: text(subject),
                        queue: queue.map(text),
                        sid: text(sid),
                    },
                    ClientOp::Unsub { sid, max } => Op::Unsub { sid: text(sid), max },
                    ClientOp::Ping => Op::Ping,
                    ClientOp::Pong => Op::Pong,
                    other => panic!("unexpected client operation {other:?}"),
                };
                self.buf.advance(used);
                return op;
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Op::Eof,
                Ok(_) => {}
            }
        }
    }

    /// Reads `CONNECT` and everything up to the first `PING`, answers `PONG`.
    pub async fn handshake(&mut self) -> (ConnectInfo, Vec<Op>) {
        let Op::Connect(connect) = self.op().await else {
            panic!("expected CONNECT first");
        };
        let before = self.until_ping().await;
        self.send(b"PONG\r\n").await;
        (connect, before)
    }

    /// Reads operations up to a `PING` (not answered), returning the others.
    pub async fn until_ping(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        loop {
            match self.op().await {
                Op::Ping => return ops,
                Op::Eof => panic!("connection closed before PING; got {ops:?}"),
                op => ops.push(op),
            }
        }
    }

    /// Answers every `PING` until one of `want` arrives, which is returned.
    pub async fn expect(&mut self, want: impl Fn(&Op) -> bool) -> Op {
        loop {
            let op = self.op().await;
            if want(&op) {
                return op;
            }
            match op {
                Op::Ping => self.send(b"PONG\r\n").await,
                Op::Eof => panic!("connection closed while waiting"),
                _ => {}
            }
        }
    }

    /// Sends `MSG subject sid [reply] len` with `payload`.
    pub async fn msg(&mut self, subject: &str, sid: &str, reply: Option<&str>, payload: &[u8]) {
        let mut out = Vec::new();
        herald_protocol::encode::msg(
            &mut out,
            subject.as_bytes(),
            sid.as_bytes(),
            reply.map(str::as_bytes),
            None,
            payload,
        );
        self.send(&out).await;
    }
}
