//! A worked example: bank accounts with event sourcing and CQRS on Herald.
//!
//! ```sh
//! cargo run --release -- serve &                        # a local Herald
//! cargo run -p herald-events --example bank             # this example
//! cargo run -p herald-events --example bank -- nats://127.0.0.1:4333
//! ```
//!
//! What it shows, in order:
//! 1. an **aggregate** (`Account`) with commands, events and a domain error;
//! 2. an **upcaster**: an old `Deposited` v1 event (amount as a decimal
//!    string) is stored first, as old code would have, and read as v2 (cents);
//! 3. the **command bus**: a handler serves `cmd.accounts.*`, a client sends
//!    commands and gets typed outcomes, including a refused withdrawal;
//! 4. a **projection into SQLite**: balances per account, checkpoint and rows
//!    in one transaction, caught up from the category stream;
//! 5. a **replica** (event-carried state transfer): the account service
//!    publishes each account's state; another service keeps a local copy and
//!    reads it without calling anyone.
//!
//! Each run uses fresh names, so it can be run again against the same server.

use std::time::Duration;

use herald_client::jetstream::StreamConfig;
use herald_client::Client;
use herald_events::projection::{BoxError, SqliteModel, SqliteProjection};
use herald_events::{
    Aggregate, AggregateId, CommandBus, CommandError, CommandHandler, DomainEvent, EventStore,
    ExpectedVersion, NewEvent, Projection, ProjectionRunner, RecordedEvent, Replica, Repository, StoreConfig,
    Upcasters,
};
use rusqlite::Transaction;
use serde::{Deserialize, Serialize};

// --- the domain ---------------------------------------------------------------

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Account {
    open: bool,
    owner: String,
    balance_cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: u64 },
    Withdrawn { cents: u64 },
}

impl DomainEvent for AccountEvent {
    fn schema_version(event_type: &str) -> u32 {
        // v1 of Deposited was {"amount": "12.50"}; v2 is {"cents": 1250}.
        if event_type == "Deposited" {
            2
        } else {
            1
        }
    }
}

