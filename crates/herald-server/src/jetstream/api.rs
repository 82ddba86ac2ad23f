//! The `$JS.API.>` request handlers. Each request is answered on its reply
//! subject with a JSON response (`type` plus the body, or `error`), except
//! pull requests, which the consumer answers with messages, and direct
//! gets, which are answered with the message itself.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use herald_protocol::jetstream::api::{
    encode_response, parse_optional_request, AccountInfo, AccountLimits, ConsumerAction, ConsumerInfo,
    ConsumerListResponse, ConsumerNamesResponse, ConsumersRequest, CreateConsumerRequest, DeleteResponse,
    MsgDeleteRequest, MsgGetRequest, MsgGetResponse, NextRequest, Paged, ResponseType, SequenceInfo,
    StoredMsg, StreamInfo, StreamInfoRequest, StreamInfoResponse, StreamListResponse, StreamNamesRequest,
    StreamNamesResponse, StreamPurgeRequest, StreamPurgeResponse, StreamState, LIST_PAGE_LIMIT,
    NAMES_PAGE_LIMIT,
};
use herald_protocol::jetstream::{ApiErrorCode as Code, StreamConfig, Timestamp};
use herald_storage::{Purge, StoredMessage, SubjectFilter};

use super::consumer::{ConsumerShared, PullRequest};
use super::convert::subjects_overlap;
use super::stream::{store_error, Stream};
use super::{err, err_arg, monotonic_ns, unix_now_ns, JsError};
use crate::publisher::{Effects, OutMsg};
use crate::router::{InMsg, InternalHandler};
use crate::ServerState;

/// The subscription to `$JS.API.>`.
pub(crate) struct Api {
    pub state: Weak<ServerState>,
}

impl InternalHandler for Api {
    fn on_message(&self, msg: &InMsg<'_>, effects: &mut Effects) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let Some(reply) = msg.reply else {
            // Nobody to answer; every API call is a request.
            return;
        };
        let Ok(subject) = std::str::from_utf8(msg.subject) else {
            return;
        };
        let tokens: Vec<&str> = subject.split('.').skip(2).collect();
        let request = Request {
            state: &state,
            reply: Bytes::copy_from_slice(reply),
            body: msg.payload,
        };
        if let Some(answer) = request.dispatch(&tokens) {
            effects.send.push(answer);
        }
    }
}

struct Request<'a> {
    state: &'a Arc<ServerState>,
    reply: Bytes,
    body: &'a [u8],
}

type Reply = Result<Vec<u8>, JsError>;

