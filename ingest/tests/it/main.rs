//! Integration tests of `venue-ingest`: real zenoh sessions, the real box daemon,
//! SQLite and a real PostgreSQL server, a zenoh router.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;
mod e2e;
mod events;
mod flood;
mod mqtt;
mod payloads;
mod s3;
mod scale;
mod truth;
