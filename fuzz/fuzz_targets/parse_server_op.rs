//! Feeds arbitrary bytes to the server-operation parser used by clients.
#![no_main]

use herald_protocol::{parse_server_op, Headers, Limits, ServerOp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_control_line: 1024, max_payload: 64 * 1024 };
    let mut buf = data;
    while let Ok(Some((op, used))) = parse_server_op(buf, &limits) {
        assert!(used > 0 && used <= buf.len());
        if let ServerOp::Msg { header_len: Some(h), data, .. } = op {
            let _ = Headers::parse(&data[..h]);
        }
        buf = &buf[used..];
    }
});
