//! CPU-heavy pure work that a driver may run off the event loop: password hashing and
//! verification (Argon2id), compaction, large queries over an immutable snapshot, and
//! CSV parsing for COPY. A job is plain data; [`run_job`] is a pure function of it, so
//! the simulator can run jobs in whatever order its scheduler picks and still replay.

use crate::ast::Statement;
use crate::catalog::{Database, Res};
use crate::copy;
use crate::layer::{Compacted, Run, Segs};
use crate::sweep;
use crate::value::Type;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;

/// Argon2id cost. Production uses OWASP's recommendation; tests and the simulator use
/// the minimum so that thousands of AUTHs stay cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

impl Argon2Params {
    pub const PRODUCTION: Argon2Params = Argon2Params {
        m_kib: 19 * 1024,
        t: 2,
        p: 1,
    };
    pub const TEST: Argon2Params = Argon2Params {
        m_kib: 8,
        t: 1,
        p: 1,
    };
}

pub enum Job {
    /// Verify `password` against `phc`; `None` (unknown user) burns the same time and
    /// fails, so a failed AUTH does not reveal whether the user exists.
    Verify {
        phc: Option<String>,
        password: String,
        params: Argon2Params,
    },
    Hash {
        password: String,
        salt: [u8; 16],
        params: Argon2Params,
    },
    Compact {
        runs: Vec<Run>,
    },
    Query {
        db: Arc<Database>,
        stmt: Statement,
    },
    ParseCsv {
        data: Vec<u8>,
        /// The path as the statement wrote it, for error messages.
        path: String,
        lens: String,
        ty: Type,
    },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print passwords.
        match self {
            Job::Verify { .. } => f.write_str("Job::Verify"),
            Job::Hash { .. } => f.write_str("Job::Hash"),
            Job::Compact { runs } => write!(f, "Job::Compact({} runs)", runs.len()),
            Job::Query { stmt, .. } => write!(f, "Job::Query({stmt})"),
            Job::ParseCsv { data, .. } => write!(f, "Job::ParseCsv({} bytes)", data.len()),
        }
    }
}

#[derive(Debug)]
pub enum JobOutput {
    Verified(bool),
    Hashed(Res<String>),
    Compacted(Arc<Compacted>),
    /// A complete reply line (without newline).
    Reply(String),
    Csv(Res<Option<Segs>>),
}

pub fn hash_password(password: &str, salt: [u8; 16], p: Argon2Params) -> Res<String> {
    let params =
        Params::new(p.m_kib, p.t, p.p, None).map_err(|e| format!("argon2 parameters: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("argon2: {e}"))
}

pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok(),
        Err(_) => false,
    }
}

pub fn run_job(job: Job) -> JobOutput {
    match job {
        Job::Verify {
            phc,
            password,
            params,
        } => match phc {
            Some(phc) => JobOutput::Verified(verify_password(&phc, &password)),
            None => {
                let _ = hash_password(&password, [0; 16], params);
                JobOutput::Verified(false)
            }
        },
        Job::Hash {
            password,
            salt,
            params,
        } => JobOutput::Hashed(hash_password(&password, salt, params)),
        Job::Compact { runs } => JobOutput::Compacted(Arc::new(sweep::compact(&runs))),
        Job::Query { db, stmt } => JobOutput::Reply(crate::exec::run_read(&db, &stmt)),
        Job::ParseCsv {
            data,
            path,
            lens,
            ty,
        } => JobOutput::Csv(copy::parse_csv(&data, &path, &lens, ty)),
    }
}
