//! Event-carried state transfer (replicas kept from a stream's last message
//! per subject) and event notification (thin events, then fetch), through
//! the real server.

use std::time::Duration;

use herald_client::jetstream::{JetStream, StreamConfig};
use herald_client::{Client, ConnectOptions, Headers};
use herald_events::envelope::CONTENT_TYPE;
use herald_events::{
    fetch_latest, AggregateId, Codec, EventStore, ExpectedVersion, NewEvent, Notification, Notifier, Replica,
    ReplicaConfig,
};
use serde::{Deserialize, Serialize};

use crate::support::{server, within, WAIT};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    city: String,
}

fn customer(name: &str, city: &str) -> Customer {
    Customer {
        name: name.into(),
        city: city.into(),
    }
}

/// `CUSTOMERS`: the owning service's stream; states on
/// `customers.state.<id>`, other traffic on other `customers.` subjects.
async fn customers_stream(js: &JetStream) {
    let mut config = StreamConfig::new("CUSTOMERS", vec!["customers.>".into()]);
    config.allow_direct = true;
    js.create_stream(config).await.unwrap();
}

/// Publishes a customer's full state; returns its stream position.
async fn put(js: &JetStream, id: &str, state: &Customer) -> u64 {
    let subject = format!("customers.state.{id}");
    js.publish(&subject, serde_json::to_vec(state).unwrap())
        .await
        .unwrap()
        .seq
}

/// Publishes a tombstone for a customer.
async fn delete(js: &JetStream, id: &str) -> u64 {
    js.publish(&format!("customers.state.{id}"), b"")
        .await
        .unwrap()
        .seq
}

fn city(replica: &Replica<Customer>, id: &str) -> Option<String> {
    replica.get(id).map(|c| c.city.clone())
}

#[tokio::test]
async fn a_replica_starts_from_the_last_state_of_each_key() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    put(&js, "c-1", &customer("ada", "Paris")).await;
    put(&js, "c-2", &customer("bob", "Rome")).await;
    put(&js, "c-1", &customer("ada", "Oslo")).await;
    put(&js, "c-3", &customer("eve", "Lima")).await;
    delete(&js, "c-3").await;
    js.publish("customers.audit.c-1", "not a state").await.unwrap();
    js.publish("customers.state.c-4", "not json").await.unwrap();
    // State written by the event store's envelope, as CBOR.
    let mut headers = Headers::new();
    headers.append(CONTENT_TYPE, Codec::Cbor.content_type());
    headers.append("ce-type", "CustomerRegistered");
    let cbor = Codec::Cbor
        .encode(&serde_json::json!({"name": "kim", "city": "Seoul"}))
        .unwrap();
    let last = js
        .publish_with("customers.state.c-5", Some(&headers), cbor, Default::default())
        .await
        .unwrap()
        .seq;

    let replica: Replica<Customer> = within("start", Replica::start(&js, "CUSTOMERS", "customers.state.*"))
        .await
        .unwrap();
    let mut keys = replica.keys();
    keys.sort();
    assert_eq!(keys, ["c-1", "c-2", "c-5"]);
    assert_eq!(*replica.get("c-1").unwrap(), customer("ada", "Oslo"));
    assert_eq!(city(&replica, "c-2").as_deref(), Some("Rome"));
    assert_eq!(city(&replica, "c-5").as_deref(), Some("Seoul"));
    assert!(replica.get("c-3").is_none(), "deleted before the start");
    assert!(!replica.contains_key("c-4"), "undecodable");
    assert_eq!(replica.position(), last);
    let status = replica.status();
    assert_eq!(
        (status.keys, status.skipped, status.resyncs),
        (3, 1, 0),
        "{status:?}"
    );
    assert!(status.connected && replica.is_connected(), "{status:?}");
    let snapshot = replica.snapshot();
    assert_eq!(snapshot.len(), 3);
    assert_eq!(snapshot["c-2"].name, "bob");
}