fn upcasters() -> Upcasters {
    Upcasters::new().register("Deposited", 1, |data| {
        let amount = data["amount"].as_str().ok_or("no amount")?;
        let units: f64 = amount.parse().map_err(|_| format!("bad amount {amount:?}"))?;
        Ok(serde_json::json!({ "cents": (units * 100.0).round() as u64 }))
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum AccountCommand {
    Open { owner: String },
    Deposit { cents: u64 },
    Withdraw { cents: u64 },
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: {balance_cents} cents, {asked_cents} asked")]
    InsufficientFunds { balance_cents: u64, asked_cents: u64 },
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "accounts";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand::*;
        match command {
            Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            Open { owner } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
            _ if !self.open => Err(AccountError::NotOpen),
            Deposit { cents } => Ok(vec![AccountEvent::Deposited { cents: *cents }]),
            Withdraw { cents } if *cents > self.balance_cents => Err(AccountError::InsufficientFunds {
                balance_cents: self.balance_cents,
                asked_cents: *cents,
            }),
            Withdraw { cents } => Ok(vec![AccountEvent::Withdrawn { cents: *cents }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => {
                self.open = true;
                self.owner = owner.clone();
            }
            AccountEvent::Deposited { cents } => self.balance_cents += cents,
            AccountEvent::Withdrawn { cents } => self.balance_cents -= cents,
        }
    }
}

// --- the read side: balances in SQLite ------------------------------------------

struct Balances {
    store: EventStore,
}

impl Projection for Balances {
    fn name(&self) -> &str {
        "balances"
    }
    fn category(&self) -> &str {
        Account::CATEGORY
    }
}

impl SqliteProjection for Balances {
    fn init(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, cents INTEGER NOT NULL)",
        )?;
        Ok(())
    }

    fn reset(&self, tx: &Transaction<'_>) -> Result<(), BoxError> {
        tx.execute("DELETE FROM balances", [])?;
        Ok(())
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), BoxError> {
        let account = event.aggregate.id();
        let delta: i64 = match self.store.decode::<AccountEvent>(event)? {
            AccountEvent::Opened { .. } => 0,
            AccountEvent::Deposited { cents } => cents as i64,
            AccountEvent::Withdrawn { cents } => -(cents as i64),
        };
        tx.execute(
            "INSERT INTO balances (account, cents) VALUES (?1, ?2) \
             ON CONFLICT (account) DO UPDATE SET cents = cents + excluded.cents",
            rusqlite::params![account, delta],
        )?;
        Ok(())
    }
}

/// What the account service shares with other services (event-carried
/// state transfer): the whole current state of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountView {
    owner: String,
    balance_cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nats://127.0.0.1:4333".into());
    let client = Client::connect(&url).await?;
    let run = format!("{:x}", std::process::id());
    let config = StoreConfig {
        stream_prefix: format!("BANK{run}_"),
        source: "herald://examples/bank".into(),
        ..StoreConfig::default()
    };
    let store = EventStore::with_config(&client, config).with_upcasters(upcasters());
    println!("event store: stream {}", store.stream_name(Account::CATEGORY));

    // 2. An event written by the old code, before the command side starts.
    let ada = AggregateId::new(Account::CATEGORY, "ada")?;
    let old = [
        NewEvent::json("Opened", r#"{"owner":"Ada"}"#),
        NewEvent::json("Deposited", r#"{"amount":"12.50"}"#), // schema version 1
    ];
    store.append(&ada, ExpectedVersion::NoEvents, &old).await?;

    // 1 + 3. The command side: a repository with snapshots, served on the bus.
    let accounts = Repository::<Account>::new(store.clone())
        .with_snapshots(50)
        .await?;
    let _handler = CommandHandler::start(&client, accounts.clone()).await?;
    let bus = CommandBus::new(&client);

    let opened = bus
        .send::<Account>("bob", &AccountCommand::Open { owner: "Bob".into() })
        .await?;
    println!("Open bob: accepted at version {}", opened.version);
    bus.send::<Account>("bob", &AccountCommand::Deposit { cents: 10_000 })
        .await?;
    bus.send::<Account>("ada", &AccountCommand::Deposit { cents: 250 })
        .await?;
    match bus
        .send::<Account>("ada", &AccountCommand::Withdraw { cents: 1_000_000 })
        .await
    {
        Err(CommandError::Rejected(e)) => println!("Withdraw 10000.00 from ada: refused: {e}"),
        other => println!("Withdraw from ada: unexpected {other:?}"),
    }
    match bus
        .send::<Account>("carol", &AccountCommand::Deposit { cents: 1 })
        .await
    {
        Err(CommandError::Rejected(e)) => println!("Deposit to carol: refused: {e}"),
        other => println!("Deposit to carol: unexpected {other:?}"),
    }
    let ada_now = accounts.load("ada").await?;
    println!(
        "ada, replayed from {} events (the v1 deposit upcast): {} cents",
        ada_now.replayed, ada_now.state.balance_cents
    );

    // 4. The read side: balances in SQLite, caught up from the stream.
    let db = std::env::temp_dir().join(format!("herald-bank-{run}.sqlite"));
    let model = SqliteModel::open(&db, Balances { store: store.clone() })?;
    let mut runner = ProjectionRunner::new(&store, model)?;
    let progress = runner.run_until_caught_up().await?;
    println!(
        "projection at position {} ({})",
        progress.checkpoint,
        db.display()
    );
    {
        let connection = runner.model().connection().lock().expect("sqlite lock");
        let mut rows = connection.prepare("SELECT account, cents FROM balances ORDER BY account")?;
        let balances = rows.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?;
        for balance in balances {
            let (account, cents) = balance?;
            println!("  {account:<6} {:>8.2}", cents as f64 / 100.0);
        }
    }

    // 5. Event-carried state transfer: the account service publishes each
    // account's state; a replica elsewhere reads it locally.
    let js = client.jetstream();
    let views = format!("ACCOUNT_VIEWS{run}");
    let subject = |id: &str| format!("views{run}.accounts.{id}");
    js.create_stream(StreamConfig {
        max_msgs_per_subject: 1, // only the latest state of each account matters
        ..StreamConfig::new(views.clone(), vec![format!("views{run}.accounts.*")])
    })
    .await?;
    for id in ["ada", "bob"] {
        let account = accounts.load(id).await?.state;
        let view = AccountView {
            owner: account.owner,
            balance_cents: account.balance_cents,
        };
        js.publish(&subject(id), serde_json::to_vec(&view)?).await?;
    }
    let replica = Replica::<AccountView>::start(&js, &views, &format!("views{run}.accounts.*")).await?;
    for id in ["ada", "bob"] {
        if let Some(view) = replica.get(id) {
            println!(
                "replica: {id} is {} with {:.2}",
                view.owner,
                view.balance_cents as f64 / 100.0
            );
        }
    }
    let update = AccountView {
        owner: "Bob".into(),
        balance_cents: 1,
    };
    let ack = js.publish(&subject("bob"), serde_json::to_vec(&update)?).await?;
    replica.wait_for(ack.seq, Duration::from_secs(5)).await?;
    println!(
        "replica after an update: bob has {} cents",
        replica.get("bob").map_or(0, |v| v.balance_cents)
    );

    // Clean up what this run created.
    drop(replica);
    let _ = runner.delete_consumer().await;
    let _ = js.delete_stream(&views).await;
    let _ = js.delete_stream(&store.stream_name(Account::CATEGORY)).await;
    let _ = js.kv_delete_bucket(&accounts.snapshot_bucket()).await;
    let _ = std::fs::remove_file(&db);
    Ok(())
}
