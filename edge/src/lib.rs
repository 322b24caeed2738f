//! `venue-edge`, the box daemon: configuration, the per-camera pipelines, the zenoh
//! uplink, health and metrics. The binary in `main.rs` is a thin CLI over this.

pub mod allocator;
pub mod ask;
pub mod camera;
pub mod cameras;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod eval;
pub mod inference;
pub mod mask_cache;
pub mod metrics;
pub mod mqtt;
pub mod segment;
pub mod sources;
pub mod spool;
pub mod stats;
pub mod strobe_query;
pub mod synth;
pub mod tag_stage;
pub mod tagging;
pub mod tail;
pub mod uplink;
pub mod video;
