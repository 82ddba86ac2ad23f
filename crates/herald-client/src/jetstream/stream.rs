//! Stream management and stored-message access.

use bytes::Bytes;
use herald_protocol::jetstream::api::{
    DeleteResponse, MsgDeleteRequest, MsgGetRequest, MsgGetResponse, StoredMsg, StreamInfoResponse,
    StreamListResponse, StreamNamesRequest, StreamNamesResponse, StreamPurgeRequest, StreamPurgeResponse,
};
use herald_protocol::jetstream::headers as js_headers;
use herald_protocol::jetstream::{StreamConfig, StreamInfo, Timestamp};
use herald_protocol::Headers;

use super::{check_name, JetStream};
use crate::{Error, Message, Result};

/// A message stored in a stream, as read back by [`JetStream::get_message`],
/// [`JetStream::get_last_message`] or a direct get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMessage {
    /// Subject it was published to.
    pub subject: String,
    /// Stream sequence.
    pub sequence: u64,
    /// Its headers, if it has any (a direct get adds `Nats-Stream`,
    /// `Nats-Subject`, `Nats-Sequence` and `Nats-Time-Stamp`).
    pub headers: Option<Headers>,
    /// The payload.
    pub payload: Bytes,
    /// When it was stored.
    pub time: Timestamp,
}

impl StreamMessage {
    /// From the `message` of a `STREAM.MSG.GET` reply.
    pub fn from_stored(stored: StoredMsg) -> Result<StreamMessage> {
        let headers = stored
            .headers()
            .map_err(|e| Error::InvalidResponse(format!("stored message headers: {e}")))?;
        Ok(StreamMessage {
            subject: stored.subject,
            sequence: stored.seq,
            headers,
            payload: Bytes::from(stored.data),
            time: stored.time,
        })
    }

    /// From the reply to a `DIRECT.GET` request: `None` for `404 Message
    /// Not Found`, [`Error::JetStreamStatus`] for another status.
    pub fn from_direct(message: Message) -> Result<Option<StreamMessage>> {
        match message.status {
            None => {}
            Some(404) => return Ok(None),
            Some(code) => {
                let description = message.headers.and_then(|h| h.description).unwrap_or_default();
                return Err(Error::JetStreamStatus { code, description });
            }
        }
        let headers = message
            .headers
            .ok_or_else(|| Error::InvalidResponse("direct get reply without headers".into()))?;
        let missing = |name: &str| Error::InvalidResponse(format!("direct get reply without {name}"));
        let subject = headers
            .get(js_headers::SUBJECT)
            .ok_or_else(|| missing(js_headers::SUBJECT))?
            .to_string();
        let sequence = headers
            .get(js_headers::SEQUENCE)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| missing(js_headers::SEQUENCE))?;
        let time = headers
            .get(js_headers::TIME_STAMP)
            .and_then(|t| Timestamp::parse_rfc3339(t).ok())
            .unwrap_or_default();
        Ok(Some(StreamMessage {
            subject,
            sequence,
            headers: Some(headers),
            payload: message.payload,
            time,
        }))
    }

    /// The wire form of `STREAM.MSG.GET` (headers re-encoded).
    pub fn to_stored(&self) -> StoredMsg {
        StoredMsg {
            subject: self.subject.clone(),
            seq: self.sequence,
            hdrs: self
                .headers
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(Headers::to_bytes)
                .unwrap_or_default(),
            data: self.payload.to_vec(),
            time: self.time,
        }
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.as_ref().and_then(|h| h.get(name))
    }
}

impl JetStream {
    /// Creates a stream (`STREAM.CREATE`). Creating a stream that exists
    /// with the same configuration succeeds; with another configuration it
    /// is error 10058.
    pub async fn create_stream(&self, config: StreamConfig) -> Result<StreamInfo> {
        check_name("stream", &config.name)?;
        let api = format!("STREAM.CREATE.{}", config.name);
        let response: StreamInfoResponse = self.request(&api, &config).await?;
        Ok(response.info)
    }

    /// Changes a stream's configuration (`STREAM.UPDATE`).
    pub async fn update_stream(&self, config: StreamConfig) -> Result<StreamInfo> {
        check_name("stream", &config.name)?;
        let api = format!("STREAM.UPDATE.{}", config.name);
        let response: StreamInfoResponse = self.request(&api, &config).await?;
        Ok(response.info)
    }

