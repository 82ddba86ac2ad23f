//! Feeds arbitrary bytes to the client-operation parser the way the server
//! does: operation after operation until it needs more input or fails.
#![no_main]

use herald_protocol::{parse_client_op, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_control_line: 1024, max_payload: 64 * 1024 };
    let mut buf = data;
    while let Ok(Some((op, used))) = parse_client_op(buf, &limits) {
        assert!(used > 0 && used <= buf.len());
        let _ = op.payload();
        buf = &buf[used..];
    }
});
