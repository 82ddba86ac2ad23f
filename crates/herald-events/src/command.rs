//! The command bus: commands are requests to the queue group of their
//! category's handlers (point to point, one handler per command), answered
//! with the outcome. Commands ask for a change and may be refused; events
//! say what changed. Commands travel on `cmd.<category>.<id>` and are
//! never stored; events on `<category>.<id>` in the category's stream.

use std::sync::Arc;
use std::time::Duration;

use herald_client::{Client, Headers, Message};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::aggregate::{Aggregate, CommandContext, ExecuteError, Repository};
use crate::envelope::{CORRELATION_ID, ID};
use crate::naming::AggregateId;

/// Subject prefix of commands.
pub const COMMAND_PREFIX: &str = "cmd";
/// How long [`CommandBus::send`] waits for the outcome by default.
pub const COMMAND_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Commands one [`CommandHandler`] handles at once.
pub const HANDLER_IN_FLIGHT_MAX: usize = 64;

/// The outcome of a command as sent back on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Reply<E> {
    Accepted {
        version: u64,
        events: usize,
        duplicate: bool,
    },
    Rejected {
        error: E,
        message: String,
    },
    Failed {
        message: String,
    },
}

/// A command the handler accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The aggregate's version after it.
    pub version: u64,
    /// Events it produced.
    pub events: usize,
    /// It had been handled before (same command id): nothing new stored.
    pub duplicate: bool,
}

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused it: the domain error, as the handler sent it.
    #[error("rejected: {0}")]
    Rejected(E),
    /// No handler serves the category: nothing was done.
    #[error("no handler for {subject}")]
    NoHandler {
        /// The command subject.
        subject: String,
    },
    /// No answer in time: the command may or may not have been applied;
    /// sending it again with the same [`CommandContext`] is safe.
    #[error("no answer to {subject} within {timeout:?}")]
    Timeout {
        /// The command subject.
        subject: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The handler failed (e.g. the aggregate kept changing, the store is
    /// unavailable, the command could not be decoded).
    #[error("handler failed: {0}")]
    Failed(String),
    /// Sending failed, or the command could not be encoded.
    #[error(transparent)]
    Events(#[from] crate::Error),
}

/// Sends typed commands and waits for their outcome.
#[derive(Debug, Clone)]
pub struct CommandBus {
    client: Client,
    timeout: Duration,
}

impl CommandBus {
    /// A bus on `client` with [`COMMAND_TIMEOUT_DEFAULT`].
    pub fn new(client: &Client) -> CommandBus {
        CommandBus {
            client: client.clone(),
            timeout: COMMAND_TIMEOUT_DEFAULT,
        }
    }

    /// This bus waiting `timeout` for outcomes.
    pub fn with_timeout(mut self, timeout: Duration) -> CommandBus {
        self.timeout = timeout;
        self
    }

    /// Sends `command` to aggregate `id` of `A`'s category as a new chain.
    pub async fn send<A: Aggregate>(
        &self,
        id: &str,
        command: &A::Command,
    ) -> Result<Accepted, CommandError<A::Error>> {
        self.send_with::<A>(id, command, &CommandContext::new()).await
    }

    /// Sends `command` with its id and chain from `context`.
    pub async fn send_with<A: Aggregate>(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Accepted, CommandError<A::Error>> {
        let subject = command_subject(&AggregateId::new(A::CATEGORY, id)?);
        let payload = serde_json::to_vec(command).map_err(crate::Error::from)?;
        let mut headers = Headers::new();
        headers.append(ID, context.command_id.clone());
        headers.append(CORRELATION_ID, context.correlation_id.clone());
        let reply = match self
            .client
            .request_with_headers(&subject, &headers, payload, self.timeout)
            .await
        {
            Ok(reply) => reply,
            Err(herald_client::Error::NoResponders { .. }) => {
                return Err(CommandError::NoHandler { subject })
            }
            Err(herald_client::Error::Timeout) => {
                return Err(CommandError::Timeout {
                    subject,
                    timeout: self.timeout,
                })
            }
            Err(e) => return Err(crate::Error::from(e).into()),
        };
        match serde_json::from_slice::<Reply<A::Error>>(&reply.payload) {
            Ok(Reply::Accepted {
                version,
                events,
                duplicate,
            }) => Ok(Accepted {
                version,
                events,
                duplicate,
            }),
            Ok(Reply::Rejected { error, .. }) => Err(CommandError::Rejected(error)),
            Ok(Reply::Failed { message }) => Err(CommandError::Failed(message)),
            Err(e) => Err(CommandError::Failed(format!("unreadable outcome: {e}"))),
        }
    }
}

/// The subject of commands to `aggregate`: `cmd.<category>.<id>`.
pub fn command_subject(aggregate: &AggregateId) -> String {
    format!("{COMMAND_PREFIX}.{}.{}", aggregate.category(), aggregate.id())
}

/// Serves the commands of `A`'s category: joins the queue group
/// `cmd-<category>` on `cmd.<category>.*` (so several instances share the
/// load, one handler per command), and runs load – handle – append for
/// each, answering with the outcome. Dropping it (or [`CommandHandler::stop`])
/// leaves the group.
#[derive(Debug)]
pub struct CommandHandler {
    task: JoinHandle<()>,
}

impl CommandHandler {
    /// Starts serving; returns once subscribed.
    pub async fn start<A: Aggregate>(
        client: &Client,
        repository: Repository<A>,
    ) -> crate::Result<CommandHandler> {
        let subject = format!("{COMMAND_PREFIX}.{}.*", A::CATEGORY);
        let group = format!("{COMMAND_PREFIX}-{}", A::CATEGORY);
        let mut requests = client.queue_subscribe(&subject, &group).await?;
        client.flush().await?;
        let client = client.clone();
        let slots = Arc::new(Semaphore::new(HANDLER_IN_FLIGHT_MAX));
        let task = tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let client = client.clone();
                let repository = repository.clone();
                tokio::spawn(async move {
                    let outcome = handle::<A>(&repository, &request).await;
                    let payload = serde_json::to_vec(&outcome).unwrap_or_else(|e| {
                        format!(r#"{{"outcome":"failed","message":"encoding the outcome: {e}"}}"#)
                            .into_bytes()
                    });
                    if request.reply.is_some() {
                        if let Err(e) = client.respond(&request, payload) {
                            tracing::warn!(error = %e, subject = %request.subject, "answering a command failed");
                        }
                    }
                    drop(slot);
                });
            }
        });
        Ok(CommandHandler { task })
    }

    /// Stops serving.
    pub fn stop(self) {}
}

impl Drop for CommandHandler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle<A: Aggregate>(repository: &Repository<A>, request: &Message) -> Reply<A::Error> {
    let failed = |message: String| Reply::Failed { message };
    let Some(id) = request.subject.rsplit('.').next() else {
        return failed(format!("bad command subject {}", request.subject));
    };
    let command: A::Command = match serde_json::from_slice(&request.payload) {
        Ok(command) => command,
        Err(e) => return failed(format!("cannot decode the command: {e}")),
    };
    let header = |name| request.headers.as_ref().and_then(|h: &Headers| h.get(name));
    let context = match header(ID) {
        Some(command_id) => CommandContext {
            command_id: command_id.to_string(),
            correlation_id: header(CORRELATION_ID).unwrap_or(command_id).to_string(),
        },
        None => CommandContext::new(),
    };
    match repository.execute(id, &command, &context).await {
        Ok(done) => Reply::Accepted {
            version: done.version,
            events: done.events.len(),
            duplicate: done.duplicate,
        },
        Err(ExecuteError::Rejected(error)) => Reply::Rejected {
            message: error.to_string(),
            error,
        },
        Err(e) => failed(e.to_string()),
    }
}