    /// A stream's configuration and state (`STREAM.INFO`).
    pub async fn stream_info(&self, name: &str) -> Result<StreamInfo> {
        check_name("stream", name)?;
        let response: StreamInfoResponse = self.request_bytes(&format!("STREAM.INFO.{name}"), b"").await?;
        Ok(response.info)
    }

    /// The names of all streams (`STREAM.NAMES`, every page).
    pub async fn stream_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let request = StreamNamesRequest {
                offset: names.len() as u64,
                ..Default::default()
            };
            let page: StreamNamesResponse = self.request("STREAM.NAMES", &request).await?;
            let done = page.streams.is_empty();
            names.extend(page.streams);
            if done || names.len() as u64 >= page.paged.total {
                return Ok(names);
            }
        }
    }

    /// The information of all streams (`STREAM.LIST`, every page).
    pub async fn streams(&self) -> Result<Vec<StreamInfo>> {
        let mut streams = Vec::new();
        let mut offset = 0u64;
        loop {
            let request = StreamNamesRequest {
                offset,
                ..Default::default()
            };
            let page: StreamListResponse = self.request("STREAM.LIST", &request).await?;
            let got = (page.streams.len() + page.missing.len()) as u64;
            offset += got;
            streams.extend(page.streams);
            if got == 0 || offset >= page.paged.total {
                return Ok(streams);
            }
        }
    }

    /// Deletes a stream and its messages (`STREAM.DELETE`).
    pub async fn delete_stream(&self, name: &str) -> Result<()> {
        check_name("stream", name)?;
        let response: DeleteResponse = self.request_bytes(&format!("STREAM.DELETE.{name}"), b"").await?;
        success(response.success, "stream delete")
    }

    /// Removes messages (`STREAM.PURGE`): all with the default request, or
    /// those matching `filter`, below `seq`, or all but the newest `keep`.
    /// Returns how many were removed.
    pub async fn purge_stream(&self, name: &str, request: StreamPurgeRequest) -> Result<u64> {
        check_name("stream", name)?;
        let response: StreamPurgeResponse = self.request(&format!("STREAM.PURGE.{name}"), &request).await?;
        success(response.success, "stream purge")?;
        Ok(response.purged)
    }

    /// The message with sequence `seq` (`STREAM.MSG.GET`); a missing one is
    /// [`Error::is_no_message_found`].
    pub async fn get_message(&self, stream: &str, seq: u64) -> Result<StreamMessage> {
        self.msg_get(
            stream,
            MsgGetRequest {
                seq,
                ..Default::default()
            },
        )
        .await
    }

    /// The last message stored on `subject` (`STREAM.MSG.GET` with
    /// `last_by_subj`).
    pub async fn get_last_message(&self, stream: &str, subject: &str) -> Result<StreamMessage> {
        self.msg_get(
            stream,
            MsgGetRequest {
                last_by_subj: subject.to_string(),
                ..Default::default()
            },
        )
        .await
    }

    async fn msg_get(&self, stream: &str, request: MsgGetRequest) -> Result<StreamMessage> {
        check_name("stream", stream)?;
        let response: MsgGetResponse = self
            .request(&format!("STREAM.MSG.GET.{stream}"), &request)
            .await?;
        StreamMessage::from_stored(response.message)
    }

    /// The last message on `subject` by direct get
    /// (`DIRECT.GET.<stream>.<subject>`); `None` if there is none. Only
    /// streams with `allow_direct` answer: for others (and missing streams)
    /// it is [`Error::NoResponders`].
    pub async fn direct_get_last(&self, stream: &str, subject: &str) -> Result<Option<StreamMessage>> {
        check_name("stream", stream)?;
        let subject = self.api_subject(&format!("DIRECT.GET.{stream}.{subject}"));
        let reply = self
            .client
            .request_with_timeout(&subject, b"", self.timeout())
            .await?;
        StreamMessage::from_direct(reply)
    }

    /// Deletes (and erases) the message with sequence `seq`
    /// (`STREAM.MSG.DELETE`).
    pub async fn delete_message(&self, stream: &str, seq: u64) -> Result<()> {
        check_name("stream", stream)?;
        let request = MsgDeleteRequest { seq, no_erase: false };
        let response: DeleteResponse = self
            .request(&format!("STREAM.MSG.DELETE.{stream}"), &request)
            .await?;
        success(response.success, "message delete")
    }
}

pub(crate) fn success(success: bool, what: &str) -> Result<()> {
    if success {
        Ok(())
    } else {
        Err(Error::InvalidResponse(format!("{what} reply without success")))
    }
}
