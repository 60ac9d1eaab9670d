//! The write-ahead log format (DESIGN.md "Storage"), as pure functions over bytes.
//!
//! File (format 2, written today): a 24-byte header — magic `TAUWAL\r\n`, format version
//! (u32 LE), flags (u32 LE; bit 0: records are encrypted), the sequence number of the
//! file's first record (u64 LE) — then records:
//!
//! ```text
//! [len u32][seq u64][crc32(payload) u32][crc32(len, seq, crc) u32][payload: len bytes]
//! payload = zstd(commit unit)                        without a key
//!         = nonce(12) || AES-256-GCM(zstd(commit unit))   with a key (fresh nonce per record)
//! ```
//!
//! The top bit of `len` says the commit unit is stored as is, not as a zstd frame: a
//! single-row commit (about 60 bytes) does not compress, and decompressing a tiny frame
//! cost more than the rest of its replay.
//!
//! Format 1 (Tau 0.1: a 16-byte header without the first sequence, records
//! `[len u32][crc32 u32][payload]`) is still read, and appended to until the next
//! checkpoint starts a format-2 file.
//!
//! The CRC covers the payload exactly as it is on disk, so damage is found before any
//! decryption or decompression is tried. Records carry consecutive sequence numbers, so a
//! record cut out of the middle of a log, or repeated in it, is corruption, not silence.
//! The header's own CRC lets [`Reader`] probe every later offset for an intact record in
//! O(1) each, so telling a torn tail from corruption is linear in the tail.
//! [`Reader`] classifies the end of a log:
//! - a clean end;
//! - a *torn tail*: the last record is short, fails its checksum, or is zero fill, and no
//!   intact record follows it. It was never acknowledged, so recovery truncates it and
//!   logs the offset;
//! - *corruption*: a bad record followed by an intact one, a sequence gap or repeat, a
//!   record that passes its checksum but fails to decrypt (wrong key) or decompress, a bad
//!   header or an unknown version. Recovery refuses to start and names the offset. Tau
//!   never serves wrong data.
//!
//! Limitation, stated plainly: bit rot in the very last record looks exactly like a torn
//! write and is truncated as one (and reported); see docs/STORAGE.md.
//!
//! Memory: [`Reader`] yields one record at a time, and a record's decompressed size is
//! taken from its zstd frame header and capped at [`PLAIN_MAX`], so replaying a log needs
//! the file plus one record, not one buffer per record.
//!
//! Nothing here does IO; the engine asks for the bytes through effects.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};

pub const MAGIC: &[u8; 8] = b"TAUWAL\r\n";
/// The format written today.
pub const VERSION: u32 = 2;
/// Tau 0.1's format: still read (and appended to until the next checkpoint).
pub const VERSION_1: u32 = 1;
/// The header length of files written today.
pub const HEADER_LEN: usize = 24;
const HEADER_LEN_V1: usize = 16;
const RECORD_HEAD: usize = 20;
const RECORD_HEAD_V1: usize = 8;
const NONCE_LEN: usize = 12;
const FLAG_ENCRYPTED: u32 = 1;
/// In a format-2 record's length: the payload is the unit itself, not a zstd frame.
const RAW_BIT: u32 = 1 << 31;
/// zstd level: fast, and most of the gain for interval data.
const ZSTD_LEVEL: i32 = 3;
/// The largest payload a record may declare; anything bigger is damage, not data.
pub const RECORD_MAX: usize = (1 << 31) - 1;
/// The largest decoded commit unit the engine logs (a commit whose encoding is larger is
/// refused before it is logged), and so the largest buffer replay ever allocates for one
/// record. A frame declaring more is damage.
pub const PLAIN_MAX: usize = 1 << 30;

/// A 256-bit key for encryption at rest.
#[derive(Clone)]
pub struct WalKey(Aes256Gcm);

impl WalKey {
    pub fn new(key: &[u8; 32]) -> WalKey {
        WalKey(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key)))
    }

    /// Parse 64 hex characters (surrounding whitespace ignored), as a key file holds.
    pub fn from_hex(text: &str) -> Result<WalKey, String> {
        let t = text.trim();
        if t.len() != 64 {
            return Err(format!("a key is 64 hex characters, found {}", t.len()));
        }
        let bytes = crate::value::parse_hex(t)?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "a key is 32 bytes".to_string())?;
        Ok(WalKey::new(&key))
    }
}

impl std::fmt::Debug for WalKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalKey(..)")
    }
}

