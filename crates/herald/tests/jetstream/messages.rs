//! Reading and removing stored messages: get by sequence, last by subject,
//! direct get, delete, purge (all, by subject, keep, up to sequence), and
//! deny_delete / deny_purge.

use async_nats::jetstream::stream::{
    Config, DeleteMessageErrorKind, DirectGetErrorKind, LastRawMessageErrorKind, PurgeErrorKind,
};
use async_nats::jetstream::ErrorCode;

use crate::util::*;

fn config(name: &str, subjects: &[&str]) -> Config {
    Config {
        name: name.into(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A stream `M` on `m.>` with 5 messages: m.a, m.b, m.a, m.c, m.a
/// (sequences 1..=5, payloads "1".."5"), the second one with headers.
async fn five_messages(config: Config) -> (Env, async_nats::jetstream::stream::Stream) {
    let env = Env::start().await;
    let stream = env.stream(config).await;
    for (i, subject) in ["m.a", "m.b", "m.a", "m.c", "m.a"].iter().enumerate() {
        let payload = (i + 1).to_string();
        let ack = if i == 1 {
            env.publish_with_headers(subject, headers(&[("X-Trace", "t-2")]), payload)
                .await
        } else {
            env.publish(subject, payload).await
        };
        assert_eq!(ack.sequence, i as u64 + 1);
    }
    (env, stream)
}

fn m_config() -> Config {
    config("M", &["m.>"])
}

#[tokio::test]
async fn get_message_by_sequence() {
    let (_env, stream) = five_messages(m_config()).await;
    let message = stream.get_raw_message(2).await.expect("message 2");
    assert_eq!(message.sequence, 2);
    assert_eq!(message.subject.as_str(), "m.b");
    assert_eq!(message.payload, "2".as_bytes());
    assert_eq!(header(Some(&message.headers), "X-Trace"), Some("t-2"));
    let third = stream.get_raw_message(3).await.expect("message 3");
    assert!(third.time >= message.time);
    assert!(third.headers.is_empty(), "{:?}", third.headers);

    let err = stream.get_raw_message(99).await.expect_err("no message 99");
    assert_eq!(err.kind(), LastRawMessageErrorKind::NoMessageFound, "{err:?}");
    // The raw API: 404 / 10037.
    let reply = _env.api("STREAM.MSG.GET.M", r#"{"seq":99}"#).await;
    assert_eq!(reply["error"]["code"], 404, "{reply}");
    assert_eq!(reply["error"]["err_code"], 10037, "{reply}");
}

#[tokio::test]
async fn get_last_and_next_by_subject() {
    let (_env, stream) = five_messages(m_config()).await;
    let last_a = stream
        .get_last_raw_message_by_subject("m.a")
        .await
        .expect("last m.a");
    assert_eq!((last_a.sequence, &last_a.payload[..]), (5, "5".as_bytes()));
    let last_b = stream
        .get_last_raw_message_by_subject("m.b")
        .await
        .expect("last m.b");
    assert_eq!((last_b.sequence, last_b.subject.as_str()), (2, "m.b"));
    assert_eq!(header(Some(&last_b.headers), "X-Trace"), Some("t-2"));
    // A wildcard filter: the last message on any matching subject.
    let last_any = stream
        .get_last_raw_message_by_subject("m.*")
        .await
        .expect("last m.*");
    assert_eq!(last_any.sequence, 5);

    let err = stream
        .get_last_raw_message_by_subject("m.zzz")
        .await
        .expect_err("nothing on m.zzz");
    assert_eq!(err.kind(), LastRawMessageErrorKind::NoMessageFound, "{err:?}");

    // First m.a at or after sequence 2 is sequence 3.
    let next = stream
        .get_first_raw_message_by_subject("m.a", 2)
        .await
        .expect("next m.a from 2");
    assert_eq!(next.sequence, 3);
}

#[tokio::test]
async fn direct_get_with_allow_direct() {
    let (_env, stream) = five_messages(Config {
        allow_direct: true,
        ..m_config()
    })
    .await;
    assert!(stream.cached_info().config.allow_direct);

    let message = stream.direct_get(2).await.expect("direct get 2");
    assert_eq!(message.sequence, 2);
    assert_eq!(message.subject.as_str(), "m.b");
    assert_eq!(message.payload, "2".as_bytes());
    // The original headers plus the Nats-* metadata headers.
    assert_eq!(header(Some(&message.headers), "X-Trace"), Some("t-2"));
    assert_eq!(header(Some(&message.headers), "Nats-Stream"), Some("M"));
    assert_eq!(header(Some(&message.headers), "Nats-Sequence"), Some("2"));
    assert_eq!(header(Some(&message.headers), "Nats-Subject"), Some("m.b"));
    let raw = stream.get_raw_message(2).await.unwrap();
    assert_eq!(message.time, raw.time, "Nats-Time-Stamp is the stored time");

    let last = stream
        .direct_get_last_for_subject("m.a")
        .await
        .expect("direct last m.a");
    assert_eq!((last.sequence, &last.payload[..]), (5, "5".as_bytes()));
    let next = stream
        .direct_get_next_for_subject("m.a", Some(4))
        .await
        .expect("direct next m.a from 4");
    assert_eq!(next.sequence, 5);

    let err = stream.direct_get(99).await.expect_err("no message 99");
    assert_eq!(err.kind(), DirectGetErrorKind::NotFound, "{err:?}");
    let err = stream
        .direct_get_last_for_subject("m.none")
        .await
        .expect_err("nothing on m.none");
    assert_eq!(err.kind(), DirectGetErrorKind::NotFound, "{err:?}");
}

#[tokio::test]
async fn delete_message_then_get_is_not_found() {
    let (env, stream) = five_messages(m_config()).await;
    assert!(stream.delete_message(2).await.expect("delete 2"));
    let err = stream.get_raw_message(2).await.expect_err("deleted");
    assert_eq!(err.kind(), LastRawMessageErrorKind::NoMessageFound);
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 4);
    assert_eq!(info.state.first_sequence, 1);
    assert_eq!(info.state.last_sequence, 5);
    assert_eq!(info.state.deleted_count, Some(1));
    // m.b has no messages left.
    let err = stream
        .get_last_raw_message_by_subject("m.b")
        .await
        .expect_err("m.b empty");
    assert_eq!(err.kind(), LastRawMessageErrorKind::NoMessageFound);

    // Deleting the first message moves first_sequence.
    assert!(stream.delete_message(1).await.expect("delete 1"));
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 3);
    assert_eq!(info.state.first_sequence, 3);

    // Deleting again, or a sequence never written, is an error.
    for seq in [2, 99] {
        let err = stream.delete_message(seq).await.expect_err("nothing to delete");
        match err.kind() {
            DeleteMessageErrorKind::JetStream(api) => {
                assert_eq!(api.error_code(), ErrorCode::STREAM_MESSAGE_DELETE_FAILED, "{api}")
            }
            other => panic!("seq {seq}: expected a JetStream error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn purge_all() {
    let (env, stream) = five_messages(m_config()).await;
    let purged = stream.purge().await.expect("purge");
    assert!(purged.success);
    assert_eq!(purged.purged, 5);
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 0);
    assert_eq!(info.state.bytes, 0);
    assert_eq!(info.state.first_sequence, 6);
    assert_eq!(info.state.last_sequence, 5);
    // Sequences continue after a purge.
    assert_eq!(env.publish("m.a", "6").await.sequence, 6);
}

#[tokio::test]
async fn purge_by_subject() {
    let (env, stream) = five_messages(m_config()).await;
    let purged = stream.purge().filter("m.a").await.expect("purge m.a");
    assert_eq!(purged.purged, 3);
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.first_sequence, 2);
    for seq in [2, 4] {
        assert!(stream.get_raw_message(seq).await.is_ok(), "seq {seq} kept");
    }
    for seq in [1, 3, 5] {
        assert!(stream.get_raw_message(seq).await.is_err(), "seq {seq} purged");
    }
    // A wildcard filter.
    let purged = stream.purge().filter("m.*").await.expect("purge m.*");
    assert_eq!(purged.purged, 2);
    assert_eq!(env.info("M").await.state.messages, 0);
}

#[tokio::test]
async fn purge_keep_n() {
    let (env, stream) = five_messages(m_config()).await;
    let purged = stream.purge().keep(2).await.expect("purge keep 2");
    assert_eq!(purged.purged, 3);
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.first_sequence, 4);

    // keep with a subject filter: keep the newest 1 of m.a (seq 5), others untouched.
    let (env, stream) = five_messages(m_config()).await;
    let purged = stream
        .purge()
        .filter("m.a")
        .keep(1)
        .await
        .expect("purge m.a keep 1");
    assert_eq!(purged.purged, 2);
    assert_eq!(env.info("M").await.state.messages, 3);
    let remaining: Vec<u64> = {
        let mut out = Vec::new();
        for seq in 1..=5 {
            if stream.get_raw_message(seq).await.is_ok() {
                out.push(seq);
            }
        }
        out
    };
    assert_eq!(remaining, [2, 4, 5]);
}

#[tokio::test]
async fn purge_up_to_sequence() {
    let (env, stream) = five_messages(m_config()).await;
    // Purges everything below sequence 4 (not 4 itself).
    let purged = stream.purge().sequence(4).await.expect("purge up to 4");
    assert_eq!(purged.purged, 3);
    let info = env.info("M").await;
    assert_eq!(info.state.messages, 2);
    assert_eq!(info.state.first_sequence, 4);
    assert!(stream.get_raw_message(3).await.is_err());
    assert!(stream.get_raw_message(4).await.is_ok());
}

#[tokio::test]
async fn deny_delete_and_deny_purge_refuse() {
    let (env, stream) = five_messages(Config {
        deny_delete: true,
        deny_purge: true,
        ..m_config()
    })
    .await;
    let info = env.info("M").await;
    assert!(info.config.deny_delete && info.config.deny_purge);

    let err = stream.delete_message(1).await.expect_err("delete denied");
    match err.kind() {
        DeleteMessageErrorKind::JetStream(api) => {
            assert_eq!(api.error_code(), ErrorCode::STREAM_MESSAGE_DELETE_FAILED, "{api}")
        }
        other => panic!("expected a JetStream error, got {other:?}"),
    }
    let err = stream.purge().await.expect_err("purge denied");
    match err.kind() {
        PurgeErrorKind::JetStream(api) => {
            assert_eq!(api.error_code(), ErrorCode::STREAM_PURGE_FAILED, "{api}")
        }
        other => panic!("expected a JetStream error, got {other:?}"),
    }
    let err = stream
        .purge()
        .filter("m.a")
        .await
        .expect_err("filtered purge denied");
    assert!(matches!(err.kind(), PurgeErrorKind::JetStream(_)), "{err:?}");
    assert_eq!(env.info("M").await.state.messages, 5, "nothing removed");
}
