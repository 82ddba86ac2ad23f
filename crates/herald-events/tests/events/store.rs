//! The event store: appends with expected versions, atomic batches, reads
//! and catch-up subscriptions, through the real server.

use herald_client::jetstream::{PublishOptions, BATCH_MSGS_MAX};
use herald_client::{Client, Headers};
use herald_events::envelope::{self, Causation};
use herald_events::{AggregateId, Error, EventStore, ExpectedVersion, NewEvent};

use crate::support::{server, within};

fn event(n: u32) -> NewEvent {
    NewEvent::json("Counted", format!(r#"{{"n":{n}}}"#))
}

#[tokio::test]
async fn appends_check_the_expected_version_and_read_back_in_order() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let a = AggregateId::new("counters", "a").unwrap();
    assert_eq!(store.version(&a).await.unwrap(), 0, "no stream yet");

    let first = store
        .append(&a, ExpectedVersion::NoEvents, &[event(1)])
        .await
        .unwrap();
    assert_eq!((first.first_position, first.version, first.count), (1, 1, 1));
    let err = store
        .append(&a, ExpectedVersion::NoEvents, &[event(2)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    let err = store
        .append(&a, ExpectedVersion::Exactly(7), &[event(2)])
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");

    let second = store
        .append(&a, ExpectedVersion::Exactly(1), &[event(2), event(3), event(4)])
        .await
        .unwrap();
    assert_eq!((second.first_position, second.version, second.count), (2, 4, 3));
    store.append(&a, ExpectedVersion::Any, &[event(5)]).await.unwrap();

    let events = store.read(&a, 0).await.unwrap();
    let data: Vec<_> = events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.data).to_string())
        .collect();
    assert_eq!(
        data,
        (1..=5).map(|n| format!(r#"{{"n":{n}}}"#)).collect::<Vec<_>>()
    );
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.version(&a).await.unwrap(), 5);
    assert_eq!(store.read(&a, 4).await.unwrap().len(), 2);
    assert!(store.read(&a, 6).await.unwrap().is_empty());

    // One batch shares its correlation id (the first event's id).
    let batch = &events[1..4];
    assert_eq!(batch[0].envelope.correlation_id, batch[0].envelope.id);
    assert!(batch
        .iter()
        .all(|e| e.envelope.correlation_id == batch[0].envelope.id));
    assert_eq!(batch[0].envelope.subject, "counters.a");
    assert_eq!(batch[0].envelope.event_type, "Counted");
}

#[tokio::test]
async fn a_batch_with_a_stale_expectation_stores_nothing() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let a = AggregateId::new("orders", "o-1").unwrap();
    store
        .append(&a, ExpectedVersion::NoEvents, &[event(1)])
        .await
        .unwrap();
    let other = AggregateId::new("orders", "o-2").unwrap();
    store
        .append(&other, ExpectedVersion::NoEvents, &[event(1)])
        .await
        .unwrap();

    // o-1 is at version 1; the stream's last position is 2.
    let err = store
        .append(&a, ExpectedVersion::Exactly(2), &[event(2), event(3), event(4)])
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let info = client.jetstream().stream_info("ES_orders").await.unwrap();
    assert_eq!(info.state.messages, 2, "nothing of the failed batch is stored");
    assert_eq!(store.read(&a, 0).await.unwrap().len(), 1);

    let too_many: Vec<_> = (0..=BATCH_MSGS_MAX as u32).map(event).collect();
    let err = store
        .append(&a, ExpectedVersion::Any, &too_many)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
}

#[tokio::test]
async fn concurrent_writers_on_one_aggregate_get_one_winner_per_version() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let a = AggregateId::new("race", "r").unwrap();
    store.ensure_category("race").await.unwrap();

    let writers = 8;
    let rounds = 10;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = store.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let (mut wins, mut conflicts) = (0u32, 0u32);
            for _ in 0..rounds {
                let version = store.version(&a).await.unwrap();
                match store
                    .append(&a, ExpectedVersion::at(version), &[event(writer)])
                    .await
                {
                    Ok(appended) => {
                        assert!(appended.version > version);
                        wins += 1;
                    }
                    Err(e) if e.is_conflict() => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (wins, conflicts)
        }));
    }
    let mut wins = 0;
    let mut conflicts = 0;
    for task in tasks {
        let (w, c) = task.await.unwrap();
        wins += w;
        conflicts += c;
    }
    assert_eq!(wins + conflicts, writers * rounds);
    let events = store.read(&a, 0).await.unwrap();
    assert_eq!(
        events.len() as u32,
        wins,
        "every win stored once, no loser stored"
    );
    assert!(conflicts > 0, "8 writers racing on one aggregate should collide");
}

