//! `/v1/kv…`: buckets and keys, compare-and-set, and NATS KV clients on
//! the same buckets.

use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_problem, delete, get, send, send_json, IntoPair};
use crate::util::{status_and_json, within, Env};

async fn put_value(env: &Env, path: &str, headers: &[(&str, &str)], value: &[u8]) -> (u16, Value) {
    send(
        env,
        Method::PUT,
        path,
        headers,
        Some(("application/octet-stream", value.to_vec())),
    )
    .await
    .into_pair()
}

/// GET of a key: status, value bytes, `Herald-Revision`.
async fn get_value(env: &Env, path: &str) -> (u16, Vec<u8>, Option<u64>) {
    let response = within("GET", env.http.get(env.url(path)).send())
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let revision = response
        .headers()
        .get("herald-revision")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if status == 200 {
        assert_eq!(response.headers()["content-type"], "application/octet-stream");
        let bytes = within("body", response.bytes()).await.expect("body").to_vec();
        (status, bytes, revision)
    } else {
        let (status, problem) = status_and_json(response).await;
        (status, problem.to_string().into_bytes(), revision)
    }
}

#[tokio::test]
async fn kv_buckets_and_keys_with_compare_and_set_interoperate_with_nats_clients() {
    let env = Env::start().await;
    let (status, bucket) = send_json(
        &env,
        Method::PUT,
        "/v1/kv/config",
        json!({"history": 5, "ttl_ms": 3_600_000}),
    )
    .await;
    assert_eq!(status, 201, "{bucket}");
    assert_eq!(bucket["stream"], "KV_config");
    assert_eq!(
        (bucket["history"].as_i64(), bucket["ttl_ms"].as_i64()),
        (Some(5), Some(3_600_000))
    );
    let (status, _) = send_json(
        &env,
        Method::PUT,
        "/v1/kv/config",
        json!({"history": 5, "ttl_ms": 3_600_000}),
    )
    .await;
    assert_eq!(status, 200, "same settings");
    assert_problem(
        "other settings",
        &send_json(&env, Method::PUT, "/v1/kv/config", json!({"history": 2})).await,
        409,
        Some(10058),
    );

    let (status, put) = put_value(&env, "/v1/kv/config/mode", &[], b"fast").await;
    assert_eq!((status, put["revision"].as_u64()), (200, Some(1)), "{put}");
    assert_eq!(
        get_value(&env, "/v1/kv/config/mode").await,
        (200, b"fast".to_vec(), Some(1))
    );
    // A NATS KV client reads and writes the same bucket.
    let store = within("bucket", env.js.get_key_value("config"))
        .await
        .expect("a KV bucket for async-nats");
    assert_eq!(
        within("kv get", store.get("mode")).await.unwrap().as_deref(),
        Some(&b"fast"[..])
    );
    let revision = within("kv put", store.put("mode", "safe".into())).await.unwrap();
    assert_eq!(revision, 2);
    assert_eq!(
        get_value(&env, "/v1/kv/config/mode").await,
        (200, b"safe".to_vec(), Some(2))
    );

    // Compare-and-set.
    let stale = put_value(&env, "/v1/kv/config/mode", &[("if-match", "1")], b"lost").await;
    assert_problem("stale revision", &stale, 412, Some(10071));
    let (status, put) = put_value(&env, "/v1/kv/config/mode", &[("if-match", "2")], b"won").await;
    assert_eq!((status, put["revision"].as_u64()), (200, Some(3)));
    let exists = put_value(&env, "/v1/kv/config/mode", &[("if-none-match", "*")], b"x").await;
    assert_problem("create over a value", &exists, 412, Some(10071));
    let (status, put) = put_value(&env, "/v1/kv/config/fresh", &[("if-none-match", "*")], b"new").await;
    assert_eq!((status, put["revision"].as_u64()), (200, Some(4)));
    assert_problem(
        "both conditions",
        &put_value(
            &env,
            "/v1/kv/config/x",
            &[("if-match", "1"), ("if-none-match", "*")],
            b"",
        )
        .await,
        400,
        None,
    );
    assert_problem(
        "bad revision",
        &put_value(&env, "/v1/kv/config/x", &[("if-match", "latest")], b"").await,
        400,
        None,
    );

    let (status, keys) = get(&env, "/v1/kv/config/keys").await;
    assert_eq!(
        (status, keys),
        (200, json!({"keys": ["fresh", "mode"], "truncated": false}))
    );

    // Delete: a marker; the key has no value (for NATS clients too) until
    // it is created again.
    let (status, body) = delete(&env, "/v1/kv/config/mode").await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(get_value(&env, "/v1/kv/config/mode").await.0, 404);
    assert_eq!(within("kv get", store.get("mode")).await.unwrap(), None);
    let (_, keys) = get(&env, "/v1/kv/config/keys").await;
    assert_eq!(keys["keys"], json!(["fresh"]));
    let (status, put) = put_value(&env, "/v1/kv/config/mode", &[("if-none-match", "*")], b"back").await;
    assert_eq!(
        (status, put["revision"].as_u64()),
        (200, Some(6)),
        "create over a delete marker"
    );

    // The key named `keys` is written and deleted like any other, and read
    // with its name percent-encoded (`GET .../keys` lists the keys).
    assert_eq!(put_value(&env, "/v1/kv/config/keys", &[], b"k").await.0, 200);
    assert_eq!(
        within("kv get", store.get("keys")).await.unwrap().as_deref(),
        Some(&b"k"[..])
    );
    let (status, value, _) = get_value(&env, "/v1/kv/config/%6Beys").await;
    assert_eq!((status, value.as_slice()), (200, &b"k"[..]));
    assert_eq!(delete(&env, "/v1/kv/config/keys").await.0, 204);

    let (status, list) = get(&env, "/v1/kv").await;
    assert_eq!((status, list), (200, json!({"buckets": ["config"]})));
    let (status, info) = get(&env, "/v1/kv/config").await;
    assert_eq!((status, info["values"].as_u64()), (200, Some(8)), "{info}");

    // Errors.
    assert_problem(
        "unknown bucket",
        &(get_value(&env, "/v1/kv/nope/mode").await.0, json!({})),
        404,
        None,
    );
    assert_problem(
        "put to unknown bucket",
        &put_value(&env, "/v1/kv/nope/mode", &[], b"v").await,
        404,
        Some(10059),
    );
    assert_problem("bad bucket name", &get(&env, "/v1/kv/a.b").await, 400, None);
    assert_problem(
        "bad key",
        &put_value(&env, "/v1/kv/config/a..b", &[], b"v").await,
        400,
        None,
    );
    assert_problem(
        "wildcard key",
        &put_value(&env, "/v1/kv/config/a*", &[], b"v").await,
        400,
        None,
    );
    assert_problem(
        "history too long",
        &send_json(&env, Method::PUT, "/v1/kv/other", json!({"history": 65})).await,
        400,
        None,
    );
    assert_problem(
        "unknown setting",
        &send_json(&env, Method::PUT, "/v1/kv/other", json!({"replicas": 3})).await,
        400,
        None,
    );
    let oversize = vec![b'v'; 1024 * 1024 + 1];
    assert_problem(
        "value over max_payload",
        &put_value(&env, "/v1/kv/config/big", &[], &oversize).await,
        413,
        None,
    );

    let (status, body) = delete(&env, "/v1/kv/config").await;
    assert_eq!(status, 204, "{body}");
    assert_problem(
        "deleted bucket",
        &get(&env, "/v1/kv/config/keys").await,
        404,
        Some(10059),
    );
    assert_eq!(get(&env, "/v1/kv").await.1, json!({"buckets": []}));
}
