//! Creating, updating, recovering and deleting streams.

use std::path::Path;
use std::sync::Arc;

use herald_protocol::jetstream::{ApiErrorCode as Code, StreamConfig};
use herald_storage::{FileStore, MemoryStore, Store};

use super::commit::SendFn;
use super::convert::{stream_settings, subjects_overlap};
use super::persist::{self, Meta};
use super::settings::SyncPolicy;
use super::stream::{Capture, Stream};
use super::{err, err_arg, unix_now_ns, JetStream, JsError};
use crate::publisher::Publisher;
use crate::router::InternalSub;
use crate::ServerState;

/// A function that routes messages on the server's behalf from any thread
/// (it holds the server weakly, so it never keeps it alive).
pub(crate) fn send_fn(state: &Arc<ServerState>) -> SendFn {
    let weak = Arc::downgrade(state);
    Box::new(move |msgs| {
        if let Some(state) = weak.upgrade() {
            Publisher::new(state).send_all(&msgs, true);
        }
    })
}

impl JetStream {
    /// Opens every stream (and its consumers) found in the data directory.
    /// A stream that cannot be opened is logged and skipped, never deleted.
    pub fn recover(&self, state: &Arc<ServerState>) {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot read the streams directory");
                return;
            }
        };
        let mut dirs: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        for dir in dirs.into_iter().filter(|d| d.is_dir()) {
            let meta: Meta<StreamConfig> = match persist::load_meta(&dir) {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::error!(dir = %dir.display(), error = %e, "cannot read stream metadata; skipped");
                    continue;
                }
            };
            let name = meta.config.name.clone();
            match self.open_stream(state, meta.config, meta.created_ns, false) {
                Ok(stream) => {
                    let s = stream.inner.lock().store.state();
                    tracing::info!(stream = %name, msgs = s.msgs, bytes = s.bytes, last_seq = s.last_seq, "stream recovered");
                    self.recover_consumers(state, &stream);
                }
                Err(e) => {
                    tracing::error!(stream = %name, error = %e.0.description, "cannot open stream; skipped")
                }
            }
        }
    }

    /// Creates a stream, or returns the existing one if its configuration
    /// is identical. The bool says whether it was created.
    pub fn create_stream(
        &self,
        state: &Arc<ServerState>,
        config: StreamConfig,
    ) -> Result<(Arc<Stream>, bool), JsError> {
        let config = config.with_defaults();
        if config.sealed {
            return Err(err_arg(
                Code::StreamInvalidConfig,
                "stream configuration for create can not be sealed",
            ));
        }
        if let Some(existing) = self.stream(&config.name) {
            if existing.inner.lock().config == config {
                return Ok((existing, false));
            }
            return Err(err(Code::StreamNameExist));
        }
        let stream = self.open_stream(state, config, unix_now_ns(), true)?;
        Ok((stream, true))
    }

    fn open_stream(
        &self,
        state: &Arc<ServerState>,
        config: StreamConfig,
        created_ns: i64,
        new: bool,
    ) -> Result<Arc<Stream>, JsError> {
        let settings = stream_settings(&config, self.sync)?;
        let mut streams = self.streams.write();
        if new && streams.contains_key(&config.name) {
            return Err(err(Code::StreamNameExist));
        }
        check_no_overlap(streams.values(), &config.name, &settings.subjects)?;
        let dir = self.dir.join(&config.name);
        let store: Box<dyn Store> = if settings.memory {
            Box::new(MemoryStore::new(settings.store.clone()))
        } else {
            if new {
                persist::save_meta(
                    &dir,
                    &Meta {
                        config: config.clone(),
                        created_ns,
                    },
                )
                .map_err(|e| store_failed(&dir, &e))?;
            }
            let (store, recovery) =
                open_file_store(&dir.join("msgs"), settings.store.clone()).map_err(|e| {
                    tracing::error!(stream = %config.name, error = %e, "cannot open stream store");
                    err_arg(Code::StreamStoreFailed, &e)
                })?;
            if recovery.truncated_bytes > 0 || recovery.dropped_records > 0 {
                tracing::warn!(
                    stream = %config.name,
                    truncated_bytes = recovery.truncated_bytes,
                    dropped_records = recovery.dropped_records,
                    "stream recovery cut off a damaged tail"
                );
            }
            store
        };
        let name = config.name.clone();
        let subjects = settings.subjects.clone();
        let dir = (!settings.memory).then_some(dir);
        let stream = Stream::new(
            name.clone(),
            created_ns,
            dir,
            config,
            settings,
            store,
            send_fn(state),
        );
        stream.inner.lock().captures = capture(state, &stream, &subjects);
        streams.insert(name, stream.clone());
        Ok(stream)
    }

    /// Applies a new configuration to an existing stream.
    pub fn update_stream(
        &self,
        state: &Arc<ServerState>,
        config: StreamConfig,
    ) -> Result<Arc<Stream>, JsError> {
        let config = config.with_defaults();
        let Some(stream) = self.stream(&config.name) else {
            return Err(err(Code::StreamNotFound));
        };
        let settings = stream_settings(&config, self.sync)?;
        {
            let current = stream.inner.lock();
            if current.settings.memory != settings.memory {
                return Err(err_arg(
                    Code::StreamInvalidConfig,
                    "stream storage type can not be changed",
                ));
            }
            if current.settings.sealed && !settings.sealed {
                return Err(err_arg(
                    Code::StreamInvalidConfig,
                    "stream configuration update can not unseal a sealed stream",
                ));
            }
            if current.settings.retention != settings.retention {
                return Err(err_arg(
                    Code::StreamInvalidConfig,
                    "stream configuration for retention policy can not be changed",
                ));
            }
        }
        check_no_overlap(self.streams.read().values(), &stream.name, &settings.subjects)?;
        if let Some(dir) = &stream.dir {
            persist::save_meta(
                dir,
                &Meta {
                    config: config.clone(),
                    created_ns: stream.created_ns,
                },
            )
            .map_err(|e| store_failed(dir, &e))?;
        }
        let mut inner = stream.inner.lock();
        inner
            .store
            .set_config(settings.store.clone())
            .map_err(super::stream::store_error)?;
        if inner.settings.subjects != settings.subjects {
            for sub in inner.captures.drain(..) {
                state.router.remove_internal(&sub);
            }
            inner.captures = capture(state, &stream, &settings.subjects);
        }
        stream
            .no_ack
            .store(settings.no_ack, std::sync::atomic::Ordering::Relaxed);
        inner.set_settings(config, settings);
        drop(inner);
        stream.wake_consumers();
        Ok(stream)
    }

    /// Deletes a stream, its consumers and its files.
    pub fn delete_stream(&self, state: &Arc<ServerState>, name: &str) -> Result<(), JsError> {
        let Some(stream) = self.streams.write().remove(name) else {
            return Err(err(Code::StreamNotFound));
        };
        for consumer in self.consumers_of(name) {
            self.forget_consumer(&consumer);
        }
        for sub in stream.inner.lock().captures.drain(..) {
            state.router.remove_internal(&sub);
        }
        if let Some(dir) = &stream.dir {
            if let Err(e) = std::fs::remove_dir_all(dir) {
                tracing::error!(stream = %name, error = %e, "cannot remove stream files");
            }
        }
        Ok(())
    }

    /// Fsyncs every stream whose policy is `interval` (the periodic sync).
    pub fn sync_interval_streams(&self) {
        let streams: Vec<_> = self.streams.read().values().cloned().collect();
        for stream in streams {
            if stream.sync_policy() == SyncPolicy::Interval {
                if let Err(e) = stream.sync_now() {
                    tracing::error!(stream = %stream.name, error = %e, "periodic fsync failed");
                }
            }
        }
    }
}

