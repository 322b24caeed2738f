//! `venue-edge cameras`: the V4L2 cameras on this box with their formats, sizes
//! and rates, so a technician can pick a mode for the configuration. Finding no
//! camera is an answer, not an error: it prints so and exits 0.

use std::io::Write;

/// Lists the cameras into `out`.
pub fn run(out: &mut impl Write) -> anyhow::Result<()> {
    let text = listing();
    out.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(feature = "v4l2")]
fn listing() -> String {
    let (cameras, problems) = venue_drivers::v4l2::list_cameras();
    venue_drivers::v4l2::listing::render(&cameras, &problems)
}

#[cfg(not(feature = "v4l2"))]
fn listing() -> String {
    format!(
        "{}\n(this build has no V4L2 support: build venue-edge with the `v4l2` feature)\n",
        venue_drivers::v4l2::NO_CAMERAS
    )
}
