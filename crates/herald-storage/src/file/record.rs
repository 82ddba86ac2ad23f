//! Record framing: encode and decode the checksummed records of a segment
//! file, and the segment file header. Layout: `docs/internals/storage.md`.

/// Bytes of the fixed record header: len, crc, kind, seq, time, three lengths.
pub(super) const RECORD_HEADER_BYTES: usize = 4 + 4 + 1 + 8 + 8 + 2 + 4 + 4;

/// Largest record accepted, written or read back (a length field above this
/// is corruption, so a damaged length never causes a huge allocation).
pub(super) const RECORD_BYTES_MAX: u32 = 256 << 20;

/// Bytes of the header at the start of every segment file.
pub(super) const SEGMENT_HEADER_BYTES: usize = 16;

/// Magic at the start of every segment file.
pub(super) const SEGMENT_MAGIC: [u8; 8] = *b"HRLDSEG\0";

/// Segment format version written and understood.
pub(super) const SEGMENT_VERSION: u32 = 1;

/// Highest sequence accepted from disk (records, `.idx` files, file
/// names): far beyond any real stream, and `seq + 1` never overflows.
pub(super) const SEQ_MAX: u64 = 1 << 62;

/// Payload bytes of a floor record (the last sequence).
const FLOOR_PAYLOAD_BYTES: u32 = 8;

/// Record kinds.
pub(super) const KIND_MESSAGE: u8 = 1;
pub(super) const KIND_TOMBSTONE: u8 = 2;
pub(super) const KIND_FLOOR: u8 = 3;
/// A message of an atomic batch that is not the batch's last: recovery keeps
/// it only if the batch's closing message (an ordinary message record)
/// follows, so a batch torn by a crash is dropped whole.
pub(super) const KIND_BATCH_PART: u8 = 4;

/// The segment file header: magic, version, reserved.
pub(super) fn segment_header() -> [u8; SEGMENT_HEADER_BYTES] {
    let mut h = [0u8; SEGMENT_HEADER_BYTES];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// What the first bytes of a segment file say.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HeaderCheck {
    /// Our magic and version.
    Valid,
    /// Our magic, a version this code does not know.
    UnknownVersion(u32),
    /// Not a segment header (torn, zeroed or foreign).
    Invalid,
}

pub(super) fn check_segment_header(bytes: &[u8]) -> HeaderCheck {
    if bytes.len() < SEGMENT_HEADER_BYTES || bytes[..8] != SEGMENT_MAGIC {
        return HeaderCheck::Invalid;
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version == SEGMENT_VERSION {
        HeaderCheck::Valid
    } else {
        HeaderCheck::UnknownVersion(version)
    }
}

/// A floor (state) record: every sequence below `first_seq` is gone, the
/// last sequence ever given is `last_seq`, appended at `last_time_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Floor {
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_time_ns: i64,
}

/// The fixed part of a record, as read from disk (not yet validated).
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub len: u32,
    pub crc: u32,
    pub kind: u8,
    pub seq: u64,
    pub time_ns: i64,
    pub subject_len: u16,
    pub headers_len: u32,
    pub payload_len: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl Header {
    /// Reads the header fields from the first [`RECORD_HEADER_BYTES`] bytes.
    pub fn parse(b: &[u8; RECORD_HEADER_BYTES]) -> Header {
        Header {
            len: u32_at(b, 0),
            crc: u32_at(b, 4),
            kind: b[8],
            seq: u64_at(b, 9),
            time_ns: u64_at(b, 17) as i64,
            subject_len: u16::from_le_bytes([b[25], b[26]]),
            headers_len: u32_at(b, 27),
            payload_len: u32_at(b, 31),
        }
    }

    /// Checks the framing: the length adds up, is within bounds, and the
    /// kind and its part lengths agree.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.seq > SEQ_MAX {
            return Err("sequence out of range");
        }
        let parts = self.subject_len as u64 + self.headers_len as u64 + self.payload_len as u64;
        if self.len > RECORD_BYTES_MAX {
            return Err("record length over the maximum");
        }
        if self.len as u64 != RECORD_HEADER_BYTES as u64 + parts {
            return Err("record length does not match its parts");
        }
        match self.kind {
            KIND_MESSAGE | KIND_BATCH_PART => Ok(()),
            KIND_TOMBSTONE if parts == 0 => Ok(()),
            KIND_FLOOR
                if self.subject_len == 0
                    && self.headers_len == 0
                    && self.payload_len == FLOOR_PAYLOAD_BYTES =>
            {
                Ok(())
            }
            KIND_TOMBSTONE | KIND_FLOOR => Err("bad part lengths for the record kind"),
            _ => Err("unknown record kind"),
        }
    }
}

/// A decoded record, borrowing its parts from the record bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record<'a> {
    Message {
        seq: u64,
        time_ns: i64,
        subject: &'a str,
        headers: &'a [u8],
        payload: &'a [u8],
    },
    Tombstone {
        seq: u64,
    },
    Floor(Floor),
}

/// Length of the record of a message with these parts, or `None` if it does
/// not fit the format or [`RECORD_BYTES_MAX`].
pub(super) fn message_record_len(subject_len: usize, headers_len: usize, payload_len: usize) -> Option<u32> {
    if subject_len > u16::MAX as usize || headers_len > u32::MAX as usize || payload_len > u32::MAX as usize {
        return None;
    }
    let total = RECORD_HEADER_BYTES as u64 + subject_len as u64 + headers_len as u64 + payload_len as u64;
    (total <= RECORD_BYTES_MAX as u64).then_some(total as u32)
}

