//! The key-value API (buckets are streams `KV_<bucket>` on `$KV.<bucket>.>`).

use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::stream::DiscardPolicy;
use futures_util::{StreamExt as _, TryStreamExt as _};

use crate::util::*;

async fn bucket(env: &Env, name: &str, history: i64) -> kv::Store {
    within(
        "create bucket",
        env.js.create_key_value(kv::Config {
            bucket: name.into(),
            history,
            ..Default::default()
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("create bucket {name}: {e:?}"))
}

async fn put(store: &kv::Store, key: &str, value: &str) -> u64 {
    within("put", store.put(key, value.to_string().into()))
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
}

async fn get(store: &kv::Store, key: &str) -> Option<String> {
    within("get", store.get(key))
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

async fn history(store: &kv::Store, key: &str) -> Vec<kv::Entry> {
    let entries = within("history", store.history(key))
        .await
        .unwrap_or_else(|e| panic!("history {key}: {e:?}"));
    within("history entries", entries.try_collect())
        .await
        .unwrap_or_else(|e| panic!("history {key}: {e:?}"))
}

#[tokio::test]
async fn create_bucket_and_status() {
    let env = Env::start().await;
    let store = bucket(&env, "config", 5).await;
    assert_eq!(store.name, "config");

    // The bucket is a stream with the KV settings.
    let info = env.info("KV_config").await;
    let c = &info.config;
    assert_eq!(c.subjects, vec!["$KV.config.>".to_string()]);
    assert_eq!(c.max_messages_per_subject, 5);
    assert!(c.allow_rollup, "KV purge needs rollups");
    assert!(c.deny_delete);
    assert!(c.allow_direct);
    assert_eq!(c.discard, DiscardPolicy::New);

    put(&store, "a", "1").await;
    put(&store, "a", "2").await;
    put(&store, "b", "3").await;
    // Status comes from fresh stream info.
    let store = within("get bucket", env.js.get_key_value("config"))
        .await
        .expect("bucket exists");
    let status = store.status().await.expect("status");
    assert_eq!(status.bucket(), "config");
    assert_eq!(status.history(), 5);
    assert_eq!(status.values(), 3);
    assert_eq!(status.max_age(), Duration::ZERO);

    let err = within("get unknown bucket", env.js.get_key_value("nope")).await;
    assert!(err.is_err(), "no bucket nope");
}

#[tokio::test]
async fn put_and_get() {
    let env = Env::start().await;
    let store = bucket(&env, "kv", 1).await;
    assert_eq!(put(&store, "greeting", "hello").await, 1);
    assert_eq!(put(&store, "other.key", "x").await, 2);
    assert_eq!(get(&store, "greeting").await.as_deref(), Some("hello"));
    assert_eq!(get(&store, "other.key").await.as_deref(), Some("x"));
    assert_eq!(get(&store, "missing").await, None);

    let entry = within("entry", store.entry("greeting"))
        .await
        .unwrap()
        .expect("entry exists");
    assert_eq!(entry.bucket, "kv");
    assert_eq!(entry.key, "greeting");
    assert_eq!(entry.value, "hello".as_bytes());
    assert_eq!(entry.revision, 1);
    assert_eq!(entry.operation, Operation::Put);

    // Overwrite: new revision, new value.
    assert_eq!(put(&store, "greeting", "bye").await, 3);
    assert_eq!(get(&store, "greeting").await.as_deref(), Some("bye"));
    // A specific revision.
    let old = within("entry for revision", store.entry_for_revision("other.key", 2))
        .await
        .unwrap()
        .expect("revision 2");
    assert_eq!(old.value, "x".as_bytes());
}

#[tokio::test]
async fn history_keeps_the_configured_number_of_revisions() {
    let env = Env::start().await;
    let store = bucket(&env, "hist", 3).await;
    for v in ["v1", "v2", "v3", "v4"] {
        put(&store, "k", v).await;
    }
    put(&store, "other", "o").await;
    let entries = history(&store, "k").await;
    let seen: Vec<(u64, String)> = entries
        .iter()
        .map(|e| (e.revision, String::from_utf8_lossy(&e.value).into_owned()))
        .collect();
    assert_eq!(
        seen,
        [
            (2, "v2".to_string()),
            (3, "v3".to_string()),
            (4, "v4".to_string())
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e.key == "k" && e.operation == Operation::Put));
}

#[tokio::test]
async fn update_with_the_right_revision_and_stale_revision_rejected() {
    let env = Env::start().await;
    let store = bucket(&env, "cas", 5).await;
    let r1 = put(&store, "k", "v1").await;
    let r2 = within("update", store.update("k", "v2".into(), r1))
        .await
        .expect("update with the current revision");
    assert!(r2 > r1);
    let err = within("stale update", store.update("k", "v3".into(), r1))
        .await
        .expect_err("stale revision");
    assert_eq!(err.kind(), UpdateErrorKind::WrongLastRevision, "{err:?}");
    assert_eq!(get(&store, "k").await.as_deref(), Some("v2"));
    // Another key's write does not change k's revision.
    put(&store, "other", "x").await;
    let r3 = within("update after other key", store.update("k", "v3".into(), r2))
        .await
        .expect("k's revision is still r2");
    assert_eq!(get(&store, "k").await.as_deref(), Some("v3"));
    assert!(r3 > r2);
}

#[tokio::test]
async fn create_fails_on_an_existing_key() {
    let env = Env::start().await;
    let store = bucket(&env, "create", 5).await;
    let r1 = within("create", store.create("k", "first".into()))
        .await
        .expect("create a new key");
    let err = within("create again", store.create("k", "second".into()))
        .await
        .expect_err("key exists");
    assert_eq!(err.kind(), CreateErrorKind::AlreadyExists, "{err:?}");
    assert_eq!(get(&store, "k").await.as_deref(), Some("first"));
    // After a delete the key can be created again.
    within("delete", store.delete("k")).await.expect("delete");
    let r2 = within("create after delete", store.create("k", "again".into()))
        .await
        .expect("create after delete");
    assert!(r2 > r1);
    assert_eq!(get(&store, "k").await.as_deref(), Some("again"));
}

#[tokio::test]
async fn delete_and_purge_leave_markers() {
    let env = Env::start().await;
    let store = bucket(&env, "del", 10).await;
    put(&store, "a", "a1").await;
    put(&store, "a", "a2").await;
    within("delete", store.delete("a")).await.expect("delete");
    assert_eq!(get(&store, "a").await, None);
    let entries = history(&store, "a").await;
    let ops: Vec<Operation> = entries.iter().map(|e| e.operation).collect();
    assert_eq!(ops, [Operation::Put, Operation::Put, Operation::Delete]);
    assert!(entries[2].value.is_empty());

    put(&store, "b", "b1").await;
    put(&store, "b", "b2").await;
    within("purge", store.purge("b")).await.expect("purge");
    assert_eq!(get(&store, "b").await, None);
    // A purge rolls the key up into its marker.
    let entries = history(&store, "b").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].operation, Operation::Purge);
    // a's history is untouched by b's purge.
    assert_eq!(history(&store, "a").await.len(), 3);
}

#[tokio::test]
async fn keys_lists_live_keys() {
    let env = Env::start().await;
    let store = bucket(&env, "keys", 1).await;
    for key in ["c", "a", "b.x", "d"] {
        put(&store, key, "v").await;
    }
    put(&store, "a", "v2").await;
    within("delete", store.delete("d")).await.unwrap();
    within("purge", store.purge("c")).await.unwrap();
    let keys = within("keys", store.keys()).await.expect("keys");
    let mut keys: Vec<String> = within("keys", keys.try_collect()).await.expect("keys");
    keys.sort();
    assert_eq!(keys, ["a", "b.x"]);
}

type Event = (String, Operation, String, u64);

/// The next watch entry as (key, operation, value, revision).
async fn next_event(watch: &mut kv::Watch) -> Event {
    let entry = within("watch event", watch.next())
        .await
        .expect("watch ended")
        .expect("watch entry");
    (
        entry.key.clone(),
        entry.operation,
        String::from_utf8_lossy(&entry.value).into_owned(),
        entry.revision,
    )
}

#[tokio::test]
async fn watch_receives_puts_and_deletes() {
    let env = Env::start().await;
    let store = bucket(&env, "watch", 5).await;
    put(&store, "before", "old").await;
    let mut watch = within("watch", store.watch_all()).await.expect("watch");
    // Each change is awaited before the next: a purge rolls up the key, so
    // a watcher that has not yet been sent an older value may never see it.
    put(&store, "x", "1").await;
    assert_eq!(
        next_event(&mut watch).await,
        ("x".into(), Operation::Put, "1".into(), 2)
    );
    within("delete", store.delete("x")).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        ("x".into(), Operation::Delete, String::new(), 3)
    );
    put(&store, "y", "2").await;
    assert_eq!(
        next_event(&mut watch).await,
        ("y".into(), Operation::Put, "2".into(), 4)
    );
    within("purge", store.purge("y")).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        ("y".into(), Operation::Purge, String::new(), 5)
    );

    // A watch of one key with history starts with its current value.
    let mut one = within("watch with history", store.watch_with_history("before"))
        .await
        .expect("watch");
    let first = within("initial value", one.next()).await.unwrap().unwrap();
    assert_eq!(
        (first.key.as_str(), &first.value[..]),
        ("before", "old".as_bytes())
    );
    put(&store, "x", "ignored").await;
    put(&store, "before", "new").await;
    let next = within("update", one.next()).await.unwrap().unwrap();
    assert_eq!((next.key.as_str(), &next.value[..]), ("before", "new".as_bytes()));
}
