-- Venue Edge ingest schema, SQLite flavour (keep in step with postgres/0001_init.sql).
-- Every integer is 64-bit; wire u64 values above i64::MAX are rejected at decode.

CREATE TABLE cameras (
    id INTEGER PRIMARY KEY,
    venue TEXT NOT NULL,
    box TEXT NOT NULL,
    camera TEXT NOT NULL,
    first_seen_ns BIGINT NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    UNIQUE (venue, box, camera)
);

-- One row per (camera, stream kind, incarnation): the receiver's watermark.
-- next_seq: everything below is stored or declared lost.
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    camera_ref BIGINT NOT NULL REFERENCES cameras (id),
    kind BIGINT NOT NULL,
    incarnation BIGINT NOT NULL,
    next_seq BIGINT NOT NULL DEFAULT 0,
    stored BIGINT NOT NULL DEFAULT 0,
    lost BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    first_capture_ns BIGINT,
    last_capture_ns BIGINT,
    last_stored_ns BIGINT,
    UNIQUE (camera_ref, kind, incarnation)
);

CREATE TABLE frames (
    stream_ref BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    camera_ref BIGINT NOT NULL,
    capture_ns BIGINT NOT NULL,
    frame_seq BIGINT NOT NULL,
    detections BIGINT NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (stream_ref, seq)
);
CREATE INDEX frames_by_time ON frames (camera_ref, capture_ns);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    camera_ref BIGINT NOT NULL,
    event_id BIGINT NOT NULL,
    kind BIGINT NOT NULL,
    phase BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT,
    confidence DOUBLE PRECISION NOT NULL,
    tracks TEXT NOT NULL,
    updates BIGINT NOT NULL,
    incarnation BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    capture_ns BIGINT NOT NULL,
    stored_ns BIGINT NOT NULL,
    UNIQUE (camera_ref, event_id)
);
CREATE INDEX events_by_start ON events (start_ns, id);
CREATE INDEX events_by_camera ON events (camera_ref, start_ns, id);
CREATE INDEX events_by_kind ON events (kind, start_ns, id);

-- start_ns is the event's, repeated here so a track query reads one index range.
CREATE TABLE event_tracks (
    track BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    event_ref BIGINT NOT NULL,
    PRIMARY KEY (track, start_ns, event_ref)
);
CREATE INDEX event_tracks_by_event ON event_tracks (event_ref);

CREATE TABLE video_chunks (
    stream_ref BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    camera_ref BIGINT NOT NULL,
    codec BIGINT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    first_frame_seq BIGINT NOT NULL,
    starts_with_keyframe BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    object TEXT NOT NULL,
    PRIMARY KEY (stream_ref, seq)
);
CREATE INDEX video_by_time ON video_chunks (camera_ref, start_ns);

CREATE TABLE gaps (
    stream_ref BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    end_seq BIGINT NOT NULL,
    reason BIGINT NOT NULL,
    applied BIGINT NOT NULL,
    received_ns BIGINT NOT NULL,
    PRIMARY KEY (stream_ref, first_seq, end_seq)
);

-- The newest health report per camera (and per box, camera "_box").
CREATE TABLE health (
    camera_ref BIGINT PRIMARY KEY,
    incarnation BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    capture_ns BIGINT NOT NULL,
    received_ns BIGINT NOT NULL,
    payload BLOB NOT NULL
);
