//! Aggregates through the repository: replay equals live state, upcasting
//! of events written by an older definition, snapshots, retries on
//! conflict, and commands applied once.

use herald_client::Client;
use herald_events::{
    AggregateId, CommandContext, Error, EventStore, ExecuteError, ExpectedVersion, NewEvent, Repository,
};

use crate::bank::{upcasters, Account, AccountCommand, AccountError, AccountEvent};
use crate::support::server;

#[tokio::test]
async fn replay_equals_the_state_built_live() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let accounts = Repository::<Account>::new(EventStore::new(&client));
    let mut live = Account::default();
    let commands = [
        AccountCommand::Open { owner: "ada".into() },
        AccountCommand::Deposit { cents: 500 },
        AccountCommand::Withdraw { cents: 120 },
        AccountCommand::Deposit { cents: 7 },
    ];
    let mut version = 0;
    for command in &commands {
        let done = accounts
            .execute("a-1", command, &CommandContext::new())
            .await
            .unwrap();
        for event in &done.events {
            herald_events::Aggregate::apply(&mut live, event);
        }
        assert!(done.version > version);
        version = done.version;
    }
    let loaded = accounts.load("a-1").await.unwrap();
    assert_eq!(loaded.state, live);
    assert_eq!(loaded.state.balance_cents, 387);
    assert_eq!((loaded.version, loaded.replayed), (version, 4));

    let err = accounts
        .execute(
            "a-1",
            &AccountCommand::Withdraw { cents: 1000 },
            &CommandContext::new(),
        )
        .await
        .unwrap_err();
    match err {
        ExecuteError::Rejected(AccountError::InsufficientFunds { balance_cents, .. }) => {
            assert_eq!(balance_cents, 387)
        }
        other => panic!("{other}"),
    }
    let fresh = accounts.load("nobody").await.unwrap();
    assert_eq!((fresh.version, fresh.state), (0, Account::default()));
}

#[tokio::test]
async fn events_written_by_an_old_definition_are_upcast_on_read() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let id = AggregateId::new("accounts", "old").unwrap();
    // What the v1 code wrote: Deposited with a decimal string amount.
    let opened = NewEvent::json("Opened", r#"{"owner":"grace"}"#);
    let old_deposit = NewEvent::json("Deposited", r#"{"amount":"12.50"}"#);
    assert_eq!(old_deposit.schema_version, 1);
    store
        .append(&id, ExpectedVersion::NoEvents, &[opened, old_deposit])
        .await
        .unwrap();

    let without = Repository::<Account>::new(store.clone());
    match without.load("old").await.unwrap_err() {
        Error::MissingUpcaster { event_type, from } => {
            assert_eq!((event_type.as_str(), from), ("Deposited", 1))
        }
        other => panic!("{other}"),
    }

    let accounts = Repository::<Account>::new(store.with_upcasters(upcasters()));
    accounts
        .execute(
            "old",
            &AccountCommand::Deposit { cents: 50 },
            &CommandContext::new(),
        )
        .await
        .unwrap();
    let loaded = accounts.load("old").await.unwrap();
    assert_eq!(loaded.state.balance_cents, 1300);
    assert_eq!(loaded.state.deposits, 2);
    // The new event is written as v2; the old one stays as written.
    let stored = accounts.store().read(&id, 0).await.unwrap();
    assert_eq!(stored[1].envelope.schema_version, 1);
    assert_eq!(&stored[1].data[..], br#"{"amount":"12.50"}"#);
    assert_eq!(stored[2].envelope.schema_version, 2);
    let typed: AccountEvent = accounts.store().decode(&stored[1]).unwrap();
    assert_eq!(typed, AccountEvent::Deposited { cents: 1250 });
}

#[tokio::test]
async fn snapshots_shorten_loading_and_agree_with_a_full_replay() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let accounts = Repository::<Account>::new(store.clone())
        .with_snapshots(5)
        .await
        .unwrap();
    let ctx = CommandContext::new;
    accounts
        .execute("s", &AccountCommand::Open { owner: "s".into() }, &ctx())
        .await
        .unwrap();
    for cents in 1..=12 {
        accounts
            .execute("s", &AccountCommand::Deposit { cents }, &ctx())
            .await
            .unwrap();
    }
    let with_snapshot = accounts.load("s").await.unwrap();
    assert!(with_snapshot.from_snapshot);
    assert!(with_snapshot.replayed < 5, "replayed {}", with_snapshot.replayed);

    let full = Repository::<Account>::new(store).load("s").await.unwrap();
    assert!(!full.from_snapshot);
    assert_eq!(full.replayed, 13);
    assert_eq!(
        (with_snapshot.state, with_snapshot.version),
        (full.state, full.version)
    );

    // A damaged snapshot is ignored: the state comes from the events.
    let kv = client.jetstream().kv(&accounts.snapshot_bucket()).await.unwrap();
    kv.put("s", "not json").await.unwrap();
    let recovered = accounts.load("s").await.unwrap();
    assert!(!recovered.from_snapshot);
    assert_eq!(recovered.state.balance_cents, (1..=12).sum::<u64>());
}

#[tokio::test]
async fn concurrent_commands_on_one_aggregate_retry_and_all_land() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let accounts = Repository::<Account>::new(EventStore::new(&client)).with_attempts(50);
    accounts
        .execute(
            "hot",
            &AccountCommand::Open { owner: "h".into() },
            &CommandContext::new(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let accounts = accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mut retried = 0;
            for _ in 0..10 {
                let done = accounts
                    .execute(
                        "hot",
                        &AccountCommand::Deposit { cents: 1 },
                        &CommandContext::new(),
                    )
                    .await
                    .unwrap();
                retried += done.attempts - 1;
            }
            retried
        }));
    }
    let mut retried = 0;
    for task in tasks {
        retried += task.await.unwrap();
    }
    let loaded = accounts.load("hot").await.unwrap();
    assert_eq!(loaded.state.balance_cents, 80, "every deposit exactly once");
    assert_eq!(loaded.replayed, 81);
    assert!(retried > 0, "8 writers on one aggregate should have conflicted");

    // With one attempt each, the losers get the typed failure and store nothing.
    let once = Repository::<Account>::new(accounts.store().clone()).with_attempts(1);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let once = once.clone();
        tasks.push(tokio::spawn(async move {
            once.execute(
                "hot",
                &AccountCommand::Deposit { cents: 1 },
                &CommandContext::new(),
            )
            .await
        }));
    }
    let (mut ok, mut contended) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(ExecuteError::Contended { attempts: 1, .. }) => contended += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(ok + contended, 8);
    assert!(ok >= 1);
    assert_eq!(accounts.load("hot").await.unwrap().state.balance_cents, 80 + ok);
}

#[tokio::test]
async fn a_command_retried_with_its_id_is_applied_once() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let accounts = Repository::<Account>::new(EventStore::new(&client));
    accounts
        .execute(
            "d",
            &AccountCommand::Open { owner: "d".into() },
            &CommandContext::new(),
        )
        .await
        .unwrap();
    let context = CommandContext::new();
    let first = accounts
        .execute("d", &AccountCommand::Deposit { cents: 10 }, &context)
        .await
        .unwrap();
    let again = accounts
        .execute("d", &AccountCommand::Deposit { cents: 10 }, &context)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.version, first.version);
    assert_eq!(accounts.load("d").await.unwrap().state.balance_cents, 10);
    let events = accounts
        .store()
        .read(&accounts.aggregate_id("d").unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(
        events[1].envelope.causation_id.as_deref(),
        Some(context.command_id.as_str())
    );
    assert_eq!(events[1].envelope.correlation_id, context.correlation_id);
}