#[tokio::test]
async fn a_replica_follows_updates_and_deletes() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    let replica: Replica<Customer> = within("start", Replica::start(&js, "CUSTOMERS", "customers.state.*"))
        .await
        .unwrap();
    assert!(replica.is_empty());
    assert_eq!(replica.position(), 0);
    let mut changes = replica.changes();

    let first = put(&js, "c-1", &customer("ada", "Paris")).await;
    assert_eq!(replica.wait_for(first, WAIT).await.unwrap(), first);
    assert_eq!(city(&replica, "c-1").as_deref(), Some("Paris"));
    let change = within("change", changes.recv()).await.unwrap();
    assert_eq!((change.key.as_str(), change.position), ("c-1", first));
    assert_eq!(change.value.unwrap().city, "Paris");

    // Other subjects of the stream are not the replica's.
    js.publish("customers.audit.c-1", "x").await.unwrap();
    let moved = put(&js, "c-1", &customer("ada", "Oslo")).await;
    let other = put(&js, "c-2", &customer("bob", "Rome")).await;
    replica.wait_for(other, WAIT).await.unwrap();
    assert_eq!(city(&replica, "c-1").as_deref(), Some("Oslo"));
    assert_eq!(replica.len(), 2);
    let change = within("change", changes.recv()).await.unwrap();
    assert_eq!((change.key.as_str(), change.position), ("c-1", moved));

    let gone = delete(&js, "c-1").await;
    replica.wait_for(gone, WAIT).await.unwrap();
    assert!(replica.get("c-1").is_none());
    assert_eq!(replica.keys(), ["c-2"]);
    within("change", changes.recv()).await.unwrap(); // c-2
    let change = within("change", changes.recv()).await.unwrap();
    assert_eq!((change.key.as_str(), change.position), ("c-1", gone));
    assert!(change.value.is_none());

    // A position that never comes is a timeout, not a hang.
    let err = replica
        .wait_for(gone + 10, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, herald_events::Error::Client(herald_client::Error::Timeout)),
        "{err}"
    );
}

#[tokio::test]
async fn a_replica_serves_reads_while_the_source_service_is_down() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    // The owning service, on its own connection.
    let source = Client::connect(&server.url()).await.unwrap();
    let source_js = source.jetstream();
    put(&source_js, "c-1", &customer("ada", "Paris")).await;
    let last = put(&source_js, "c-2", &customer("bob", "Rome")).await;

    let replica: Replica<Customer> = within("start", Replica::start(&js, "CUSTOMERS", "customers.state.*"))
        .await
        .unwrap();
    source.close().await;
    drop(source_js);

    // Nobody publishes for a while: heartbeats keep the replica current.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(city(&replica, "c-1").as_deref(), Some("Paris"));
    assert_eq!(city(&replica, "c-2").as_deref(), Some("Rome"));
    assert_eq!(replica.position(), last);
    assert!(replica.is_connected(), "{:?}", replica.status());
    assert!(
        replica.staleness() < Duration::from_secs(2),
        "{:?}",
        replica.status()
    );
    assert_eq!(replica.status().recoveries, 0);
}