impl Request<'_> {
    /// Runs the request; `None` when the answer comes later (pulls).
    fn dispatch(&self, tokens: &[&str]) -> Option<OutMsg> {
        let (ty, result) = match tokens {
            ["INFO"] => (ResponseType::AccountInfo, self.account_info()),
            ["STREAM", "CREATE", name] => (ResponseType::StreamCreate, self.stream_create(name)),
            ["STREAM", "UPDATE", name] => (ResponseType::StreamUpdate, self.stream_update(name)),
            ["STREAM", "INFO", name] => (ResponseType::StreamInfo, self.stream_info(name)),
            ["STREAM", "DELETE", name] => (ResponseType::StreamDelete, self.stream_delete(name)),
            ["STREAM", "PURGE", name] => (ResponseType::StreamPurge, self.stream_purge(name)),
            ["STREAM", "NAMES"] => (ResponseType::StreamNames, self.stream_names()),
            ["STREAM", "LIST"] => (ResponseType::StreamList, self.stream_list()),
            ["STREAM", "MSG", "GET", name] => (ResponseType::StreamMsgGet, self.msg_get(name)),
            ["STREAM", "MSG", "DELETE", name] => (ResponseType::StreamMsgDelete, self.msg_delete(name)),
            ["DIRECT", "GET", name] => return Some(self.direct_get(name, None)),
            ["DIRECT", "GET", name, subject @ ..] if !subject.is_empty() => {
                return Some(self.direct_get(name, Some(subject.join("."))))
            }
            ["CONSUMER", "CREATE", stream] => (
                ResponseType::ConsumerCreate,
                self.consumer_create(stream, None, None),
            ),
            ["CONSUMER", "CREATE", stream, name] => (
                ResponseType::ConsumerCreate,
                self.consumer_create(stream, Some(name), None),
            ),
            ["CONSUMER", "CREATE", stream, name, filter @ ..] => {
                let filter = filter.join(".");
                (
                    ResponseType::ConsumerCreate,
                    self.consumer_create(stream, Some(name), Some(filter)),
                )
            }
            ["CONSUMER", "DURABLE", "CREATE", stream, name] => (
                ResponseType::ConsumerCreate,
                self.consumer_create(stream, Some(name), None),
            ),
            ["CONSUMER", "INFO", stream, name] => {
                (ResponseType::ConsumerInfo, self.consumer_info(stream, name))
            }
            ["CONSUMER", "DELETE", stream, name] => {
                (ResponseType::ConsumerDelete, self.consumer_delete(stream, name))
            }
            ["CONSUMER", "NAMES", stream] => (ResponseType::ConsumerNames, self.consumer_names(stream)),
            ["CONSUMER", "LIST", stream] => (ResponseType::ConsumerList, self.consumer_list(stream)),
            ["CONSUMER", "MSG", "NEXT", stream, name] => {
                return self.pull(stream, name);
            }
            _ => (ResponseType::System, Err(err(Code::BadRequest))),
        };
        let payload = match result {
            Ok(body) => body.into(),
            Err(e) => e.json(ty),
        };
        Some(OutMsg::new(self.reply.clone(), payload))
    }

    /// A status-only reply (`NATS/1.0 <code> <text>`).
    fn status(&self, line: &str) -> OutMsg {
        OutMsg {
            headers: Bytes::from(format!("NATS/1.0 {line}\r\n\r\n")),
            ..OutMsg::new(self.reply.clone(), Bytes::new())
        }
    }

    /// Reads an optional request body: empty or `null` (what some clients
    /// send) is the default request.
    fn parse<T: for<'de> serde::Deserialize<'de> + Default>(&self) -> Result<T, JsError> {
        if self.body.trim_ascii() == b"null" {
            return Ok(T::default());
        }
        parse_optional_request(self.body).map_err(|e| err_arg(Code::InvalidJson, e))
    }

    fn stream(&self, name: &str) -> Result<Arc<Stream>, JsError> {
        self.state
            .jetstream
            .stream(name)
            .ok_or_else(|| err(Code::StreamNotFound))
    }

    fn account_info(&self) -> Reply {
        let js = &self.state.jetstream;
        let streams: Vec<_> = js.streams.read().values().cloned().collect();
        let (mut memory, mut storage) = (0, 0);
        for stream in &streams {
            let inner = stream.inner.lock();
            let bytes = inner.store.state().bytes;
            if inner.settings.memory {
                memory += bytes;
            } else {
                storage += bytes;
            }
        }
        let info = AccountInfo {
            memory,
            storage,
            streams: streams.len() as u64,
            consumers: js.consumer_count() as u64,
            limits: AccountLimits::unlimited(),
            ..AccountInfo::default()
        };
        Ok(encode_response(ResponseType::AccountInfo, &info))
    }

    fn stream_config(&self, name: &str) -> Result<StreamConfig, JsError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(err(Code::BadRequest));
        }
        let mut config: StreamConfig =
            serde_json::from_slice(self.body).map_err(|e| err_arg(Code::InvalidJson, e))?;
        if config.name.is_empty() {
            config.name = name.to_owned();
        }
        if config.name != name {
            return Err(err(Code::StreamMismatch));
        }
        Ok(config)
    }

    fn stream_create(&self, name: &str) -> Reply {
        let config = self.stream_config(name)?;
        let (stream, created) = self.state.jetstream.create_stream(self.state, config)?;
        let response = StreamInfoResponse {
            info: stream_info(self.state, &stream, None),
            did_create: created,
            paged: None,
        };
        Ok(encode_response(ResponseType::StreamCreate, &response))
    }

    fn stream_update(&self, name: &str) -> Reply {
        let config = self.stream_config(name)?;
        let stream = self.state.jetstream.update_stream(self.state, config)?;
        let response = StreamInfoResponse {
            info: stream_info(self.state, &stream, None),
            did_create: false,
            paged: None,
        };
        Ok(encode_response(ResponseType::StreamUpdate, &response))
    }

    fn stream_info(&self, name: &str) -> Reply {
        let stream = self.stream(name)?;
        let request: StreamInfoRequest = self.parse()?;
        let filter = (!request.subjects_filter.is_empty()).then_some(request.subjects_filter.as_str());
        let response = StreamInfoResponse {
            info: stream_info(self.state, &stream, filter),
            did_create: false,
            paged: None,
        };
        Ok(encode_response(ResponseType::StreamInfo, &response))
    }

    fn stream_delete(&self, name: &str) -> Reply {
        self.state.jetstream.delete_stream(self.state, name)?;
        Ok(encode_response(
            ResponseType::StreamDelete,
            &DeleteResponse { success: true },
        ))
    }

    fn stream_purge(&self, name: &str) -> Reply {
        let stream = self.stream(name)?;
        let request: StreamPurgeRequest = self.parse()?;
        if request.seq > 0 && request.keep > 0 {
            return Err(err_arg(
                Code::BadRequest,
                "can not specify both sequence and keep",
            ));
        }
        let purged = {
            let mut inner = stream.inner.lock();
            if inner.settings.sealed {
                return Err(err(Code::StreamSealed));
            }
            if inner.settings.deny_purge {
                return Err(err_arg(Code::StreamPurgeFailed, "stream purge not permitted"));
            }
            let purge = Purge {
                filter: SubjectFilter::one(&request.filter),
                up_to_seq: (request.seq > 0).then_some(request.seq),
                keep: (request.keep > 0).then_some(request.keep),
            };
            let purged = inner.store.purge(&purge).map_err(store_error)?;
            inner.store.write_out().map_err(store_error)?;
            purged
        };
        stream.wake_consumers();
        let response = StreamPurgeResponse {
            success: true,
            purged,
        };
        Ok(encode_response(ResponseType::StreamPurge, &response))
    }

    /// Names of streams matching the request's subject filter, sorted.
    fn matching_streams(&self) -> Result<(Vec<Arc<Stream>>, u64), JsError> {
        let request: StreamNamesRequest = self.parse()?;
        let streams: Vec<Arc<Stream>> = self
            .state
            .jetstream
            .streams
            .read()
            .values()
            .filter(|stream| {
                request.subject.is_empty()
                    || stream
                        .inner
                        .lock()
                        .settings
                        .subjects
                        .iter()
                        .any(|s| subjects_overlap(s, &request.subject))
            })
            .cloned()
            .collect();
        Ok((streams, request.offset))
    }

    fn stream_names(&self) -> Reply {
        let (streams, offset) = self.matching_streams()?;
        let response = StreamNamesResponse {
            paged: paged(streams.len(), offset, NAMES_PAGE_LIMIT),
            streams: page(&streams, offset, NAMES_PAGE_LIMIT)
                .map(|s| s.name.clone())
                .collect(),
        };
        Ok(encode_response(ResponseType::StreamNames, &response))
    }

    fn stream_list(&self) -> Reply {
        let (streams, offset) = self.matching_streams()?;
        let response = StreamListResponse {
            paged: paged(streams.len(), offset, LIST_PAGE_LIMIT),
            streams: page(&streams, offset, LIST_PAGE_LIMIT)
                .map(|s| stream_info(self.state, s, None))
                .collect(),
            missing: Vec::new(),
        };
        Ok(encode_response(ResponseType::StreamList, &response))
    }

    /// The message a get request asks for.
    fn find_message(stream: &Stream, request: &MsgGetRequest) -> Result<StoredMessage, JsError> {
        let mut inner = stream.inner.lock();
        let found = if !request.last_by_subj.is_empty() {
            inner
                .store
                .last_matching(&SubjectFilter::one(&request.last_by_subj))
        } else if !request.next_by_subj.is_empty() {
            inner
                .store
                .next_matching(request.seq.max(1), &SubjectFilter::one(&request.next_by_subj))
        } else if request.seq > 0 {
            inner.store.get(request.seq)
        } else {
            return Err(err(Code::BadRequest));
        };
        found
            .map_err(store_error)?
            .ok_or_else(|| err(Code::NoMessageFound))
    }

    fn msg_get(&self, name: &str) -> Reply {
        let stream = self.stream(name)?;
        let request: MsgGetRequest =
            serde_json::from_slice(self.body).map_err(|e| err_arg(Code::InvalidJson, e))?;
        let msg = Self::find_message(&stream, &request)?;
        let response = MsgGetResponse {
            message: StoredMsg {
                subject: msg.subject,
                seq: msg.seq,
                hdrs: msg.headers.to_vec(),
                data: msg.payload.to_vec(),
                time: Timestamp::from_unix_nanos(msg.time_ns),
            },
        };
        Ok(encode_response(ResponseType::StreamMsgGet, &response))
    }

    fn msg_delete(&self, name: &str) -> Reply {
        let stream = self.stream(name)?;
        let request: MsgDeleteRequest =
            serde_json::from_slice(self.body).map_err(|e| err_arg(Code::InvalidJson, e))?;
        let mut inner = stream.inner.lock();
        if inner.settings.sealed {
            return Err(err(Code::StreamSealed));
        }
        if inner.settings.deny_delete {
            return Err(err_arg(
                Code::StreamMsgDeleteFailed,
                "message delete not permitted",
            ));
        }
        let existed = inner.store.delete(request.seq).map_err(store_error)?;
        inner.store.write_out().map_err(store_error)?;
        if !existed {
            return Err(err_arg(Code::StreamMsgDeleteFailed, "no message found"));
        }
        Ok(encode_response(
            ResponseType::StreamMsgDelete,
            &DeleteResponse { success: true },
        ))
    }

    /// Direct get: the message itself with `Nats-*` headers, or a status.
    fn direct_get(&self, name: &str, last_by_subject: Option<String>) -> OutMsg {
        let stream = match self.state.jetstream.stream(name) {
            Some(stream) if stream.inner.lock().settings.allow_direct => stream,
            // Like a server where nothing serves direct gets for it.
            _ => return self.status("503"),
        };
        let request = match last_by_subject {
            Some(subject) => MsgGetRequest {
                last_by_subj: subject,
                ..MsgGetRequest::default()
            },
            None => match serde_json::from_slice::<MsgGetRequest>(self.body) {
                Ok(request) => request,
                Err(_) => return self.status("408 Bad Request"),
            },
        };
        let msg = match Self::find_message(&stream, &request) {
            Ok(msg) => msg,
            Err(e) if e.0.err_code == Code::NoMessageFound.err_code() => {
                return self.status("404 Message Not Found")
            }
            Err(_) => return self.status("408 Bad Request"),
        };
        let mut block = format!(
            "NATS/1.0\r\nNats-Stream: {name}\r\nNats-Subject: {}\r\nNats-Sequence: {}\r\nNats-Time-Stamp: {}\r\n",
            msg.subject,
            msg.seq,
            Timestamp::from_unix_nanos(msg.time_ns).to_rfc3339()
        )
        .into_bytes();
        // The stored headers after their version line, then the blank line.
        match msg.headers.iter().position(|&b| b == b'\n') {
            Some(end) if !msg.headers.is_empty() => block.extend_from_slice(&msg.headers[end + 1..]),
            _ => block.extend_from_slice(b"\r\n"),
        }
        OutMsg {
            headers: block.into(),
            ..OutMsg::new(self.reply.clone(), msg.payload)
        }
    }

    fn consumer_create(&self, stream_name: &str, name: Option<&str>, filter: Option<String>) -> Reply {
        let stream = self.stream(stream_name)?;
        let request: CreateConsumerRequest =
            serde_json::from_slice(self.body).map_err(|e| err_arg(Code::InvalidJson, e))?;
        if !request.stream_name.is_empty() && request.stream_name != stream_name {
            return Err(err(Code::StreamMismatch));
        }
        let Some(mut config) = request.config else {
            return Err(err(Code::ConsumerConfigRequired));
        };
        if let Some(name) = name {
            if !config.durable_name.is_empty() && config.durable_name != name {
                return Err(err(Code::ConsumerDurableNameNotMatchSubject));
            }
            if !config.name.is_empty() && config.name != name {
                return Err(err(Code::ConsumerDurableNameNotMatchSubject));
            }
            config.name = name.to_owned();
        }
        if let Some(filter) = filter {
            if config.filter_subject.is_empty() && config.filter_subjects.is_empty() {
                config.filter_subject = filter;
            }
        }
        let js = &self.state.jetstream;
        let exists = !config.name.is_empty() && js.consumer(stream_name, &config.name).is_some();
        match request.action {
            ConsumerAction::Update if !exists => return Err(err(Code::ConsumerNotFound)),
            _ => {}
        }
        let update = request.action != ConsumerAction::Create;
        let consumer = js.create_consumer(self.state, &stream, config, update)?;
        Ok(encode_response(
            ResponseType::ConsumerCreate,
            &consumer_info(&consumer),
        ))
    }

    fn consumer(&self, stream: &str, name: &str) -> Result<Arc<ConsumerShared>, JsError> {
        self.stream(stream)?;
        self.state
            .jetstream
            .consumer(stream, name)
            .ok_or_else(|| err(Code::ConsumerNotFound))
    }

    fn consumer_info(&self, stream: &str, name: &str) -> Reply {
        let consumer = self.consumer(stream, name)?;
        Ok(encode_response(
            ResponseType::ConsumerInfo,
            &consumer_info(&consumer),
        ))
    }

    fn consumer_delete(&self, stream: &str, name: &str) -> Reply {
        self.stream(stream)?;
        self.state.jetstream.delete_consumer(stream, name)?;
        Ok(encode_response(
            ResponseType::ConsumerDelete,
            &DeleteResponse { success: true },
        ))
    }

    fn consumer_names(&self, stream: &str) -> Reply {
        self.stream(stream)?;
        let request: ConsumersRequest = self.parse()?;
        let consumers = self.state.jetstream.consumers_of(stream);
        let response = ConsumerNamesResponse {
            paged: paged(consumers.len(), request.offset, NAMES_PAGE_LIMIT),
            consumers: page(&consumers, request.offset, NAMES_PAGE_LIMIT)
                .map(|c| c.name.clone())
                .collect(),
        };
        Ok(encode_response(ResponseType::ConsumerNames, &response))
    }

    fn consumer_list(&self, stream: &str) -> Reply {
        self.stream(stream)?;
        let request: ConsumersRequest = self.parse()?;
        let consumers = self.state.jetstream.consumers_of(stream);
        let response = ConsumerListResponse {
            paged: paged(consumers.len(), request.offset, LIST_PAGE_LIMIT),
            consumers: page(&consumers, request.offset, LIST_PAGE_LIMIT)
                .map(|c| consumer_info(c))
                .collect(),
            missing: Vec::new(),
        };
        Ok(encode_response(ResponseType::ConsumerList, &response))
    }

    /// A pull request: queued on the consumer, answered by its task.
    fn pull(&self, stream: &str, name: &str) -> Option<OutMsg> {
        let Some(consumer) = self.state.jetstream.consumer(stream, name) else {
            // Like a server where nothing serves this consumer's pulls.
            return Some(self.status("503"));
        };
        queue_pull(&consumer, self.reply.clone(), self.body)
            .err()
            .map(|line| self.status(&line))
    }
}

