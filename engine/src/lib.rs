//! Tau's engine: a pure, deterministic state machine.
//!
//! [`Engine::step`] is the only way in and the effects it returns are the only way out
//! (see ARCHITECTURE.md). This crate does no IO, reads no clock, starts no thread and
//! draws randomness only from a ChaCha RNG seeded by its caller; CI greps for it.
#![forbid(unsafe_code)]

pub mod ast;
pub mod catalog;
pub mod checkpoint;
pub mod codec;
pub mod copy;
pub mod driver;
pub mod durable;
pub mod engine;
pub mod exec;
pub mod expr;
pub mod fuzzing;
pub mod jobs;
pub mod layer;
pub mod parse;
pub mod query;
pub mod recovery;
pub mod reduce;
pub mod stats;
pub mod sweep;
pub mod timestamp;
pub mod value;
pub mod wal;

pub use engine::{Config, ConnId, Effect, Engine, Event, Token};
pub use jobs::{run_job, Argon2Params, Job, JobOutput};
pub use parse::parse;
pub use value::{Type, Value};
