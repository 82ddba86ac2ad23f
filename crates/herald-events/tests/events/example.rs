//! The worked example (`examples/bank.rs`) runs against a real server and
//! prints what the SDK docs promise.

use std::path::Path;
use std::process::Command;

use crate::support::server;

#[test]
fn the_bank_example_runs_end_to_end() {
    // target/<profile>/deps/events-<hash> -> target/<profile>/examples/bank
    // (`cargo test` builds the crate's examples before running its tests).
    let exe = std::env::current_exe().expect("test executable");
    let example = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("examples").join("bank"))
        .filter(|path| path.exists())
        .expect("the bank example is built next to the tests (cargo test builds examples)");
    let server = server!();
    let output = Command::new(example)
        .arg(server.url())
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "refused: insufficient funds: 1500 cents, 1000000 asked",
        "Deposit to carol: refused: the account is not open",
        "ada, replayed from 3 events (the v1 deposit upcast): 1500 cents",
        "  ada       15.00",
        "  bob      100.00",
        "replica: bob is Bob with 100.00",
        "replica after an update: bob has 1 cents",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}