/// Opens (recovering) the file store of a stream.
fn open_file_store(
    dir: &Path,
    config: herald_storage::StoreConfig,
) -> Result<(Box<dyn Store>, herald_storage::Recovery), herald_storage::StoreError> {
    let (store, recovery) = FileStore::open(dir, config)?;
    Ok((Box::new(store), recovery))
}

/// Refuses subjects that overlap those of another stream than `name`.
fn check_no_overlap<'a>(
    streams: impl Iterator<Item = &'a Arc<Stream>>,
    name: &str,
    subjects: &[String],
) -> Result<(), JsError> {
    for other in streams.filter(|s| s.name != name) {
        let other = other.inner.lock();
        let overlap = other
            .settings
            .subjects
            .iter()
            .any(|a| subjects.iter().any(|b| subjects_overlap(a, b)));
        if overlap {
            return Err(err(Code::StreamSubjectOverlap));
        }
    }
    Ok(())
}

/// Subscribes the stream to its subjects (the router's internal
/// subscriptions that store what is published there).
fn capture(state: &ServerState, stream: &Arc<Stream>, subjects: &[String]) -> Vec<Arc<InternalSub>> {
    let handler = Arc::new(Capture(stream.clone()));
    let mut captures = Vec::new();
    for subject in subjects {
        let sub = Arc::new(InternalSub {
            subject: subject.as_bytes().into(),
            handler: handler.clone(),
        });
        if state.router.insert_internal(&sub).is_ok() {
            captures.push(sub);
        }
    }
    captures
}

fn store_failed(dir: &Path, e: &std::io::Error) -> JsError {
    tracing::error!(dir = %dir.display(), error = %e, "cannot write stream metadata");
    err_arg(Code::StreamStoreFailed, e)
}
