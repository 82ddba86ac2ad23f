//! Adversarial input for the parsers: random and mutated bytes must never
//! panic, and a parsed operation never claims more bytes than it was given.

use herald_protocol::{encode, parse_client_op, parse_server_op, ClientOp, Limits, ProtocolError};
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_control_line: 256,
    max_payload: 4096,
};

/// Parses a whole buffer as a stream of client operations, the way the
/// server does, and returns how many operations were read.
fn drain_client(mut buf: &[u8]) -> Result<usize, ProtocolError> {
    let mut ops = 0;
    while let Some((_, used)) = parse_client_op(buf, &LIMITS)? {
        assert!(used > 0 && used <= buf.len(), "used {used} of {}", buf.len());
        buf = &buf[used..];
        ops += 1;
    }
    Ok(ops)
}

fn valid_ops() -> impl Strategy<Value = Vec<u8>> {
    let subject = "[a-z]{1,8}(\\.[a-z*>]{1,8}){0,3}";
    let op = prop_oneof![
        (subject, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(s, payload)| {
            let mut out = Vec::new();
            encode::publish(&mut out, s.as_bytes(), None, None, &payload);
            out
        }),
        (subject, "[a-z]{1,4}", 1u32..1000).prop_map(|(s, q, sid)| {
            let mut out = Vec::new();
            encode::sub(
                &mut out,
                s.as_bytes(),
                Some(q.as_bytes()),
                sid.to_string().as_bytes(),
            );
            out
        }),
        Just(b"PING\r\n".to_vec()),
        Just(b"PONG\r\n".to_vec()),
        Just(b"CONNECT {\"verbose\":false}\r\n".to_vec()),
    ];
    proptest::collection::vec(op, 1..20).prop_map(|ops| ops.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = drain_client(&bytes);
        let mut buf = &bytes[..];
        while let Ok(Some((_, used))) = parse_server_op(buf, &LIMITS) {
            prop_assert!(used > 0 && used <= buf.len());
            buf = &buf[used..];
        }
    }

    #[test]
    fn valid_streams_parse_whole_at_any_split(stream in valid_ops(), split in any::<prop::sample::Index>()) {
        let total = drain_client(&stream).expect("valid stream parses");
        // Feeding the same bytes in two reads yields the same operations.
        let cut = split.index(stream.len() + 1);
        let mut pending = stream[..cut].to_vec();
        let mut count = 0;
        let mut rest = &stream[cut..];
        loop {
            let mut offset = 0;
            while let Some((_, used)) = parse_client_op(&pending[offset..], &LIMITS).unwrap() {
                offset += used;
                count += 1;
            }
            pending.drain(..offset);
            if rest.is_empty() {
                break;
            }
            pending.extend_from_slice(rest);
            rest = &[];
        }
        prop_assert!(pending.is_empty());
        prop_assert_eq!(count, total);
    }

    #[test]
    fn mutated_valid_streams_never_panic(stream in valid_ops(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut stream = stream;
        for (at, byte) in flips {
            let i = at.index(stream.len());
            stream[i] = byte;
        }
        let _ = drain_client(&stream);
    }
}

#[test]
fn payload_over_limit_is_rejected_before_it_arrives() {
    // The size alone decides: the server must not wait for 1 GiB to arrive.
    let err = parse_client_op(b"PUB a 1073741824\r\n", &LIMITS).unwrap_err();
    assert_eq!(err.err_text(), "Maximum Payload Violation");
}

#[test]
fn control_line_without_newline_is_rejected_once_over_limit() {
    let line = vec![b'P'; 300];
    let err = parse_client_op(&line, &LIMITS).unwrap_err();
    assert_eq!(err.err_text(), "Maximum Control Line Exceeded");
    assert!(parse_client_op(&line[..100], &LIMITS).unwrap().is_none());
}

#[test]
fn hpub_header_len_is_kept() {
    let mut buf = Vec::new();
    encode::publish(&mut buf, b"s", Some(b"r"), Some(12), b"NATS/1.0\r\n\r\nbody");
    let (op, _) = parse_client_op(&buf, &LIMITS).unwrap().unwrap();
    assert_eq!(op.payload(), b"body");
    assert!(matches!(
        op,
        ClientOp::Pub {
            header_len: Some(12),
            ..
        }
    ));
}

/// JetStream bodies against the types of async-nats 0.51, the client
/// unmodified applications use: what a client sends must parse, and what
/// Herald sends back must decode in the client with the same values.
#[path = "protocol/jetstream.rs"]
mod jetstream;
