//! The `tau` client as a library: the wire form of replies ([`wire`]), tables
//! ([`render`]), CSV loading ([`load`]), the connection ([`conn`]) and the statement
//! runner ([`session`]). `main.rs` is the command line around them. See docs/CLIENT.md.
#![forbid(unsafe_code)]

pub mod conn;
pub mod load;
pub mod render;
pub mod session;
pub mod wire;
