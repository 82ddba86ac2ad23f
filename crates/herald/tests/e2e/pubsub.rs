//! Publish-subscribe with the official `async-nats` client: payload fidelity,
//! ordering, fan-out and the `echo` option.

use async_nats::ConnectOptions;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_empty_and_large_payloads_arrive_byte_exact() {
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut sub = subscribe(&subscriber, "bin.data").await;

    let every_byte: Vec<u8> = (0..=255u8).collect();
    // Payload that looks like protocol inside, to catch framing by content.
    let protocol_lookalike = b"\r\nMSG bin.data 1 3\r\nabc\r\nPING\r\n".to_vec();
    let large: Vec<u8> = (0..512 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let payloads = vec![every_byte, Vec::new(), protocol_lookalike, large];

    for p in &payloads {
        publisher
            .publish("bin.data", p.clone().into())
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");

    for (i, expected) in payloads.iter().enumerate() {
        let m = next(&mut sub).await;
        assert_eq!(m.subject.as_str(), "bin.data");
        assert_eq!(m.payload.len(), expected.len(), "payload {i}: length");
        assert!(m.payload[..] == expected[..], "payload {i}: content differs");
    }
    sync(&subscriber).await;
    assert!(ready(&mut sub).is_empty(), "more messages than published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_from_one_publisher_arrive_in_order() {
    const N: usize = 10_000;
    let server = TestServer::start();
    let subscriber = connect(&server.url()).await;
    let publisher = connect(&server.url()).await;
    let mut sub = subscribe(&subscriber, "order.test").await;

    let consume = tokio::spawn(async move {
        let messages = next_n(&mut sub, N).await;
        messages
            .iter()
            .map(|m| std::str::from_utf8(&m.payload).unwrap().parse::<usize>().unwrap())
            .collect::<Vec<_>>()
    });
    for i in 0..N {
        publisher
            .publish("order.test", i.to_string().into())
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");

    let got = within(WAIT * 4, "10 000 messages", consume)
        .await
        .expect("consumer task");
    let expected: Vec<usize> = (0..N).collect();
    if got != expected {
        let first_bad = got.iter().zip(&expected).position(|(a, b)| a != b);
        panic!("order not preserved; first difference at index {first_bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_delivers_every_message_to_each_of_three_subscribers() {
    const N: usize = 500;
    let server = TestServer::start();
    let publisher = connect(&server.url()).await;
    let mut clients = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..3 {
        let client = connect(&server.url()).await;
        subs.push(subscribe(&client, "fan.out").await);
        clients.push(client);
    }

    for i in 0..N {
        publisher
            .publish("fan.out", format!("m{i}").into())
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("flush");

    for (s, sub) in subs.iter_mut().enumerate() {
        let got = next_n(sub, N).await;
        for (i, m) in got.iter().enumerate() {
            assert_eq!(
                &m.payload[..],
                format!("m{i}").as_bytes(),
                "subscriber {s}, message {i}"
            );
        }
    }
    sync(&publisher).await;
    for (s, (client, sub)) in clients.iter().zip(subs.iter_mut()).enumerate() {
        sync(client).await;
        assert!(ready(sub).is_empty(), "subscriber {s} got more than {N} messages");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_echo_client_does_not_receive_its_own_messages_but_others_do() {
    let server = TestServer::start();
    let quiet = connect_with(ConnectOptions::new().no_echo(), &server.url()).await;
    let other = connect(&server.url()).await;
    let echoing = connect(&server.url()).await;

    let mut quiet_sub = quiet.subscribe("echo.test").await.expect("subscribe");
    let mut other_sub = subscribe(&other, "echo.test").await;
    let mut echoing_sub = subscribe(&echoing, "echo.test").await;

    // The no-echo client's SUB precedes its PUB on the same connection.
    quiet
        .publish("echo.test", "from-quiet".into())
        .await
        .expect("publish");
    quiet.flush().await.expect("flush");
    assert_eq!(&next(&mut other_sub).await.payload[..], b"from-quiet");
    assert_eq!(&next(&mut echoing_sub).await.payload[..], b"from-quiet");

    // Sent after "from-quiet" was routed, so had the no-echo client been
    // given its own message it would be queued ahead of this one.
    other
        .publish("echo.test", "from-other".into())
        .await
        .expect("publish");
    other.flush().await.expect("flush");
    let first = next(&mut quiet_sub).await;
    assert_eq!(
        &first.payload[..],
        b"from-other",
        "the no-echo client received its own message"
    );

    // Control: with echo on (the default) a client does get its own message.
    echoing
        .publish("echo.test", "from-echoing".into())
        .await
        .expect("publish");
    echoing.flush().await.expect("flush");
    assert_eq!(&next(&mut echoing_sub).await.payload[..], b"from-other");
    assert_eq!(&next(&mut echoing_sub).await.payload[..], b"from-echoing");
}
