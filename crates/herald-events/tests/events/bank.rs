//! A small bank domain shared by the aggregate, command and policy tests.

use herald_events::{Aggregate, DomainEvent, Upcasters};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub open: bool,
    pub owner: String,
    pub balance_cents: u64,
    pub deposits: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    Opened {
        owner: String,
    },
    /// v1 was `{"amount": "12.50"}` (a decimal string); v2 is cents.
    Deposited {
        cents: u64,
    },
    Withdrawn {
        cents: u64,
    },
}

impl DomainEvent for AccountEvent {
    fn schema_version(event_type: &str) -> u32 {
        if event_type == "Deposited" {
            2
        } else {
            1
        }
    }
}

/// The upcaster a code change from v1 to v2 of `Deposited` brings.
pub fn upcasters() -> Upcasters {
    Upcasters::new().register("Deposited", 1, |data| {
        let amount = data["amount"]
            .as_str()
            .ok_or("v1 Deposited without an amount string")?;
        let units: f64 = amount.parse().map_err(|_| format!("bad amount {amount:?}"))?;
        Ok(serde_json::json!({ "cents": (units * 100.0).round() as u64 }))
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountCommand {
    Open { owner: String },
    Deposit { cents: u64 },
    Withdraw { cents: u64 },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: balance {balance_cents}, asked {asked_cents}")]
    InsufficientFunds { balance_cents: u64, asked_cents: u64 },
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "accounts";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { .. } if self.open => Err(AccountError::AlreadyOpen),
            AccountCommand::Open { owner } => Ok(vec![AccountEvent::Opened { owner: owner.clone() }]),
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents } => Ok(vec![AccountEvent::Deposited { cents: *cents }]),
            AccountCommand::Withdraw { cents } if *cents > self.balance_cents => {
                Err(AccountError::InsufficientFunds {
                    balance_cents: self.balance_cents,
                    asked_cents: *cents,
                })
            }
            AccountCommand::Withdraw { cents } => Ok(vec![AccountEvent::Withdrawn { cents: *cents }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner } => {
                self.open = true;
                self.owner = owner.clone();
            }
            AccountEvent::Deposited { cents } => {
                self.balance_cents += cents;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { cents } => self.balance_cents -= cents,
        }
    }
}
