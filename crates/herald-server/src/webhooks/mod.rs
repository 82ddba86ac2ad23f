//! Webhook subscriptions: messages on a subject, delivered by HTTP POST to
//! an endpoint, signed (Standard Webhooks), retried with backoff, and
//! dead-lettered after the last attempt.
//!
//! - [`config`]: the create request, its validation, the persisted form.
//! - [`setup`]: the stream and durable consumer, through the JetStream API.
//! - [`delivery`]: the task that pulls from the consumer and POSTs.
//! - [`signature`], [`retry`]: the signing and the backoff schedule.
//! - [`stats`]: per-webhook counters for the API and `/metrics`.
//!
//! Definitions persist as `<data_dir>/webhooks/<name>.json` (written to a
//! temporary file, fsynced, renamed) and are reloaded at start; delivery
//! state is the consumer's, which JetStream persists.

pub(crate) mod config;
pub(crate) mod delivery;
pub(crate) mod retry;
pub(crate) mod setup;
pub(crate) mod signature;
pub(crate) mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::jetstream::Timestamp;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::local::Local;
use crate::ServerState;
use config::{CreateRequest, WebhookConfig};
use delivery::Delivery;
use setup::SetupError;
use stats::{StatsView, WebhookStats};

pub(crate) use stats::WebhookMetrics;

/// Most webhooks per server.
pub(crate) const WEBHOOKS_MAX: usize = 1000;
/// Longest a definition file may be.
const DEFINITION_BYTES_MAX: u64 = 64 * 1024;
/// Longest wait for a delivery task to stop.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebhookError {
    /// The name is taken, or the limit reached (409).
    #[error("{0}")]
    Conflict(String),
    /// No such webhook (404).
    #[error("no webhook named {0}")]
    NotFound(String),
    /// The stream or consumer could not be set up or removed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The definition could not be written or removed (500).
    #[error("{0}")]
    Storage(String),
}

/// One webhook: its definition, counters and delivery task.
struct Hook {
    config: Arc<WebhookConfig>,
    stats: Arc<WebhookStats>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A webhook as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WebhookView {
    pub name: String,
    pub subject: String,
    pub url: String,
    pub stream: String,
    /// Only in the answer to the create request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub max_attempts: u32,
    pub max_age_ms: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub timeout_ms: u64,
    pub concurrency: u32,
    pub ordered: bool,
    pub dead_letter_subject: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<StatsView>,
}

impl WebhookView {
    fn of(config: &WebhookConfig) -> WebhookView {
        WebhookView {
            name: config.name.clone(),
            subject: config.subject.clone(),
            url: config.url.clone(),
            stream: config.stream.clone(),
            secret: None,
            max_attempts: config.max_attempts,
            max_age_ms: config.max_age_ms,
            backoff_initial_ms: config.backoff_initial_ms,
            backoff_max_ms: config.backoff_max_ms,
            timeout_ms: config.timeout_ms,
            concurrency: config.concurrency,
            ordered: config.ordered,
            dead_letter_subject: config.dead_letter_subject.clone(),
            created: config.created.clone(),
            stats: None,
        }
    }
}

/// Every webhook of one server.
pub(crate) struct Webhooks {
    state: Arc<ServerState>,
    local: Arc<Local>,
    dir: PathBuf,
    hooks: Mutex<BTreeMap<String, Arc<Hook>>>,
    /// Names being created or deleted: a second request for one of them
    /// is refused instead of racing.
    busy: Mutex<BTreeSet<String>>,
    shutdown: watch::Receiver<bool>,
}

/// Frees a name reserved in [`Webhooks::busy`] when dropped.
struct Reservation<'a> {
    busy: &'a Mutex<BTreeSet<String>>,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.busy.lock().remove(&self.name);
    }
}