/// Appends one record to `out`; returns its CRC. The caller has checked the
/// lengths with [`message_record_len`] (tombstones and floors always fit).
/// `batch_part`: a message of an unfinished atomic batch.
pub(super) fn encode(out: &mut Vec<u8>, record: &Record<'_>, batch_part: bool) -> u32 {
    match record {
        Record::Message {
            seq,
            time_ns,
            subject,
            headers,
            payload,
        } if batch_part => encode_parts(
            out,
            KIND_BATCH_PART,
            *seq,
            *time_ns,
            [subject.as_bytes(), headers, payload],
        ),
        Record::Message {
            seq,
            time_ns,
            subject,
            headers,
            payload,
        } => encode_parts(
            out,
            KIND_MESSAGE,
            *seq,
            *time_ns,
            [subject.as_bytes(), headers, payload],
        ),
        Record::Tombstone { seq } => encode_parts(out, KIND_TOMBSTONE, *seq, 0, [&[], &[], &[]]),
        Record::Floor(f) => encode_parts(
            out,
            KIND_FLOOR,
            f.first_seq,
            f.last_time_ns,
            [&[], &[], &f.last_seq.to_le_bytes()],
        ),
    }
}

fn encode_parts(out: &mut Vec<u8>, kind: u8, seq: u64, time_ns: i64, parts: [&[u8]; 3]) -> u32 {
    let [subject, headers, payload] = parts;
    let len = RECORD_HEADER_BYTES + subject.len() + headers.len() + payload.len();
    debug_assert!(len <= RECORD_BYTES_MAX as usize, "caller checks record sizes");
    let start = out.len();
    out.reserve(len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&time_ns.to_le_bytes());
    out.extend_from_slice(&(subject.len() as u16).to_le_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(subject);
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// Turns an encoded batch-part record into a plain message record in place
/// (new kind, new CRC). Returns the new CRC, `None` if it was not a part.
pub(super) fn close_batch_part(record: &mut [u8]) -> Option<u32> {
    if record.get(8) != Some(&KIND_BATCH_PART) {
        return None;
    }
    record[8] = KIND_MESSAGE;
    let crc = crc32c::crc32c(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Some(crc)
}

/// Decodes one whole record (`bytes` is exactly the record), verifying its
/// framing and checksum.
pub(super) fn decode(bytes: &[u8]) -> Result<(Header, Record<'_>), &'static str> {
    let Some(head) = bytes.first_chunk::<RECORD_HEADER_BYTES>() else {
        return Err("record shorter than its header");
    };
    let header = Header::parse(head);
    header.check()?;
    if header.len as usize != bytes.len() {
        return Err("record length does not match the bytes read");
    }
    if crc32c::crc32c(&bytes[8..]) != header.crc {
        return Err("checksum mismatch");
    }
    let body = &bytes[RECORD_HEADER_BYTES..];
    let record = match header.kind {
        KIND_MESSAGE | KIND_BATCH_PART => {
            let (subject, rest) = body.split_at(header.subject_len as usize);
            let (headers, payload) = rest.split_at(header.headers_len as usize);
            let subject = std::str::from_utf8(subject).map_err(|_| "subject is not UTF-8")?;
            Record::Message {
                seq: header.seq,
                time_ns: header.time_ns,
                subject,
                headers,
                payload,
            }
        }
        KIND_TOMBSTONE => Record::Tombstone { seq: header.seq },
        _ => {
            let last_seq = u64_at(body, 0);
            if last_seq > SEQ_MAX {
                return Err("sequence out of range");
            }
            Record::Floor(Floor {
                first_seq: header.seq,
                last_seq,
                last_time_ns: header.time_ns,
            })
        }
    };
    Ok((header, record))
}

/// Size charged against `max_bytes` for a message record of this length.
pub(super) fn stored_size_of_record(len: u32) -> u64 {
    (len as u64).saturating_sub(RECORD_HEADER_BYTES as u64) + crate::types::MESSAGE_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_kind() {
        let records = [
            Record::Message {
                seq: 7,
                time_ns: -3,
                subject: "a.b",
                headers: b"NATS/1.0\r\n\r\n",
                payload: b"hello",
            },
            Record::Tombstone { seq: 9 },
            Record::Floor(Floor {
                first_seq: 10,
                last_seq: 12,
                last_time_ns: 99,
            }),
        ];
        for record in records {
            let mut out = Vec::new();
            let crc = encode(&mut out, &record, false);
            let (header, decoded) = decode(&out).unwrap();
            assert_eq!(header.crc, crc);
            assert_eq!(header.len as usize, out.len());
            assert_eq!(decoded, record);
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &Record::Message {
                seq: 1,
                time_ns: 1,
                subject: "s",
                headers: b"",
                payload: b"xyz",
            },
            false,
        );
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn size_limits() {
        assert!(message_record_len(u16::MAX as usize + 1, 0, 0).is_none());
        assert!(message_record_len(1, 0, RECORD_BYTES_MAX as usize).is_none());
        assert_eq!(message_record_len(1, 2, 3), Some(RECORD_HEADER_BYTES as u32 + 6));
    }
}