/// Queues a pull request on `consumer` and wakes its task. On a bad
/// request, returns the status message to send back instead.
pub(crate) fn queue_pull(consumer: &ConsumerShared, reply: Bytes, body: &[u8]) -> Result<(), String> {
    let request = NextRequest::parse(body).map_err(|e| format!("400 Bad Request - {e}"))?;
    let now = monotonic_ns();
    let mut inner = consumer.inner.lock();
    if inner.settings.deliver_subject.is_some() {
        return Err("409 Consumer is push based".into());
    }
    let batch = request.batch.max(1) as u64;
    if inner.settings.max_batch.is_some_and(|max| batch > max) {
        return Err(format!(
            "409 Exceeded MaxRequestBatch of {}",
            inner.settings.max_batch.unwrap_or(0)
        ));
    }
    if inner.waiting.len() >= inner.settings.max_waiting.max(1) {
        return Err("409 Exceeded MaxWaiting".into());
    }
    let heartbeat_ns = request.idle_heartbeat.max(0) as u64;
    inner.last_active_ns = now;
    inner.waiting.push_back(PullRequest {
        reply,
        batch_left: batch,
        bytes_left: (request.max_bytes > 0).then_some(request.max_bytes as u64),
        expires_ns: (request.expires > 0).then(|| now + request.expires as u64),
        no_wait: request.no_wait,
        heartbeat_ns,
        next_heartbeat_ns: now + heartbeat_ns,
        delivered: 0,
    });
    drop(inner);
    consumer.waker.notify_one();
    Ok(())
}