impl Webhooks {
    /// Loads the definitions in `<data_dir>/webhooks` and starts their
    /// delivery tasks; they stop when `shutdown` turns true. A definition
    /// that cannot be read is logged and skipped (its file is kept).
    pub fn start(
        state: Arc<ServerState>,
        local: Arc<Local>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Webhooks> {
        let dir = state.config.data_dir.join("webhooks");
        let webhooks = Arc::new(Webhooks {
            state,
            local,
            dir,
            hooks: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(BTreeSet::new()),
            shutdown,
        });
        for config in load_all(&webhooks.dir) {
            if let Err(e) = webhooks.launch(config) {
                tracing::error!(error = %e, "cannot start a webhook");
            }
        }
        webhooks
    }

    /// Creates a webhook: its stream (when none captures the subject), its
    /// consumer, its file, its delivery task. Returns it with its secret.
    pub async fn create(&self, request: CreateRequest) -> Result<WebhookView, WebhookError> {
        let _reservation = self.reserve(&request.name)?;
        let (stream, created) = setup::resolve_stream(
            &self.local,
            &request.name,
            &request.subject,
            request.stream.as_deref(),
        )
        .await?;
        let config = request.into_config(stream, created, Timestamp::now().to_rfc3339());
        let undo = |config: WebhookConfig| async move {
            if let Err(e) = setup::remove(&self.local, &config).await {
                tracing::warn!(webhook = %config.name, error = %e, "cannot undo a failed webhook creation");
            }
        };
        if let Err(e) = setup::ensure(&self.local, &config).await {
            undo(config).await;
            return Err(e.into());
        }
        if let Err(e) = save(&self.dir, &config) {
            undo(config).await;
            return Err(WebhookError::Storage(e));
        }
        let mut view = WebhookView::of(&config);
        view.secret = Some(config.secret.clone());
        if let Err(e) = self.launch(config.clone()) {
            let _ = std::fs::remove_file(definition_path(&self.dir, &config.name));
            undo(config).await;
            return Err(WebhookError::Storage(e));
        }
        tracing::info!(webhook = %view.name, subject = %view.subject, stream = %view.stream, "webhook created");
        Ok(view)
    }

    /// Every webhook with its counters, by name.
    pub async fn list(&self) -> Vec<WebhookView> {
        let hooks: Vec<Arc<Hook>> = self.hooks.lock().values().cloned().collect();
        let mut views = Vec::with_capacity(hooks.len());
        for hook in hooks {
            views.push(self.view(&hook).await);
        }
        views
    }

    /// One webhook with its counters.
    pub async fn get(&self, name: &str) -> Result<WebhookView, WebhookError> {
        let hook = self
            .hooks
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| WebhookError::NotFound(name.to_string()))?;
        Ok(self.view(&hook).await)
    }

    /// Stops a webhook's delivery, deletes its consumer, the stream if
    /// Herald made it, and its file.
    pub async fn delete(&self, name: &str) -> Result<(), WebhookError> {
        let _reservation = self.reserve_existing(name)?;
        let Some(hook) = self.hooks.lock().remove(name) else {
            return Err(WebhookError::NotFound(name.to_string()));
        };
        stop(&hook).await;
        if let Err(e) = setup::remove(&self.local, &hook.config).await {
            // Keep it working rather than half deleted.
            let config = (*hook.config).clone();
            if let Err(relaunch) = self.launch(config) {
                tracing::error!(webhook = %name, error = %relaunch, "cannot restart a webhook after a failed delete");
            }
            return Err(e.into());
        }
        match std::fs::remove_file(definition_path(&self.dir, name)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(WebhookError::Storage(format!(
                    "cannot remove the definition of {name}: {e}"
                )))
            }
        }
        self.state.webhooks.unregister(name);
        tracing::info!(webhook = %name, "webhook deleted");
        Ok(())
    }

    /// Registers `config` and starts its delivery task.
    fn launch(&self, config: WebhookConfig) -> Result<(), String> {
        let name = config.name.clone();
        let config = Arc::new(config);
        let stats = Arc::new(WebhookStats::default());
        let delivery = Arc::new(Delivery::new(self.local.clone(), config.clone(), stats.clone())?);
        let (stop_tx, stop_rx) = watch::channel(false);
        let hook = Arc::new(Hook {
            config,
            stats: stats.clone(),
            stop: stop_tx,
            task: Mutex::new(None),
        });
        let task = delivery.spawn(either_stop(stop_rx, self.shutdown.clone()));
        *hook.task.lock() = Some(task);
        self.state.webhooks.register(&name, stats);
        self.hooks.lock().insert(name, hook);
        Ok(())
    }

    async fn view(&self, hook: &Hook) -> WebhookView {
        if let Ok(pending) = setup::pending(&self.local, &hook.config).await {
            hook.stats
                .pending
                .store(pending, std::sync::atomic::Ordering::Relaxed);
        }
        let mut view = WebhookView::of(&hook.config);
        view.stats = Some(hook.stats.view());
        view
    }

    /// Reserves a new name: refused if it exists, is being worked on, or the
    /// limit is reached.
    fn reserve(&self, name: &str) -> Result<Reservation<'_>, WebhookError> {
        let hooks = self.hooks.lock();
        let mut busy = self.busy.lock();
        if hooks.contains_key(name) || busy.contains(name) {
            return Err(WebhookError::Conflict(format!(
                "a webhook named {name} already exists"
            )));
        }
        if hooks.len() + busy.len() >= WEBHOOKS_MAX {
            return Err(WebhookError::Conflict(format!(
                "the server has the maximum of {WEBHOOKS_MAX} webhooks"
            )));
        }
        busy.insert(name.to_string());
        Ok(Reservation {
            busy: &self.busy,
            name: name.to_string(),
        })
    }

    /// Reserves an existing name for deletion.
    fn reserve_existing(&self, name: &str) -> Result<Reservation<'_>, WebhookError> {
        let hooks = self.hooks.lock();
        let mut busy = self.busy.lock();
        if !hooks.contains_key(name) || busy.contains(name) {
            return Err(WebhookError::NotFound(name.to_string()));
        }
        busy.insert(name.to_string());
        Ok(Reservation {
            busy: &self.busy,
            name: name.to_string(),
        })
    }
}