#[tokio::test]
async fn a_replica_serves_reads_while_the_server_is_down_and_catches_up_after() {
    let server = server!();
    let client = ConnectOptions::new()
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(200))
        .connect(&server.url())
        .await
        .unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    put(&js, "c-1", &customer("ada", "Paris")).await;
    put(&js, "c-2", &customer("bob", "Rome")).await;
    let replica: Replica<Customer> = within("start", Replica::start(&js, "CUSTOMERS", "customers.state.*"))
        .await
        .unwrap();
    assert!(replica.is_connected());

    let stopped = server.kill();
    within("the replica notices", async {
        while replica.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Reads come from the local copy.
    assert_eq!(city(&replica, "c-1").as_deref(), Some("Paris"));
    assert_eq!(city(&replica, "c-2").as_deref(), Some("Rome"));
    assert_eq!(replica.len(), 2);
    assert!(replica.staleness() >= Duration::from_millis(500));

    let server = stopped.restart();
    // The source publishes as soon as it can, maybe before the replica
    // has reconnected.
    let source = Client::connect(&server.url()).await.unwrap();
    let source_js = source.jetstream();
    put(&source_js, "c-1", &customer("ada", "Oslo")).await;
    delete(&source_js, "c-2").await;
    let last = put(&source_js, "c-3", &customer("eve", "Lima")).await;
    within("catch up", replica.wait_for(last, WAIT)).await.unwrap();
    assert_eq!(city(&replica, "c-1").as_deref(), Some("Oslo"));
    assert!(replica.get("c-2").is_none());
    assert_eq!(city(&replica, "c-3").as_deref(), Some("Lima"));
    assert_eq!(replica.len(), 2);
    let status = replica.status();
    assert!(status.connected && status.recoveries >= 1, "{status:?}");
    assert_eq!(status.resyncs, 0, "the stream kept everything: no reload needed");

    // And it keeps following.
    let next = put(&source_js, "c-3", &customer("eve", "Quito")).await;
    replica.wait_for(next, WAIT).await.unwrap();
    assert_eq!(city(&replica, "c-3").as_deref(), Some("Quito"));
}

#[tokio::test]
async fn a_replica_repairs_missed_deliveries() {
    let server = server!();
    let source = Client::connect(&server.url()).await.unwrap();
    customers_stream(&source.jetstream()).await;
    /// Publishes `rounds` states of customers `c-0..c-<keys>`, as fast as
    /// the connection goes; returns the last stream position.
    async fn burst(source: &Client, keys: u64, rounds: u64) -> u64 {
        let js = source.jetstream();
        let target = js.stream_info("CUSTOMERS").await.unwrap().state.last_seq + keys * rounds;
        for round in 0..rounds {
            for key in 0..keys {
                let state = customer(&format!("n{key}"), &format!("city-{round}"));
                let subject = format!("customers.state.c-{key}");
                source
                    .publish(&subject, serde_json::to_vec(&state).unwrap())
                    .unwrap();
            }
        }
        source.flush().await.unwrap();
        // nats-server stores a burst of core publishes asynchronously: wait
        // until the stream holds this burst (Herald already does).
        within("burst stored", async {
            loop {
                let info = js.stream_info("CUSTOMERS").await.unwrap();
                if info.state.last_seq >= target {
                    return info.state.last_seq;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
    }
    let check = |replica: &Replica<Customer>, keys: u64, round: u64| {
        for key in 0..keys {
            let id = format!("c-{key}");
            assert_eq!(city(replica, &id), Some(format!("city-{round}")), "{id}");
        }
    };
    let loaded = burst(&source, 500, 2).await;
    assert_eq!(loaded, 1000);

    // A tiny queue: the snapshot's burst overflows it, as does the live one.
    let client = ConnectOptions::new()
        .subscription_capacity(64)
        .connect(&server.url())
        .await
        .unwrap();
    let js = client.jetstream();
    let replica: Replica<Customer> = within("start", Replica::start(&js, "CUSTOMERS", "customers.state.*"))
        .await
        .unwrap();
    assert_eq!((replica.len(), replica.position()), (500, loaded));
    check(&replica, 500, 1);
    let recoveries = replica.status().recoveries;
    assert!(recoveries >= 1, "{:?}", replica.status());

    let last = burst(&source, 20, 50).await;
    assert_eq!(last, loaded + 1000);
    let caught_up = replica.wait_for(last, WAIT).await;
    assert!(caught_up.is_ok(), "{caught_up:?} {:?}", replica.status());
    assert_eq!(replica.len(), 500);
    check(&replica, 20, 49);
    assert_eq!(city(&replica, "c-20").as_deref(), Some("city-1"));
}

#[tokio::test]
async fn a_replica_reloads_a_recreated_stream() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    put(&js, "c-1", &customer("ada", "Paris")).await;
    put(&js, "c-2", &customer("bob", "Rome")).await;
    let config = ReplicaConfig {
        heartbeat: Duration::from_millis(300),
        ..ReplicaConfig::new("CUSTOMERS", "customers.state.*")
    };
    let replica: Replica<Customer> = within(
        "start",
        Replica::start_with(&js, config, herald_events::replica::last_token, |m| {
            herald_events::notification::decode_state(m.headers.as_ref(), &m.payload)
        }),
    )
    .await
    .unwrap();
    assert_eq!(replica.position(), 2);
    let mut changes = replica.changes();

    js.delete_stream("CUSTOMERS").await.unwrap();
    customers_stream(&js).await;
    put(&js, "c-9", &customer("zoe", "Kyiv")).await;
    within("reload", async {
        while replica.get("c-9").is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // The old keys went with the old stream, all at once.
    assert_eq!(replica.keys(), ["c-9"]);
    assert_eq!(replica.position(), 1);
    assert!(replica.status().resyncs >= 1, "{:?}", replica.status());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let change = within("change", changes.recv()).await.unwrap();
        seen.push((change.key, change.value.map(|v| v.city.clone())));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("c-1".to_string(), None),
            ("c-2".to_string(), None),
            ("c-9".to_string(), Some("Kyiv".to_string()))
        ]
    );
}

#[tokio::test]
async fn a_replica_takes_custom_keys_and_decoders() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    js.create_stream(StreamConfig::new("ITEMS", vec!["items.*".into()]))
        .await
        .unwrap();
    js.publish("items.7", "seven").await.unwrap();
    js.publish("items.x", "no number").await.unwrap();
    js.publish("items.8", [0xff, 0xfe]).await.unwrap();
    let replica: Replica<String, u32> = within(
        "start",
        Replica::start_with(
            &js,
            ReplicaConfig::new("ITEMS", "items.*"),
            |subject: &str| subject.strip_prefix("items.")?.parse().ok(),
            |message: &herald_client::Message| {
                String::from_utf8(message.payload.to_vec())
                    .map_err(|e| herald_events::Error::Codec(e.to_string()))
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(replica.get(&7).as_deref().map(String::as_str), Some("seven"));
    assert_eq!(replica.keys(), [7]);
    assert_eq!(replica.status().skipped, 2);
    let seq = js.publish("items.9", "nine").await.unwrap().seq;
    replica.wait_for(seq, WAIT).await.unwrap();
    assert_eq!(replica.get(&9).as_deref().map(String::as_str), Some("nine"));
}

#[tokio::test]
async fn a_replica_of_a_missing_stream_fails_to_start() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let err = Replica::<Customer>::start(&client.jetstream(), "NOPE", "nope.*")
        .await
        .unwrap_err();
    match err {
        herald_events::Error::Client(e) => assert!(e.is_stream_not_found(), "{e}"),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn notifications_are_thin_and_receivers_fetch_the_state() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let js = client.jetstream();
    customers_stream(&js).await;
    let receiver = Client::connect(&server.url()).await.unwrap();
    let mut notifications = Notifier::new(&receiver)
        .subscribe("notify.customers")
        .await
        .unwrap();
    receiver.flush().await.unwrap();

    // The owner stores the state, then notifies.
    let notifier = Notifier::new(&client);
    put(&js, "c-1", &customer("ada", "Paris")).await;
    let version = put(&js, "c-1", &customer("ada", "Oslo")).await;
    let sent = Notification::new("c-1", version, "CustomerMoved");
    notifier.notify("notify.customers", &sent).unwrap();

    let got = within("notification", notifications.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, sent);
    let subject = format!("customers.state.{}", got.key);
    let latest = fetch_latest::<Customer>(&receiver.jetstream(), "CUSTOMERS", &subject)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((latest.version, latest.value), (version, customer("ada", "Oslo")));
    assert_eq!(latest.subject, subject);

    // A deleted entity and an unknown one have no state.
    let gone = delete(&js, "c-1").await;
    notifier
        .notify(
            "notify.customers",
            &Notification::new("c-1", gone, "CustomerForgotten"),
        )
        .unwrap();
    let got = within("notification", notifications.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.version, got.event_type.as_str()),
        (gone, "CustomerForgotten")
    );
    assert!(fetch_latest::<Customer>(&js, "CUSTOMERS", &subject)
        .await
        .unwrap()
        .is_none());
    assert!(
        fetch_latest::<Customer>(&js, "CUSTOMERS", "customers.state.nobody")
            .await
            .unwrap()
            .is_none()
    );

    // Not a notification: an error for that message, the next one is fine.
    client.publish("notify.customers", "hello").unwrap();
    notifier
        .notify("notify.customers", &Notification::new("c-2", 0, "Pinged"))
        .unwrap();
    assert!(within("garbage", notifications.next()).await.unwrap().is_err());
    let got = within("notification", notifications.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.key, "c-2");
}

#[tokio::test]
async fn notifications_of_appends_lead_to_the_event_store() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let notifier = Notifier::new(&client);
    let mut notifications = notifier
        .queue_subscribe("notify.accounts", "readers")
        .await
        .unwrap();
    client.flush().await.unwrap();

    let account = AggregateId::new("accounts", "a-1").unwrap();
    let events = [
        NewEvent::json("Opened", r#"{"owner":"ada"}"#),
        NewEvent::json("Deposited", r#"{"amount":5}"#),
    ];
    let appended = store
        .append(&account, ExpectedVersion::NoEvents, &events)
        .await
        .unwrap();
    notifier
        .notify("notify.accounts", &Notification::appended(&appended, "Deposited"))
        .unwrap();

    let got = within("notification", notifications.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.key.as_str(), got.version),
        ("accounts.a-1", appended.version)
    );
    let aggregate = got.aggregate().unwrap();
    assert_eq!(aggregate, account);
    let history = store.read(&aggregate, 0).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history.last().unwrap().position, got.version);
    assert_eq!(store.version(&aggregate).await.unwrap(), got.version);
    let stream = store.stream_name(aggregate.category());
    let last = fetch_latest::<serde_json::Value>(store.jetstream(), &stream, &got.key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.version, last.value["amount"].as_u64()),
        (got.version, Some(5))
    );
}
