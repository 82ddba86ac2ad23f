//! The `$JS.ACK` reply subject of delivered messages and the ack bodies
//! clients publish to it.
//!
//! Reply subject forms (ADR-15), as nats-server writes and parses them:
//! - v1, 9 tokens: `$JS.ACK.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<timestamp_ns>.<pending>`
//! - v2, 11 or more tokens: `$JS.ACK.<domain>.<account_hash>.<stream>.<consumer>.<delivered>.<stream_seq>.<consumer_seq>.<timestamp_ns>.<pending>[.<token>…]`,
//!   with domain `_` when there is none; tokens after the 11th are ignored
//!   (clients read the 12th as an optional random token).

use std::fmt::Write as _;

use thiserror::Error;

use super::api::{NextRequest, NextRequestError};
use super::time::parse_go_duration;

/// Prefix of every ack subject.
pub const ACK_PREFIX: &str = "$JS.ACK.";

/// Why an ack subject or ack body was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AckError {
    /// The subject does not start with `$JS.ACK.`.
    #[error("not a $JS.ACK subject")]
    NotAckSubject,
    /// The subject has neither 9 nor at least 11 tokens.
    #[error("ack subject has {0} tokens, expected 9 or at least 11")]
    TokenCount(usize),
    /// A numeric token is not a number, or a token is not UTF-8.
    #[error("invalid ack subject token {0:?}")]
    InvalidToken(String),
    /// The body is not a known ack kind.
    #[error("unknown ack body")]
    UnknownBody,
    /// `+NXT` with a request nats-server answers with `400 Bad Request -
    /// <reason>`; it still acknowledges the message.
    #[error("invalid +NXT request: {0}")]
    InvalidNextRequest(String),
}

/// What a `$JS.ACK` reply subject says about a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckMetadata<'a> {
    /// JetStream domain (v2 only; `None` for `_`).
    pub domain: Option<&'a str>,
    /// Account hash (v2 only). Its presence selects the v2 form on encode.
    pub account_hash: Option<&'a str>,
    /// Stream name.
    pub stream: &'a str,
    /// Consumer name.
    pub consumer: &'a str,
    /// Delivery attempt of this message, from 1.
    pub delivered: u64,
    /// Stream sequence.
    pub stream_seq: u64,
    /// Consumer (delivery) sequence.
    pub consumer_seq: u64,
    /// When the message was stored, Unix nanoseconds.
    pub timestamp: i64,
    /// Messages pending for the consumer after this one.
    pub pending: u64,
    /// Trailing token of a v2 subject with 12 or more tokens.
    pub token: Option<&'a str>,
}

impl<'a> AckMetadata<'a> {
    /// A v1 (9-token) ack reply.
    pub fn v1(stream: &'a str, consumer: &'a str) -> AckMetadata<'a> {
        AckMetadata {
            domain: None,
            account_hash: None,
            stream,
            consumer,
            delivered: 1,
            stream_seq: 0,
            consumer_seq: 0,
            timestamp: 0,
            pending: 0,
            token: None,
        }
    }

    /// Parses an ack reply subject in either form.
    pub fn parse(subject: &'a [u8]) -> Result<AckMetadata<'a>, AckError> {
        let subject = std::str::from_utf8(subject)
            .map_err(|_| AckError::InvalidToken(String::from_utf8_lossy(subject).into_owned()))?;
        Self::parse_str(subject)
    }

    /// Parses an ack reply subject in either form.
    pub fn parse_str(subject: &'a str) -> Result<AckMetadata<'a>, AckError> {
        let rest = subject.strip_prefix(ACK_PREFIX).ok_or(AckError::NotAckSubject)?;
        let mut tokens = [""; 10];
        let mut count = 2;
        // Byte scan: acks are parsed once per delivery, and `str::split`
        // costs more than the rest of the ack path.
        let mut start = 0;
        for (i, &b) in rest
            .as_bytes()
            .iter()
            .enumerate()
            .chain(std::iter::once((rest.len(), &b'.')))
        {
            if b == b'.' {
                if count - 2 < tokens.len() {
                    tokens[count - 2] = &rest[start..i];
                }
                count += 1;
                start = i + 1;
            }
        }
        let (domain, account_hash, fields, token) = match count {
            9 => (None, None, &tokens[..7], None),
            n if n >= 11 => {
                let domain = Some(tokens[0]).filter(|d| *d != "_");
                let token = if n >= 12 { Some(tokens[9]) } else { None };
                (domain, Some(tokens[1]), &tokens[2..9], token)
            }
            n => return Err(AckError::TokenCount(n)),
        };
        fn num<T: std::str::FromStr>(token: &str) -> Result<T, AckError> {
            token
                .parse()
                .map_err(|_| AckError::InvalidToken(token.to_string()))
        }
        Ok(AckMetadata {
            domain,
            account_hash,
            stream: fields[0],
            consumer: fields[1],
            delivered: num(fields[2])?,
            stream_seq: num(fields[3])?,
            consumer_seq: num(fields[4])?,
            timestamp: num(fields[5])?,
            pending: num(fields[6])?,
            token,
        })
    }

    /// Appends the reply subject: v2 when `account_hash` is set, else v1.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_subject().as_bytes());
    }

    /// The reply subject: v2 when `account_hash` is set, else v1.
    pub fn to_subject(&self) -> String {
        let mut s = String::with_capacity(64);
        s.push_str(ACK_PREFIX);
        if let Some(hash) = self.account_hash {
            s.push_str(self.domain.unwrap_or("_"));
            s.push('.');
            s.push_str(hash);
            s.push('.');
        }
        let _ = write!(
            s,
            "{}.{}.{}.{}.{}.{}.{}",
            self.stream,
            self.consumer,
            self.delivered,
            self.stream_seq,
            self.consumer_seq,
            self.timestamp,
            self.pending
        );
        if let (Some(_), Some(token)) = (self.account_hash, self.token) {
            s.push('.');
            s.push_str(token);
        }
        s
    }
}