#[tokio::test]
async fn category_reads_and_subscriptions_resume_from_a_checkpoint() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    for (id, n) in [("x", 1), ("y", 2), ("x", 3)] {
        let a = AggregateId::new("shapes", id).unwrap();
        store.append(&a, ExpectedVersion::Any, &[event(n)]).await.unwrap();
    }
    let all = store.read_category("shapes", 0, usize::MAX).await.unwrap();
    let ids: Vec<_> = all.iter().map(|e| e.aggregate.id().to_string()).collect();
    assert_eq!(ids, ["x", "y", "x"]);
    assert_eq!(store.read_category("shapes", 2, 1).await.unwrap()[0].position, 2);
    assert!(store.read_category("nothing", 0, 10).await.unwrap().is_empty());

    let mut sub = store.subscribe_category("shapes", 1).await.unwrap();
    assert_eq!(within("2", sub.next()).await.unwrap().position, 2);
    assert_eq!(within("3", sub.next()).await.unwrap().position, 3);
    let z = AggregateId::new("shapes", "z").unwrap();
    store
        .append(&z, ExpectedVersion::NoEvents, &[event(4)])
        .await
        .unwrap();
    let live = within("live", sub.next()).await.unwrap();
    assert_eq!((live.position, live.aggregate.id()), (4, "z"));

    let mut all = store.subscribe_all(Default::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(within("all", all.next()).await.unwrap().position);
    }
    assert_eq!(seen, [1, 2, 3, 4]);
}

#[tokio::test]
async fn causation_flows_from_the_handled_event() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let a = AggregateId::new("chain", "a").unwrap();
    let b = AggregateId::new("chain", "b").unwrap();
    store.append(&a, ExpectedVersion::Any, &[event(1)]).await.unwrap();
    let parent = store.read(&a, 0).await.unwrap().remove(0);
    store
        .append_with(
            &b,
            ExpectedVersion::Any,
            &[event(2)],
            &Causation::from_event(&parent.envelope),
        )
        .await
        .unwrap();
    let child = store.read(&b, 0).await.unwrap().remove(0);
    assert_eq!(
        child.envelope.causation_id.as_deref(),
        Some(parent.envelope.id.as_str())
    );
    assert_eq!(child.envelope.correlation_id, parent.envelope.correlation_id);
    assert_ne!(child.envelope.id, parent.envelope.id);
}

#[tokio::test]
async fn events_from_plain_nats_publishers_are_read_and_bad_ones_reported() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    store.ensure_category("ext").await.unwrap();
    let js = client.jetstream();
    let mut headers = Headers::new();
    headers.append(envelope::ID, "ext-1");
    headers.append(envelope::TYPE, "Imported");
    js.publish_with("ext.a", Some(&headers), "{}", PublishOptions::default())
        .await
        .unwrap();
    let read = store
        .read(&AggregateId::new("ext", "a").unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(read[0].envelope.correlation_id, "ext-1");

    js.publish("ext.b", "no envelope").await.unwrap();
    let err = store
        .read(&AggregateId::new("ext", "b").unwrap(), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadEnvelope { position: 2, .. }), "{err}");
}
