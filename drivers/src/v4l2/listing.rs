//! What `venue-edge cameras` shows: the video nodes under `/dev`, and each capture
//! device's identity and modes rendered as a table. Pure apart from reading a
//! directory, so the output is tested without a camera.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::negotiate::FormatCaps;

/// The line printed when no camera is found.
pub const NO_CAMERAS: &str = "no V4L2 cameras found";

/// One capture device as enumerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Device node (`/dev/video0`).
    pub path: PathBuf,
    /// The driver's name for the device ("HD Pro Webcam C920").
    pub card: String,
    /// Kernel driver ("uvcvideo").
    pub driver: String,
    /// Where it is connected ("usb-0000:00:14.0-1").
    pub bus: String,
    /// Capture formats with their sizes and rates. For a stepwise size range the
    /// rates are those at its largest size.
    pub formats: Vec<FormatCaps>,
}

/// A node that could not be read while listing (permissions, device busy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingProblem {
    pub path: PathBuf,
    pub reason: String,
}

/// The `videoN` nodes in `dir`, in numeric order (`video2` before `video10`).
/// Names that are not `video` followed by digits are skipped, as are unreadable
/// directory entries: listing never fails, it finds fewer nodes.
pub fn video_nodes(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name();
            let digits = name.to_str()?.strip_prefix("video")?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((digits.parse().ok()?, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

/// The table `venue-edge cameras` prints: one block per device, one line per
/// format and size with its rates; then the nodes that could not be read.
pub fn render(cameras: &[CameraInfo], problems: &[ListingProblem]) -> String {
    let mut out = String::new();
    if cameras.is_empty() {
        out.push_str(NO_CAMERAS);
        out.push('\n');
    }
    for cam in cameras {
        let _ = writeln!(
            out,
            "{}  {}  (driver {}, bus {})",
            cam.path.display(),
            cam.card,
            cam.driver,
            cam.bus
        );
        let _ = writeln!(
            out,
            "  {:<6} {:<28} {:<24} FPS",
            "FORMAT", "DESCRIPTION", "SIZE"
        );
        for fc in &cam.formats {
            let desc = if fc.fourcc.pixel_format().is_some() {
                fc.description.clone()
            } else {
                format!("{} (unsupported)", fc.description)
            };
            if fc.sizes.is_empty() {
                let _ = writeln!(
                    out,
                    "  {:<6} {:<28} {:<24} -",
                    fc.fourcc.to_string(),
                    desc,
                    "-"
                );
            }
            for sc in &fc.sizes {
                let rates = sc
                    .intervals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let rates = if rates.is_empty() {
                    "-".to_string()
                } else {
                    rates
                };
                let _ = writeln!(
                    out,
                    "  {:<6} {:<28} {:<24} {}",
                    fc.fourcc.to_string(),
                    desc,
                    sc.size.to_string(),
                    rates
                );
            }
        }
    }
    for p in problems {
        let _ = writeln!(out, "{}: not listed: {}", p.path.display(), p.reason);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v4l2::negotiate::{FourCc, Interval, IntervalRange, SizeCaps, SizeRange};

    #[test]
    fn empty_listing_says_so() {
        assert_eq!(render(&[], &[]), "no V4L2 cameras found\n");
    }

    #[test]
    fn table_shows_formats_sizes_and_rates() {
        let cam = CameraInfo {
            path: PathBuf::from("/dev/video0"),
            card: "Test Cam".into(),
            driver: "uvcvideo".into(),
            bus: "usb-1".into(),
            formats: vec![
                FormatCaps {
                    fourcc: FourCc::YUYV,
                    description: "YUYV 4:2:2".into(),
                    sizes: vec![SizeCaps {
                        size: SizeRange::Discrete {
                            width: 640,
                            height: 480,
                        },
                        intervals: vec![
                            IntervalRange::Discrete(Interval::from_fps(30)),
                            IntervalRange::Discrete(Interval::new(1001, 30000)),
                        ],
                    }],
                },
                FormatCaps {
                    fourcc: FourCc(*b"GREY"),
                    description: "8-bit Greyscale".into(),
                    sizes: vec![],
                },
            ],
        };
        let problems = [ListingProblem {
            path: PathBuf::from("/dev/video3"),
            reason: "permission denied".into(),
        }];
        let text = render(&[cam], &problems);
        assert!(
            text.starts_with("/dev/video0  Test Cam  (driver uvcvideo, bus usb-1)\n"),
            "{text}"
        );
        assert!(text.contains("YUYV   YUYV 4:2:2"), "{text}");
        assert!(
            text.contains("640x480                  30, 29.97"),
            "{text}"
        );
        assert!(
            text.contains("GREY   8-bit Greyscale (unsupported)"),
            "{text}"
        );
        assert!(
            text.ends_with("/dev/video3: not listed: permission denied\n"),
            "{text}"
        );
        assert!(!text.contains(NO_CAMERAS));
    }

    #[test]
    fn nodes_are_found_in_numeric_order() {
        let dir = std::env::temp_dir().join(format!("venue-v4l2-nodes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["video10", "video2", "video", "videoX1", "vbi0", "video0"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let found: Vec<_> = video_nodes(&dir)
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, ["video0", "video2", "video10"]);
        assert!(video_nodes(Path::new("/nonexistent-dir-for-test")).is_empty());
    }
}
