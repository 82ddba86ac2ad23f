//! The command bus (accepted, refused with the domain error, no handler,
//! no answer) and policies reacting to events idempotently.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_client::Client;
use herald_events::{
    CommandBus, CommandError, CommandHandler, EventStore, Policy, PolicyRunner, Reaction, Repository,
};

use crate::bank::{Account, AccountCommand, AccountError, AccountEvent};
use crate::support::{server, within};

#[tokio::test]
async fn commands_are_accepted_or_refused_with_the_typed_domain_error() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let accounts = Repository::<Account>::new(EventStore::new(&client));
    let _handler = CommandHandler::start(&client, accounts.clone()).await.unwrap();
    let bus = CommandBus::new(&client);

    let opened = bus
        .send::<Account>("c-1", &AccountCommand::Open { owner: "cy".into() })
        .await
        .unwrap();
    assert_eq!((opened.events, opened.duplicate), (1, false));
    let deposited = bus
        .send::<Account>("c-1", &AccountCommand::Deposit { cents: 40 })
        .await
        .unwrap();
    assert!(deposited.version > opened.version);

    match bus
        .send::<Account>("c-1", &AccountCommand::Withdraw { cents: 41 })
        .await
    {
        Err(CommandError::Rejected(AccountError::InsufficientFunds {
            balance_cents: 40,
            asked_cents: 41,
        })) => {}
        other => panic!("expected the domain error, got {other:?}"),
    }
    match bus
        .send::<Account>("c-2", &AccountCommand::Deposit { cents: 1 })
        .await
    {
        Err(CommandError::Rejected(AccountError::NotOpen)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(accounts.load("c-1").await.unwrap().state.balance_cents, 40);
    // A bad aggregate id never leaves the process.
    assert!(matches!(
        bus.send::<Account>("a.b", &AccountCommand::Deposit { cents: 1 })
            .await,
        Err(CommandError::Events(herald_events::Error::Invalid { .. }))
    ));
}

#[tokio::test]
async fn without_a_handler_commands_fail_fast_and_unanswered_ones_time_out() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let bus = CommandBus::new(&client).with_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    match bus
        .send::<Account>("x", &AccountCommand::Open { owner: "x".into() })
        .await
    {
        Err(CommandError::NoHandler { subject }) => assert_eq!(subject, "cmd.accounts.x"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "no responders is immediate"
    );

    // Something listens but never answers.
    let _silent = client
        .queue_subscribe("cmd.accounts.*", "cmd-accounts")
        .await
        .unwrap();
    client.flush().await.unwrap();
    match bus
        .send::<Account>("x", &AccountCommand::Open { owner: "x".into() })
        .await
    {
        Err(CommandError::Timeout { subject, .. }) => assert_eq!(subject, "cmd.accounts.x"),
        other => panic!("{other:?}"),
    }
}

/// Gives every new account a 100-cent welcome bonus. Fails its first
/// reaction after sending, as a crash between sending and acknowledging
/// would, so the event is delivered again and the command sent again.
struct WelcomeBonus {
    reactions: Arc<AtomicU32>,
}

impl Policy for WelcomeBonus {
    type Event = AccountEvent;
    const NAME: &'static str = "welcome-bonus";
    const CATEGORY: &'static str = "accounts";

    async fn react(&self, event: AccountEvent, reaction: &Reaction) -> Result<(), String> {
        let AccountEvent::Opened { .. } = event else {
            return Ok(());
        };
        let id = reaction.event().aggregate.id().to_string();
        reaction
            .send::<Account>(&id, &AccountCommand::Deposit { cents: 100 })
            .await
            .map_err(|e| e.to_string())?;
        if self.reactions.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("simulated failure after the command was sent".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_policy_reacting_twice_to_one_event_sends_one_effective_command() {
    let server = server!();
    let client = Client::connect(&server.url()).await.unwrap();
    let store = EventStore::new(&client);
    let accounts = Repository::<Account>::new(store.clone());
    let _handler = CommandHandler::start(&client, accounts.clone()).await.unwrap();
    let bus = CommandBus::new(&client);
    let reactions = Arc::new(AtomicU32::new(0));
    let _policy = PolicyRunner::start(
        &store,
        &bus,
        WelcomeBonus {
            reactions: reactions.clone(),
        },
    )
    .await
    .unwrap();

    bus.send::<Account>("p-1", &AccountCommand::Open { owner: "pat".into() })
        .await
        .unwrap();
    within("two reactions", async {
        while reactions.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let loaded = accounts.load("p-1").await.unwrap();
    assert_eq!(loaded.state.balance_cents, 100, "the bonus is deposited once");
    let events = store
        .read(&accounts.aggregate_id("p-1").unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    let (opened, bonus) = (&events[0].envelope, &events[1].envelope);
    assert_eq!(bonus.correlation_id, opened.correlation_id, "one chain");
    assert_eq!(
        bonus.causation_id.as_deref(),
        Some(format!("{}-0", opened.id).as_str())
    );
}