/// The header of a new log whose first record will have sequence number `first_seq`.
pub fn header(encrypted: bool, first_seq: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(if encrypted { FLAG_ENCRYPTED } else { 0 }).to_le_bytes());
    h[16..24].copy_from_slice(&first_seq.to_le_bytes());
    h
}

/// A format-1 header (Tau 0.1), for tests of the upgrade path.
pub fn header_v1(encrypted: bool) -> [u8; HEADER_LEN_V1] {
    let mut h = [0u8; HEADER_LEN_V1];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION_1.to_le_bytes());
    h[12..16].copy_from_slice(&(if encrypted { FLAG_ENCRYPTED } else { 0 }).to_le_bytes());
    h
}

/// Is `file` shorter than the header of its format (format 2 unless it says 1)?
pub fn shorter_than_header(file: &[u8]) -> bool {
    let v1 = file.get(8..12) == Some(&VERSION_1.to_le_bytes()[..]);
    file.len() < if v1 { HEADER_LEN_V1 } else { HEADER_LEN }
}

/// The header length of a file in format `version`.
pub fn header_len(version: u32) -> usize {
    if version == VERSION_1 {
        HEADER_LEN_V1
    } else {
        HEADER_LEN
    }
}

/// A reusable zstd context: creating one per record costs more than compressing a small
/// record, so the engine keeps one.
pub struct Compressor(zstd::bulk::Compressor<'static>);

impl Compressor {
    pub fn new() -> Compressor {
        Compressor(zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a valid zstd level"))
    }
}

impl Default for Compressor {
    fn default() -> Compressor {
        Compressor::new()
    }
}

/// Frame one encoded commit unit as record number `seq` of a format-2 log. `nonce` must be
/// fresh for every record written with the same key (the engine draws it from its seeded
/// ChaCha RNG).
pub fn encode_record(
    plain: &[u8],
    key: Option<&WalKey>,
    nonce: [u8; NONCE_LEN],
    seq: u64,
) -> Vec<u8> {
    encode_record_with(&mut Compressor::new(), plain, key, nonce, VERSION, seq)
        .expect("a record within the size limits")
}

/// [`encode_record`] with a reused compression context, in format `version` (a log keeps
/// the format it was created with). `Err` when the unit exceeds [`PLAIN_MAX`] or its
/// payload [`RECORD_MAX`]: such a commit must be refused, since it could not be replayed.
pub fn encode_record_with(
    z: &mut Compressor,
    plain: &[u8],
    key: Option<&WalKey>,
    nonce: [u8; NONCE_LEN],
    version: u32,
    seq: u64,
) -> Result<Vec<u8>, String> {
    if plain.len() > PLAIN_MAX {
        return Err(format!(
            "commit too large to log ({} bytes encoded, the limit is {PLAIN_MAX})",
            plain.len()
        ));
    }
    let mut compressed = z.0.compress(plain).expect("zstd compresses any input");
    // Format 2 stores a unit that does not shrink as is (flagged in the length's top bit).
    let raw = version == VERSION && compressed.len() >= plain.len();
    if raw {
        compressed = plain.to_vec();
    }
    let payload = match key {
        None => compressed,
        Some(k) => {
            let mut p = nonce.to_vec();
            let sealed =
                k.0.encrypt(Nonce::from_slice(&nonce), compressed.as_slice())
                    .expect("AES-GCM seals any input under 64 GiB");
            p.extend_from_slice(&sealed);
            p
        }
    };
    if payload.len() > RECORD_MAX {
        return Err(format!("commit too large to log ({} bytes)", payload.len()));
    }
    let crc = crc32fast::hash(&payload);
    let mut out = Vec::with_capacity(RECORD_HEAD + payload.len());
    let len = payload.len() as u32 | if raw { RAW_BIT } else { 0 };
    out.extend_from_slice(&len.to_le_bytes());
    if version == VERSION_1 {
        out.extend_from_slice(&crc.to_le_bytes());
    } else {
        assert_eq!(version, VERSION, "only known formats are written");
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        let hcrc = crc32fast::hash(&out[out.len() - 16..]);
        out.extend_from_slice(&hcrc.to_le_bytes());
    }
    out.extend_from_slice(&payload);
    assert_eq!(out.len(), record_head(version) + payload.len());
    Ok(out)
}

fn record_head(version: u32) -> usize {
    if version == VERSION_1 {
        RECORD_HEAD_V1
    } else {
        RECORD_HEAD
    }
}

/// An intact record at `o`: (payload, its sequence number (format 1 has none), whether
/// the payload is stored raw).
fn intact(file: &[u8], o: usize, version: u32) -> Option<(&[u8], Option<u64>, bool)> {
    let head = file.get(o..o.checked_add(record_head(version))?)?;
    let mut len = u32::from_le_bytes(head[..4].try_into().ok()?);
    let raw = version == VERSION && len & RAW_BIT != 0;
    len &= if version == VERSION {
        !RAW_BIT
    } else {
        u32::MAX
    };
    let len = len as usize;
    let (crc, seq) = if version == VERSION_1 {
        (u32::from_le_bytes(head[4..8].try_into().ok()?), None)
    } else {
        // The header checksum first: O(1) per probed offset.
        let hcrc = u32::from_le_bytes(head[16..20].try_into().ok()?);
        if crc32fast::hash(&head[..16]) != hcrc {
            return None;
        }
        let seq = u64::from_le_bytes(head[4..12].try_into().ok()?);
        (u32::from_le_bytes(head[12..16].try_into().ok()?), Some(seq))
    };
    if len == 0 || len > RECORD_MAX {
        return None;
    }
    let at = o + record_head(version);
    let payload = file.get(at..at.checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some((payload, seq, raw))
}

/// One intact record of a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where the record starts in the file.
    pub offset: usize,
    /// Its sequence number (format 1: its position, counted from the header's base).
    pub seq: u64,
    /// The decoded (decrypted, decompressed) commit unit.
    pub plain: Vec<u8>,
}

/// Reads a log one record at a time: [`Reader::next_record`] until `Ok(None)`, then
/// [`Reader::tail`] and [`Reader::valid_len`] say how the log ends.
pub struct Reader<'a> {
    file: &'a [u8],
    key: Option<&'a WalKey>,
    version: u32,
    /// Where the next record starts.
    at: usize,
    next_seq: u64,
    tail: Option<Tail>,
    unzstd: zstd::bulk::Decompressor<'static>,
}

impl<'a> Reader<'a> {
    /// Check the header. A file shorter than a header whose bytes match a header's start
    /// is a torn create (a header is written and synced before any record): the reader
    /// yields nothing and reports a torn tail at offset 0.
    pub fn open(file: &'a [u8], key: Option<&'a WalKey>) -> Result<Reader<'a>, WalError> {
        let unzstd = zstd::bulk::Decompressor::new().map_err(|e| err(0, format!("zstd: {e}")))?;
        let mut r = Reader {
            file,
            key,
            version: VERSION,
            at: 0,
            next_seq: 1,
            tail: None,
            unzstd,
        };
        if file.len() < 12 || &file[..8] != MAGIC {
            let prefix_ok = file.iter().zip(MAGIC.iter()).all(|(a, b)| a == b);
            if file.len() < HEADER_LEN_V1 && prefix_ok {
                r.tail = Some(Tail::Torn {
                    offset: 0,
                    bytes: file.len(),
                });
                return Ok(r);
            }
            return Err(err(0, "not a Tau WAL (bad magic)"));
        }
        let version = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes"));
        if version != VERSION && version != VERSION_1 {
            return Err(err(8, format!("unknown WAL format version {version}")));
        }
        r.version = version;
        if file.len() < header_len(version) {
            r.tail = Some(Tail::Torn {
                offset: 0,
                bytes: file.len(),
            });
            return Ok(r);
        }
        let flags = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
        if flags & !FLAG_ENCRYPTED != 0 {
            return Err(err(12, format!("unknown WAL flags {flags:#x}")));
        }
        match (flags & FLAG_ENCRYPTED != 0, key.is_some()) {
            (true, false) => return Err(err(12, "the WAL is encrypted and no key is configured")),
            (false, true) => {
                return Err(err(12, "a key is configured but the WAL is not encrypted"))
            }
            _ => {}
        }
        if version == VERSION {
            r.next_seq = u64::from_le_bytes(file[16..24].try_into().expect("8 bytes"));
        }
        r.at = header_len(version);
        Ok(r)
    }

    /// The file's format version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The sequence number the next record (read or appended) must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// How the log ends; `None` until [`Reader::next_record`] returned `Ok(None)`.
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }

    /// The length of the valid prefix: truncate the file here (meaningful once the reader
    /// has reached the end).
    pub fn valid_len(&self) -> usize {
        self.at
    }

    /// The next intact record, `Ok(None)` at the end of the log (clean or torn), or the
    /// damage that must stop recovery.
    pub fn next_record(&mut self) -> Result<Option<Record>, WalError> {
        if self.tail.is_some() {
            return Ok(None);
        }
        let (file, o) = (self.file, self.at);
        if o >= file.len() {
            assert_eq!(o, file.len(), "records never run past the end of the file");
            self.tail = Some(Tail::Clean);
            return Ok(None);
        }
        let Some((payload, seq, raw)) = intact(file, o, self.version) else {
            // Torn tail, unless some intact record follows (then it is corruption).
            let version = self.version;
            let later = (o + 1..file.len()).find(|&q| intact(file, q, version).is_some());
            if let Some(q) = later {
                return Err(err(
                    o,
                    format!("corrupt record (an intact record follows at offset {q})"),
                ));
            }
            self.tail = Some(Tail::Torn {
                offset: o,
                bytes: file.len() - o,
            });
            return Ok(None);
        };
        let seq = seq.unwrap_or(self.next_seq);
        if seq != self.next_seq {
            let what = if seq < self.next_seq {
                "repeated"
            } else {
                "missing"
            };
            return Err(err(
                o,
                format!(
                    "record sequence broken: expected record {}, found {seq} (a record is {what})",
                    self.next_seq
                ),
            ));
        }
        let compressed = match self.key {
            None => std::borrow::Cow::Borrowed(payload),
            Some(k) => {
                if payload.len() < NONCE_LEN {
                    return Err(err(o, "encrypted record shorter than its nonce"));
                }
                let (nonce, sealed) = payload.split_at(NONCE_LEN);
                std::borrow::Cow::Owned(
                    k.0.decrypt(Nonce::from_slice(nonce), sealed)
                        .map_err(|_| err(o, "cannot decrypt record: wrong key or tampered data"))?,
                )
            }
        };
        let next = o + record_head(self.version) + payload.len();
        if raw {
            if compressed.len() > PLAIN_MAX {
                return Err(err(o, "raw record over the size limit"));
            }
            self.at = next;
            self.next_seq += 1;
            return Ok(Some(Record {
                offset: o,
                seq,
                plain: compressed.into_owned(),
            }));
        }
        // Size the buffer from the frame's own declaration, within the hard cap: a damaged
        // or hostile length can neither allocate without bound nor be trusted blindly
        // (decompression fails if the frame holds more than it declared).
        let size = match zstd::zstd_safe::get_frame_content_size(&compressed) {
            Ok(Some(n)) if n <= PLAIN_MAX as u64 => n as usize,
            Ok(Some(n)) => {
                return Err(err(
                    o,
                    format!("record declares {n} decoded bytes, over the {PLAIN_MAX} limit"),
                ))
            }
            _ => {
                return Err(err(
                    o,
                    "record passes its checksum but is not a sized zstd frame",
                ))
            }
        };
        let plain = self.unzstd.decompress(&compressed, size).map_err(|e| {
            err(
                o,
                format!("record passes its checksum but does not decompress: {e}"),
            )
        })?;
        if plain.len() != size {
            return Err(err(o, "record decodes to fewer bytes than it declares"));
        }
        self.at = next;
        self.next_seq += 1;
        Ok(Some(Record {
            offset: o,
            seq,
            plain,
        }))
    }
}

/// How a log ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    Clean,
    /// Bytes from `offset` to the end are a torn (never acknowledged) write.
    Torn {
        offset: usize,
        bytes: usize,
    },
}

/// A whole log read at once (small files: layer files, the manifest, tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// (file offset, decoded plain payload) of every intact record, in order.
    pub records: Vec<(usize, Vec<u8>)>,
    /// Length of the valid prefix of the file: truncate the file here.
    pub valid_len: usize,
    pub tail: Tail,
}

/// Damage that makes recovery refuse to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalError {
    pub offset: usize,
    pub what: String,
}

impl std::fmt::Display for WalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

fn err(offset: usize, what: impl Into<String>) -> WalError {
    WalError {
        offset,
        what: what.into(),
    }
}

/// Read a whole log into memory. Recovery streams with [`Reader`] instead.
pub fn scan(file: &[u8], key: Option<&WalKey>) -> Result<Scan, WalError> {
    let mut r = Reader::open(file, key)?;
    let mut records = Vec::new();
    while let Some(rec) = r.next_record()? {
        records.push((rec.offset, rec.plain));
    }
    Ok(Scan {
        records,
        valid_len: r.valid_len(),
        tail: r.tail().expect("the reader reached the end").clone(),
    })
}
