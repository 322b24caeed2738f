-- The thumbnails kept as objects, by camera and capture time: the event API
-- finds the picture of a moment with one index probe instead of listing the
-- camera's objects. Thumbnails stored before this table are found by listing.
CREATE TABLE thumbnails (
    camera_ref BIGINT NOT NULL,
    capture_ns BIGINT NOT NULL,
    PRIMARY KEY (camera_ref, capture_ns)
);
