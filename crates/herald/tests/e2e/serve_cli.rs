//! `herald serve` as an operator meets it: help, validation, the config
//! file, the startup banner, the data directory and signals.

use std::time::Duration;

use crate::support::*;

const SERVE_FLAGS: [&str; 15] = [
    "--host",
    "--port",
    "--http-port",
    "--data-dir",
    "--config",
    "--log-level",
    "--max-payload",
    "--max-control-line",
    "--max-connections",
    "--max-subscriptions",
    "--max-pending",
    "--ping-interval-ms",
    "--max-pings-out",
    "--write-deadline-ms",
    "--server-name",
];

#[test]
fn serve_help_mentions_every_flag() {
    let out = run_herald(&["serve", "--help"]);
    assert!(out.status.success(), "{out:?}");
    for flag in SERVE_FLAGS {
        assert!(
            out.stdout.contains(flag),
            "`herald serve --help` does not mention {flag}:\n{}",
            out.stdout
        );
    }
}

/// Runs `herald serve` with loopback/free-port defaults plus `extra`, which
/// must make it refuse to start; returns its stderr.
fn refused(extra: &[&str]) -> String {
    let dir = TempDir::new("refused");
    let data_dir = dir.path().join("data").display().to_string();
    let mut args = vec![
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--http-port",
        "0",
        "--data-dir",
        &data_dir,
        "--log-level",
        "warn",
    ];
    args.extend_from_slice(extra);
    let out = run_herald(&args);
    assert!(
        !out.status.success(),
        "herald serve {extra:?} should refuse to start: {out:?}"
    );
    assert!(
        !out.stdout.contains("listening"),
        "herald serve {extra:?} printed a listening banner: {out:?}"
    );
    out.stderr
}

#[test]
fn invalid_config_values_exit_non_zero_with_a_message_naming_the_setting() {
    let cases: [(&[&str], &str); 4] = [
        (&["--max-payload", "0"], "max_payload"),
        (&["--max-payload", "1024", "--max-pending", "10"], "max_pending"),
        (&["--max-control-line", "10"], "max_control_line"),
        (&["--ping-interval-ms", "0"], "ping_interval_ms"),
    ];
    for (extra, setting) in cases {
        let stderr = refused(extra);
        assert!(
            stderr.contains(setting),
            "herald serve {extra:?}: stderr does not name {setting}: {stderr}"
        );
    }
}

#[test]
fn malformed_flag_value_is_refused_by_the_parser() {
    let stderr = refused(&["--max-payload", "lots"]);
    assert!(stderr.contains("--max-payload"), "{stderr}");
}

#[test]
fn unknown_config_file_key_is_refused_with_its_name() {
    let dir = TempDir::new("badconfig");
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, "port = 0\nhttp_port = 0\nmax_paylod = 2048\n").unwrap();
    let stderr = refused(&["--config", path.to_str().unwrap()]);
    assert!(stderr.contains("max_paylod"), "{stderr}");
}

/// TOML basic string for a path.
fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn config_file_is_honoured_and_flags_override_it() {
    let dir = TempDir::new("config");
    let data_dir = dir.path().join("data-from-file");
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"127.0.0.1\"\nport = 0\nhttp_port = 0\nmax_payload = 2048\nlog_level = \"warn\"\n\
             server_name = \"from-file\"\ndata_dir = {}\n",
            toml_string(&data_dir.display().to_string())
        ),
    )
    .unwrap();
    let config = config.display().to_string();

    // Only --config: port 0, http_port 0 and the rest come from the file.
    let server = TestServer::spawn(
        &["serve".into(), "--config".into(), config.clone()],
        TempDir::new("srv"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(server.client_addr.port(), 0);
    assert_ne!(server.http_addr.port(), 0);
    assert!(
        server.client_addr.ip().is_loopback(),
        "host from the file: {}",
        server.client_addr
    );
    let raw = server.raw();
    assert_eq!(raw.info["max_payload"], 2048, "INFO: {}", raw.info);
    assert_eq!(raw.info["server_name"], "from-file", "INFO: {}", raw.info);
    assert_eq!(server.varz_u64("max_payload"), 2048);
    assert!(data_dir.is_dir(), "data_dir from the file was not created");
    drop(raw);
    drop(server);

    // A flag wins over the file; keys the flags leave alone still apply.
    let server = TestServer::spawn(
        &[
            "serve".into(),
            "--config".into(),
            config,
            "--max-payload".into(),
            "4096".into(),
        ],
        TempDir::new("srv"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let raw = server.raw();
    assert_eq!(raw.info["max_payload"], 4096, "INFO: {}", raw.info);
    assert_eq!(raw.info["server_name"], "from-file", "INFO: {}", raw.info);
}

#[test]
fn startup_banner_is_exactly_two_lines_and_data_dir_is_created() {
    let mut server = TestServer::start();
    assert_eq!(
        server.banner[0],
        format!(
            "herald {VERSION} listening for clients on nats://{}",
            server.client_addr
        )
    );
    assert_eq!(
        server.banner[1],
        format!("herald HTTP API and monitoring on http://{}", server.http_addr)
    );
    assert_eq!(server.client_addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.client_addr.port(), server.http_addr.port());
    assert!(server.data_dir().is_dir(), "--data-dir was not created");
    let raw = server.raw();
    assert_eq!(
        raw.info["port"],
        server.client_addr.port(),
        "INFO port: {}",
        raw.info
    );
    assert_eq!(raw.info["proto"], 1);
    assert_eq!(raw.info["headers"], true);
    drop(raw);

    server.signal("TERM");
    let status = server.wait_exit(WAIT).expect("server did not stop on SIGTERM");
    assert!(status.success(), "{status}");
    assert_eq!(
        server.stdout_after_banner(),
        Vec::<String>::new(),
        "stdout must hold only the banner"
    );
}

#[test]
fn sigterm_stops_the_server_promptly_with_exit_code_zero() {
    let mut server = TestServer::start();
    let mut client = server.raw_connected(r#"{"verbose":false}"#);
    client.send("SUB a 1\r\n");
    assert_eq!(client.ping(), "");
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after SIGTERM");
    assert!(
        status.success(),
        "exit status after SIGTERM: {status}; stderr: {}",
        server.stderr()
    );
    // Open connections were closed, not abandoned.
    assert!(
        client.is_closed_within(Duration::from_secs(1)),
        "client connection left open"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&server.client_addr, Duration::from_secs(1)).is_err(),
        "the client port still accepts connections"
    );
}

#[test]
fn sigint_stops_the_server_with_exit_code_zero() {
    let mut server = TestServer::start();
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("server still running 5 s after SIGINT");
    assert!(
        status.success(),
        "exit status after SIGINT: {status}; stderr: {}",
        server.stderr()
    );
}