/// Stops a hook's task, waiting a bounded time (then aborting it).
async fn stop(hook: &Hook) {
    let _ = hook.stop.send(true);
    let task = hook.task.lock().take();
    if let Some(mut task) = task {
        if tokio::time::timeout(STOP_WAIT, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// A receiver that turns true when either `a` or `b` does.
fn either_stop(mut a: watch::Receiver<bool>, mut b: watch::Receiver<bool>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(*a.borrow() || *b.borrow());
    tokio::spawn(async move {
        loop {
            if *a.borrow() || *b.borrow() {
                let _ = tx.send(true);
                return;
            }
            tokio::select! {
                changed = a.changed() => if changed.is_err() { let _ = tx.send(true); return; },
                changed = b.changed() => if changed.is_err() { let _ = tx.send(true); return; },
                _ = tx.closed() => return,
            }
        }
    });
    rx
}

fn definition_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Writes the definition atomically: a temporary file, fsynced, renamed
/// over the old one, then the directory fsynced. Readable by the owner only
/// (it holds the secret).
fn save(dir: &Path, config: &WebhookConfig) -> Result<(), String> {
    let fail =
        |what: &str, e: std::io::Error| format!("cannot {what} the definition of {}: {e}", config.name);
    std::fs::create_dir_all(dir).map_err(|e| fail("store", e))?;
    let json =
        serde_json::to_vec_pretty(config).map_err(|e| format!("cannot encode {}: {e}", config.name))?;
    let path = definition_path(dir, &config.name);
    let temp = dir.join(format!(".{}.json.tmp", config.name));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(&temp).map_err(|e| fail("create", e))?;
    file.write_all(&json).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("sync", e))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(|e| fail("rename", e))?;
    sync_dir(dir);
    Ok(())
}

/// Makes a rename or removal in `dir` durable (best effort: some file
/// systems refuse to sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Every valid definition in `dir` (at most [`WEBHOOKS_MAX`]).
fn load_all(dir: &Path) -> Vec<WebhookConfig> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot read the webhook definitions");
            return Vec::new();
        }
    };
    let mut configs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') || !file_name.ends_with(".json") {
            continue;
        }
        if configs.len() >= WEBHOOKS_MAX {
            tracing::error!(dir = %dir.display(), "more than {WEBHOOKS_MAX} webhook definitions; the rest are ignored");
            break;
        }
        match load(&path) {
            Ok(config) => configs.push(config),
            Err(e) => tracing::error!(file = %path.display(), error = %e, "webhook definition skipped"),
        }
    }
    configs
}

fn load(path: &Path) -> Result<WebhookConfig, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > DEFINITION_BYTES_MAX {
        return Err(format!("larger than {DEFINITION_BYTES_MAX} bytes"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let config: WebhookConfig = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    config.check()?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != config.name {
        return Err(format!("the file holds webhook {}, not {stem}", config.name));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> WebhookConfig {
        let request = CreateRequest::parse(
            format!(r#"{{"name":"{name}","subject":"a.>","url":"http://127.0.0.1:1/"}}"#).as_bytes(),
        )
        .unwrap();
        request.into_config("S".into(), true, "2024-01-01T00:00:00Z".into())
    }

    #[test]
    fn definitions_round_trip_through_their_files() {
        let dir = std::env::temp_dir().join(format!("herald-webhooks-test-{}", fastrand::u64(..)));
        let a = sample("a");
        save(&dir, &a).unwrap();
        save(&dir, &sample("b")).unwrap();
        // Junk beside them is skipped, not fatal.
        std::fs::write(dir.join("junk.json"), b"{").unwrap();
        std::fs::write(dir.join(".c.json.tmp"), b"{").unwrap();
        let mut mismatched = sample("d");
        mismatched.name = "e".into();
        std::fs::write(dir.join("d.json"), serde_json::to_vec(&mismatched).unwrap()).unwrap();
        let mut loaded = load_all(&dir);
        loaded.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(
            loaded.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(loaded[0], a);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_directory_holds_no_definitions() {
        assert!(load_all(Path::new("/nonexistent/herald/webhooks")).is_empty());
    }
}