/// An ack body a client sends to the reply subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckBody {
    /// `+ACK`, the deprecated `+OK`, or an empty body.
    Ack,
    /// `-NAK`, optionally with a redelivery delay in nanoseconds
    /// (`-NAK {"delay": 5000000000}` or `-NAK 5s`).
    Nak {
        /// Delay before redelivery.
        delay: Option<i64>,
    },
    /// `+WPI`: still working, restart the ack timer.
    Progress,
    /// `+NXT [request]`: ack and pull more (pull consumers).
    Next(NextRequest),
    /// `+TERM [reason]`: stop redelivering without success.
    Term {
        /// Reason, if given.
        reason: Option<String>,
    },
}

impl AckBody {
    /// Parses an ack body as nats-server does: `+NXT`, `-NAK` and `+TERM`
    /// match as prefixes; a NAK delay that does not parse leaves a plain NAK
    /// (nats-server logs it and NAKs). Trailing whitespace is ignored.
    pub fn parse(body: &[u8]) -> Result<AckBody, AckError> {
        let body = body.trim_ascii_end();
        if body.is_empty() || body == b"+ACK" || body == b"+OK" {
            return Ok(AckBody::Ack);
        }
        if body == b"+WPI" {
            return Ok(AckBody::Progress);
        }
        if let Some(rest) = body.strip_prefix(b"+NXT") {
            return NextRequest::parse(rest)
                .map(AckBody::Next)
                .map_err(|e: NextRequestError| AckError::InvalidNextRequest(e.to_string()));
        }
        if let Some(rest) = body.strip_prefix(b"-NAK") {
            let arg = rest.trim_ascii();
            let delay = if arg.is_empty() {
                None
            } else if arg[0] == b'{' {
                #[derive(serde::Deserialize)]
                struct NakOptions {
                    #[serde(default)]
                    delay: i64,
                }
                serde_json::from_slice::<NakOptions>(arg).ok().map(|o| o.delay)
            } else {
                std::str::from_utf8(arg).ok().and_then(parse_go_duration)
            };
            return Ok(AckBody::Nak { delay });
        }
        if let Some(rest) = body.strip_prefix(b"+TERM") {
            let reason = String::from_utf8_lossy(rest.trim_ascii());
            return Ok(AckBody::Term {
                reason: (!reason.is_empty()).then(|| reason.into_owned()),
            });
        }
        Err(AckError::UnknownBody)
    }

    /// The body a client sends for this ack.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AckBody::Ack => b"+ACK".to_vec(),
            AckBody::Progress => b"+WPI".to_vec(),
            AckBody::Nak { delay: None } => b"-NAK".to_vec(),
            AckBody::Nak { delay: Some(d) } => format!("-NAK {{\"delay\":{d}}}").into_bytes(),
            AckBody::Next(req) if *req == NextRequest::batch(1) => b"+NXT".to_vec(),
            AckBody::Next(req) => {
                let mut out = b"+NXT ".to_vec();
                out.extend_from_slice(&serde_json::to_vec(req).expect("next request serializes"));
                out
            }
            AckBody::Term { reason: None } => b"+TERM".to_vec(),
            AckBody::Term { reason: Some(r) } => format!("+TERM {r}").into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_round_trip() {
        let meta = AckMetadata {
            delivered: 2,
            stream_seq: 10,
            consumer_seq: 4,
            timestamp: 1_700_000_000_123_456_789,
            pending: 3,
            ..AckMetadata::v1("ORDERS", "worker")
        };
        let subject = meta.to_subject();
        assert_eq!(subject, "$JS.ACK.ORDERS.worker.2.10.4.1700000000123456789.3");
        assert_eq!(AckMetadata::parse(subject.as_bytes()).unwrap(), meta);
    }

