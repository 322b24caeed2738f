//! `venue-edge cameras` as a technician runs it: exits 0 whether or not the box
//! has cameras, and says so plainly when it has none.

use std::path::Path;
use std::process::Command;

use venue_drivers::v4l2::NO_CAMERAS;
use venue_drivers::v4l2::listing::video_nodes;

use crate::common::BIN;

#[test]
fn cameras_lists_or_says_there_are_none() {
    let out = Command::new(BIN)
        .arg("cameras")
        .output()
        .expect("run venue-edge");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    if video_nodes(Path::new("/dev")).is_empty() {
        // CI and development machines: no video nodes at all.
        assert_eq!(stdout.lines().next(), Some(NO_CAMERAS), "{stdout}");
    } else {
        // A box with cameras: every node is either listed or explained, or was
        // left out as a non-capture node; either way the output is not empty.
        assert!(!stdout.trim().is_empty());
    }
}
