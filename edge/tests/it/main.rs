//! `venue-edge` as a user runs it: the real binary, a real zenoh session on
//! loopback, real signals.

// A test's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cameras;
mod common;
mod consumer;
mod daemon;
mod delivery;
mod eval;
mod feeds;
mod inference;
mod mqtt;
mod segment;
mod synth;
mod tagging;
mod video;
