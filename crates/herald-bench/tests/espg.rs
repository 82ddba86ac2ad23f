//! `es-append-pg` against a real PostgreSQL, when one is given:
//!
//! ```text
//! export HERALD_TEST_POSTGRES_URL="$(scripts/postgres.sh start /tmp/herald-pg)"
//! cargo test -p herald-bench --test espg
//! scripts/postgres.sh stop /tmp/herald-pg
//! ```
//!
//! Without `HERALD_TEST_POSTGRES_URL` the test says so and passes;
//! `.ci/run` sets it whenever it can start PostgreSQL.

use std::time::Duration;

use herald_bench::es::EsAppendOptions;
use herald_bench::espg::run_pg_append;
use herald_bench::Report as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_stored_once_with_consecutive_versions() {
    let Ok(url) = std::env::var("HERALD_TEST_POSTGRES_URL") else {
        eprintln!(
            "HERALD_TEST_POSTGRES_URL is not set: skipped (scripts/postgres.sh start <dir> prints one)"
        );
        return;
    };
    let opts = EsAppendOptions {
        aggregates: 4,
        payload_size: 3000,
        duration: Duration::from_millis(500),
        warmup: Duration::from_millis(100),
    };
    // Twice: the second run finds the table and must start it empty.
    for _ in 0..2 {
        let report = run_pg_append(&url, &opts).await.expect("run");
        assert_eq!(report.error, None, "{}", report.line());
        assert!(report.appends > 0, "{}", report.line());
        assert!(report.total_appended >= report.appends);
        assert_eq!(report.conflicts, 0);
        assert!(report.latency.is_some());
        let durability = &report.durability;
        assert!(durability.contains("synchronous_commit on"), "{durability}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let opts = EsAppendOptions {
        duration: Duration::from_millis(100),
        ..EsAppendOptions::default()
    };
    // Port 1 on loopback: nothing listens there.
    let err = run_pg_append("postgres://postgres@127.0.0.1:1/herald", &opts)
        .await
        .expect_err("no server");
    assert!(format!("{err:#}").contains("connecting to"), "{err:#}");
}