fn paged(total: usize, offset: u64, limit: usize) -> Paged {
    Paged {
        total: total as u64,
        offset,
        limit: limit as u64,
    }
}

fn page<T>(items: &[T], offset: u64, limit: usize) -> impl Iterator<Item = &T> {
    items.iter().skip(offset as usize).take(limit)
}

/// A stream's info, with per-subject counts when `subjects_filter` is set.
pub(crate) fn stream_info(state: &ServerState, stream: &Stream, subjects_filter: Option<&str>) -> StreamInfo {
    let consumer_count = state.jetstream.consumers_of(&stream.name).len() as u64;
    let inner = stream.inner.lock();
    let s = inner.store.state();
    let time = |ns: i64| {
        if ns == 0 {
            Timestamp::GO_ZERO
        } else {
            Timestamp::from_unix_nanos(ns)
        }
    };
    let subjects = subjects_filter
        .map(|filter| {
            inner
                .store
                .subject_counts(&SubjectFilter::one(filter))
                .into_iter()
                .collect()
        })
        .unwrap_or_default();
    StreamInfo {
        config: inner.config.clone(),
        created: Timestamp::from_unix_nanos(stream.created_ns),
        state: StreamState {
            messages: s.msgs,
            bytes: s.bytes,
            first_seq: s.first_seq,
            first_ts: time(if s.msgs == 0 { 0 } else { s.first_time_ns }),
            last_seq: s.last_seq,
            last_ts: time(s.last_time_ns),
            num_subjects: s.num_subjects,
            subjects,
            num_deleted: s.num_deleted,
            deleted: Vec::new(),
            consumer_count,
        },
        ts: Timestamp::from_unix_nanos(unix_now_ns()),
        ..StreamInfo::default()
    }
}

