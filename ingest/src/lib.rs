//! `venue-ingest`: the reference cloud consumer of Venue Edge boxes. It subscribes
//! to the boxes' zenoh keys (and MQTT topics), validates and deduplicates every
//! record, stores it once (SQLite or PostgreSQL, objects on disk), acknowledges what
//! it stored, and serves the data over an HTTP API (`docs/api.yaml`).

pub mod api;
pub mod db;
pub mod ingest;
pub mod mqtt;
pub mod objects;
pub mod query;
pub mod service;
pub mod store;