    #[test]
    fn v2_forms() {
        let m = AckMetadata::parse_str("$JS.ACK._.HASH.S.C.1.2.3.4.5").unwrap();
        assert_eq!((m.domain, m.account_hash), (None, Some("HASH")));
        assert_eq!((m.stream, m.consumer, m.pending, m.token), ("S", "C", 5, None));
        assert_eq!(m.to_subject(), "$JS.ACK._.HASH.S.C.1.2.3.4.5");
        let m = AckMetadata::parse_str("$JS.ACK.hub.H.S.C.1.2.3.4.5.tok").unwrap();
        assert_eq!((m.domain, m.token), (Some("hub"), Some("tok")));
        assert_eq!(m.to_subject(), "$JS.ACK.hub.H.S.C.1.2.3.4.5.tok");
        let m = AckMetadata::parse_str("$JS.ACK.hub.H.S.C.1.2.3.4.5.tok.more.x").unwrap();
        assert_eq!((m.stream_seq, m.consumer_seq, m.timestamp), (2, 3, 4));
    }

    #[test]
    fn bad_subjects() {
        assert_eq!(
            AckMetadata::parse_str("$JS.FC.S.C.1.2.3.4.5"),
            Err(AckError::NotAckSubject)
        );
        assert_eq!(
            AckMetadata::parse_str("$JS.ACK.S.C.1.2.3.4"),
            Err(AckError::TokenCount(8))
        );
        assert_eq!(
            AckMetadata::parse_str("$JS.ACK.a.S.C.1.2.3.4.5"),
            Err(AckError::TokenCount(10))
        );
        assert_eq!(
            AckMetadata::parse_str("$JS.ACK.S.C.x.2.3.4.5"),
            Err(AckError::InvalidToken("x".into()))
        );
        assert!(AckMetadata::parse(b"$JS.ACK.\xff.C.1.2.3.4.5").is_err());
    }

    #[test]
    fn bodies() {
        assert_eq!(AckBody::parse(b"").unwrap(), AckBody::Ack);
        assert_eq!(AckBody::parse(b"+ACK").unwrap(), AckBody::Ack);
        assert_eq!(AckBody::parse(b"+OK").unwrap(), AckBody::Ack);
        assert_eq!(AckBody::parse(b"+WPI").unwrap(), AckBody::Progress);
        assert_eq!(AckBody::parse(b"-NAK").unwrap(), AckBody::Nak { delay: None });
        assert_eq!(
            AckBody::parse(br#"-NAK {"delay": 5000000000}"#).unwrap(),
            AckBody::Nak {
                delay: Some(5_000_000_000)
            }
        );
        assert_eq!(
            AckBody::parse(b"-NAK 1.5s").unwrap(),
            AckBody::Nak {
                delay: Some(1_500_000_000)
            }
        );
        assert_eq!(
            AckBody::parse(b"-NAK junk").unwrap(),
            AckBody::Nak { delay: None }
        );
        assert_eq!(AckBody::parse(b"+TERM").unwrap(), AckBody::Term { reason: None });
        assert_eq!(
            AckBody::parse(b"+TERM bad payload ").unwrap(),
            AckBody::Term {
                reason: Some("bad payload".into())
            }
        );
        assert_eq!(
            AckBody::parse(b"+NXT").unwrap(),
            AckBody::Next(NextRequest::batch(1))
        );
        assert_eq!(
            AckBody::parse(b"+NXT 4").unwrap(),
            AckBody::Next(NextRequest::batch(4))
        );
        let AckBody::Next(req) = AckBody::parse(br#"+NXT {"batch":2,"no_wait":true}"#).unwrap() else {
            panic!()
        };
        assert!(req.no_wait && req.batch == 2);
        assert!(matches!(
            AckBody::parse(br#"+NXT {"batch":true}"#),
            Err(AckError::InvalidNextRequest(_))
        ));
        assert_eq!(AckBody::parse(b"+NOPE"), Err(AckError::UnknownBody));
        assert_eq!(AckBody::parse(b"ACK"), Err(AckError::UnknownBody));
    }

    #[test]
    fn bodies_round_trip() {
        for body in [
            AckBody::Ack,
            AckBody::Progress,
            AckBody::Nak { delay: None },
            AckBody::Nak { delay: Some(7) },
            AckBody::Next(NextRequest::batch(1)),
            AckBody::Next(NextRequest {
                batch: 3,
                expires: 10,
                ..Default::default()
            }),
            AckBody::Term { reason: None },
            AckBody::Term {
                reason: Some("why".into()),
            },
        ] {
            assert_eq!(AckBody::parse(&body.encode()).unwrap(), body);
        }
    }
}