/// A consumer's info.
pub(crate) fn consumer_info(consumer: &ConsumerShared) -> ConsumerInfo {
    let inner = consumer.inner.lock();
    let num_pending = inner.num_pending(consumer);
    let delivered = inner.machine.delivered();
    let floor = inner.machine.ack_floor();
    let last_active =
        (inner.last_delivery_unix_ns > 0).then(|| Timestamp::from_unix_nanos(inner.last_delivery_unix_ns));
    ConsumerInfo {
        stream_name: consumer.stream.name.clone(),
        name: consumer.name.clone(),
        created: Timestamp::from_unix_nanos(consumer.created_ns),
        config: inner.config.clone(),
        delivered: SequenceInfo {
            consumer_seq: delivered.consumer_seq,
            stream_seq: delivered.stream_seq,
            last_active,
        },
        ack_floor: SequenceInfo {
            consumer_seq: floor.consumer_seq,
            stream_seq: floor.stream_seq,
            last_active: None,
        },
        num_ack_pending: inner.machine.ack_pending(),
        num_redelivered: inner.machine.redelivered(),
        num_waiting: inner.waiting.len() as u64,
        num_pending,
        push_bound: inner.push_bound,
        ts: Timestamp::from_unix_nanos(unix_now_ns()),
        ..ConsumerInfo::default()
    }
}
