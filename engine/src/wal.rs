//! The write-ahead log format (DESIGN.md "Storage"), as pure functions over bytes.
//!
//! File: a 16-byte header — magic `TAUWAL\r\n`, format version (u32 LE), flags (u32 LE;
//! bit 0: records are encrypted) — then records:
//!
//! ```text
//! [len u32 LE][crc32 u32 LE][payload: len bytes]
//! payload = zstd(commit unit)                        without a key
//!         = nonce(12) || AES-256-GCM(zstd(commit unit))   with a key (fresh nonce per record)
//! ```
//!
//! The CRC covers the payload exactly as it is on disk, so damage is found before any
//! decryption or decompression is tried. [`scan`] classifies the end of a log:
//! - a clean end;
//! - a *torn tail*: the last record is short, fails its checksum, or is zero fill, and no
//!   intact record follows it. It was never acknowledged, so recovery truncates it and
//!   logs the offset;
//! - *corruption*: a bad record followed by an intact one, a record that passes its
//!   checksum but fails to decrypt (wrong key) or decompress, a bad header or an unknown
//!   version. Recovery refuses to start and names the offset. Tau never serves wrong data.
//!
//! Limitation, stated plainly: bit rot in the very last record looks exactly like a torn
//! write and is truncated as one (and reported). Telling them apart needs redundancy that
//! the storage layer (issue 3) may add.
//!
//! Nothing here does IO; the engine asks for the bytes through effects.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};

pub const MAGIC: &[u8; 8] = b"TAUWAL\r\n";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 16;
const RECORD_HEAD: usize = 8;
const NONCE_LEN: usize = 12;
const FLAG_ENCRYPTED: u32 = 1;
/// zstd level: fast, and most of the gain for interval data.
const ZSTD_LEVEL: i32 = 3;
/// The largest payload a record may declare; anything bigger is damage, not data.
pub const RECORD_MAX: usize = 1 << 31;

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

pub fn header(encrypted: bool) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(if encrypted { FLAG_ENCRYPTED } else { 0 }).to_le_bytes());
    h
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

/// Frame one encoded commit unit as a record. `nonce` must be fresh for every record
/// written with the same key (the engine draws it from its seeded ChaCha RNG).
pub fn encode_record(plain: &[u8], key: Option<&WalKey>, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    encode_record_with(&mut Compressor::new(), plain, key, nonce)
}

/// [`encode_record`] with a reused compression context.
pub fn encode_record_with(
    z: &mut Compressor,
    plain: &[u8],
    key: Option<&WalKey>,
    nonce: [u8; NONCE_LEN],
) -> Vec<u8> {
    let compressed = z.0.compress(plain).expect("zstd compresses any input");
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
    assert!(payload.len() <= RECORD_MAX, "record too large");
    let mut out = Vec::with_capacity(RECORD_HEAD + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
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

/// An intact record at `o`: (payload length, payload).
fn intact(file: &[u8], o: usize) -> Option<&[u8]> {
    let head = file.get(o..o + RECORD_HEAD)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..].try_into().ok()?);
    if len == 0 || len > RECORD_MAX {
        return None;
    }
    let payload = file.get(o + RECORD_HEAD..(o + RECORD_HEAD).checked_add(len)?)?;
    (crc32fast::hash(payload) == crc).then_some(payload)
}

/// Read a whole log. `Ok` gives the intact records and how the log ends; `Err` means
/// corruption that must stop recovery.
pub fn scan(file: &[u8], key: Option<&WalKey>) -> Result<Scan, WalError> {
    if file.len() < HEADER_LEN {
        // A header is written and synced before any record: a short one is a torn create.
        let expect = header(key.is_some());
        let prefix_ok = file.iter().zip(expect.iter()).take(8).all(|(a, b)| a == b);
        return if prefix_ok {
            Ok(Scan {
                records: vec![],
                valid_len: 0,
                tail: Tail::Torn {
                    offset: 0,
                    bytes: file.len(),
                },
            })
        } else {
            Err(err(0, "not a Tau WAL (bad magic)"))
        };
    }
    if &file[..8] != MAGIC {
        return Err(err(0, "not a Tau WAL (bad magic)"));
    }
    let version = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(err(8, format!("unknown WAL format version {version}")));
    }
    let flags = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes"));
    if flags & !FLAG_ENCRYPTED != 0 {
        return Err(err(12, format!("unknown WAL flags {flags:#x}")));
    }
    match (flags & FLAG_ENCRYPTED != 0, key.is_some()) {
        (true, false) => return Err(err(12, "the WAL is encrypted and no key is configured")),
        (false, true) => return Err(err(12, "a key is configured but the WAL is not encrypted")),
        _ => {}
    }
    let mut records = Vec::new();
    // One decompression context for the whole scan: creating one per record costs more
    // than decompressing a small record.
    let mut unzstd = zstd::bulk::Decompressor::new().map_err(|e| err(0, format!("zstd: {e}")))?;
    let mut o = HEADER_LEN;
    while o < file.len() {
        let Some(payload) = intact(file, o) else {
            // Torn tail, unless some intact record follows (then it is corruption).
            let later = (o + 1..file.len()).find(|&q| intact(file, q).is_some());
            if let Some(q) = later {
                return Err(err(
                    o,
                    format!("corrupt record (an intact record follows at offset {q})"),
                ));
            }
            return Ok(Scan {
                records,
                valid_len: o,
                tail: Tail::Torn {
                    offset: o,
                    bytes: file.len() - o,
                },
            });
        };
        let compressed = match key {
            None => payload.to_vec(),
            Some(k) => {
                if payload.len() < NONCE_LEN {
                    return Err(err(o, "encrypted record shorter than its nonce"));
                }
                let (nonce, sealed) = payload.split_at(NONCE_LEN);
                k.0.decrypt(Nonce::from_slice(nonce), sealed)
                    .map_err(|_| err(o, "cannot decrypt record: wrong key or tampered data"))?
            }
        };
        let plain = unzstd.decompress(&compressed, RECORD_MAX).map_err(|e| {
            err(
                o,
                format!("record passes its checksum but does not decompress: {e}"),
            )
        })?;
        records.push((o, plain));
        o += RECORD_HEAD + payload.len();
    }
    Ok(Scan {
        records,
        valid_len: o,
        tail: Tail::Clean,
    })
}
