//! Publish-subscribe, a queue group and request-reply against a running
//! server:
//!
//! ```sh
//! cargo run --release -- serve &
//! cargo run -p herald-client --example quickstart            # nats://127.0.0.1:4333
//! cargo run -p herald-client --example quickstart -- nats://127.0.0.1:4222
//! ```

use std::time::Duration;

use herald_client::{Client, Error, Headers};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4333".into());
    let client = Client::connect(&url).await?;
    println!("connected to {url}");

    // Publish-subscribe with a wildcard and headers.
    let mut orders = client.subscribe("orders.>").await?;
    client.flush().await?;
    let mut headers = Headers::new();
    headers.append("Trace-Id", "quickstart-1");
    client.publish_with_headers("orders.eu.created", &headers, r#"{"id":42}"#)?;
    let event = orders.next().await.expect("subscription is live");
    println!(
        "event on {}: {} (trace {:?})",
        event.subject,
        String::from_utf8_lossy(&event.payload),
        event.headers.as_ref().and_then(|h| h.get("Trace-Id"))
    );

    // Point-to-point: two workers in one queue group share the jobs.
    let mut workers = [
        client.queue_subscribe("jobs.resize", "workers").await?,
        client.queue_subscribe("jobs.resize", "workers").await?,
    ];
    client.flush().await?;
    for i in 0..10 {
        client.publish("jobs.resize", format!("image-{i}"))?;
    }
    client.flush().await?;
    for (n, worker) in workers.iter_mut().enumerate() {
        let mut done = 0;
        while let Ok(Some(_job)) = tokio::time::timeout(Duration::from_millis(200), worker.next()).await {
            done += 1;
        }
        println!("worker {n} handled {done} job(s)");
    }

    // Request-reply.
    let mut clock = client.queue_subscribe("time.now", "clock").await?;
    let responder = client.clone();
    tokio::spawn(async move {
        while let Some(request) = clock.next().await {
            let _ = responder.respond(&request, "it is noon");
        }
    });
    client.flush().await?;
    let reply = client.request("time.now", "").await?;
    println!("reply: {}", String::from_utf8_lossy(&reply.payload));
    match client.request("nobody.listens", "").await {
        Err(Error::NoResponders { subject }) => println!("no responders on {subject}, as expected"),
        other => println!("unexpected: {other:?}"),
    }

    client.drain().await
}
