//! Format negotiation: from what a V4L2 device advertises (pixel formats, frame
//! sizes, frame intervals) and what the configuration asks for, choose one mode, or
//! explain why the request cannot be met. Pure: no device needed.
//!
//! The rule, in order of importance (the first difference decides):
//! 1. **Size**: the exact requested size; otherwise the smallest advertised size that
//!    covers the request in both dimensions (downscaling later keeps detail);
//!    otherwise the largest size below it. Among sizes of the same class the one
//!    closest in area wins.
//! 2. **Rate**: the exact requested rate; otherwise the highest rate below it (never
//!    more frames than asked for, which would cost bandwidth for nothing); otherwise
//!    the lowest rate above it.
//! 3. **Format**: the earlier entry of the allowed formats (default NV12, YUYV,
//!    MJPEG). A later format therefore wins only when it gives a better size or
//!    rate: a USB webcam that does 1080p30 only as MJPEG and 1080p5 as YUYV is run as
//!    MJPEG at 30 fps.

use std::fmt;

use crate::frame::PixelFormat;

/// A V4L2 pixel format code, four ASCII bytes (`b"NV12"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const NV12: Self = Self(*b"NV12");
    pub const YUYV: Self = Self(*b"YUYV");
    pub const RGB24: Self = Self(*b"RGB3");
    pub const MJPEG: Self = Self(*b"MJPG");
    pub const H264: Self = Self(*b"H264");
    pub const HEVC: Self = Self(*b"HEVC");

    /// The frame format this code is delivered as, or `None` for formats the
    /// pipeline does not take.
    pub fn pixel_format(self) -> Option<PixelFormat> {
        Some(match self {
            Self::NV12 => PixelFormat::Nv12,
            Self::YUYV => PixelFormat::Yuyv,
            Self::RGB24 => PixelFormat::Rgb24,
            Self::MJPEG => PixelFormat::Mjpeg,
            Self::H264 => PixelFormat::H264,
            Self::HEVC => PixelFormat::H265,
            _ => return None,
        })
    }

    /// The V4L2 code for a frame format.
    pub fn from_pixel_format(format: PixelFormat) -> Self {
        match format {
            PixelFormat::Nv12 => Self::NV12,
            PixelFormat::Yuyv => Self::YUYV,
            PixelFormat::Rgb24 => Self::RGB24,
            PixelFormat::Mjpeg => Self::MJPEG,
            PixelFormat::H264 => Self::H264,
            PixelFormat::H265 => Self::HEVC,
        }
    }
}

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Drivers may put anything in these bytes: show non-printable ones as '.'.
        for b in self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Seconds per frame as a fraction (V4L2 speaks intervals, not rates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub numerator: u32,
    pub denominator: u32,
}

impl Interval {
    pub fn new(numerator: u32, denominator: u32) -> Self {
        Self {
            numerator,
            denominator,
        }
    }

    /// Frames per second; `None` for a zero interval a broken driver reported.
    pub fn fps(self) -> Option<f64> {
        (self.numerator != 0 && self.denominator != 0)
            .then(|| f64::from(self.denominator) / f64::from(self.numerator))
    }

    /// The interval of a whole frame rate.
    pub fn from_fps(fps: u32) -> Self {
        Self::new(1, fps)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fps() {
            Some(fps) if (fps - fps.round()).abs() < 0.005 => write!(f, "{fps:.0}"),
            Some(fps) => write!(f, "{fps:.2}"),
            None => write!(f, "?"),
        }
    }
}

/// Frame sizes a format offers: a list entry, or a range with steps (continuous
/// ranges are reported as stepwise with step 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRange {
    Discrete {
        width: u32,
        height: u32,
    },
    Stepwise {
        min_width: u32,
        max_width: u32,
        step_width: u32,
        min_height: u32,
        max_height: u32,
        step_height: u32,
    },
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Discrete { width, height } => write!(f, "{width}x{height}"),
            Self::Stepwise {
                min_width,
                max_width,
                step_width,
                min_height,
                max_height,
                step_height,
            } => write!(
                f,
                "{min_width}x{min_height}-{max_width}x{max_height} (step {step_width}/{step_height})"
            ),
        }
    }
}

/// Frame intervals offered at one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalRange {
    Discrete(Interval),
    /// Any interval from `min` (fastest) to `max` (slowest) in `step`s.
    Stepwise {
        min: Interval,
        max: Interval,
        step: Interval,
    },
}

impl fmt::Display for IntervalRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discrete(i) => write!(f, "{i}"),
            // max is the slowest interval: the lowest rate comes first.
            Self::Stepwise { min, max, .. } => write!(f, "{max}-{min}"),
        }
    }
}

/// One size entry and the intervals offered at it. For a stepwise size the
/// intervals are those the device reported at one size inside the range (the
/// enumerating side says which: the size fitted to a request, or the largest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeCaps {
    pub size: SizeRange,
    pub intervals: Vec<IntervalRange>,
}

/// Everything a device offers for one pixel format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatCaps {
    pub fourcc: FourCc,
    /// The driver's description ("YUYV 4:2:2").
    pub description: String,
    pub sizes: Vec<SizeCaps>,
}

/// What the configuration asks of a camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeRequest {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Allowed formats, most preferred first; never empty after validation.
    pub formats: Vec<PixelFormat>,
}

impl ModeRequest {
    /// The default preference: NV12, then YUYV, then MJPEG.
    pub const DEFAULT_FORMATS: [PixelFormat; 3] =
        [PixelFormat::Nv12, PixelFormat::Yuyv, PixelFormat::Mjpeg];
}

/// The chosen mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub format: PixelFormat,
    pub fourcc: FourCc,
    pub width: u32,
    pub height: u32,
    /// `None` when the device reports no intervals for the size: it runs at
    /// whatever rate it has.
    pub interval: Option<Interval>,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.fourcc, self.width, self.height)?;
        match self.interval {
            Some(i) => write!(f, " @ {i} fps"),
            None => write!(f, " @ device rate"),
        }
    }
}

/// Why no mode could be chosen: the camera's `failed` state, with what it offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("the request is invalid: {0}")]
    BadRequest(String),
    #[error("the camera offers none of the allowed formats ({allowed}); it offers: {offered}")]
    NoAllowedFormat { allowed: String, offered: String },
    #[error("the camera offers {format} but reports no usable frame sizes for it")]
    NoSizes { format: FourCc },
}

/// Chooses the best mode by the rule in the module documentation.
pub fn choose_mode(caps: &[FormatCaps], req: &ModeRequest) -> Result<Mode, NegotiationError> {
    if req.width == 0 || req.height == 0 || req.fps == 0 {
        return Err(NegotiationError::BadRequest(format!(
            "{}x{} at {} fps: width, height and fps must be at least 1",
            req.width, req.height, req.fps
        )));
    }
    if req.formats.is_empty() {
        return Err(NegotiationError::BadRequest(
            "no allowed formats given".into(),
        ));
    }
    let mut best: Option<(Score, Mode)> = None;
    let mut matched_format = None;
    for (rank, &format) in req.formats.iter().enumerate() {
        let fourcc = FourCc::from_pixel_format(format);
        for fc in caps.iter().filter(|c| c.fourcc == fourcc) {
            matched_format = Some(fourcc);
            for sc in &fc.sizes {
                let Some((width, height)) = fit_size(sc.size, req.width, req.height) else {
                    continue;
                };
                let interval = choose_interval(&sc.intervals, req.fps);
                let score = Score::new(width, height, interval, rank, req);
                let mode = Mode {
                    format,
                    fourcc,
                    width,
                    height,
                    interval,
                };
                if best.as_ref().is_none_or(|(s, _)| score < *s) {
                    best = Some((score, mode));
                }
            }
        }
    }
    match (best, matched_format) {
        (Some((_, mode)), _) => Ok(mode),
        (None, Some(format)) => Err(NegotiationError::NoSizes { format }),
        (None, None) => Err(NegotiationError::NoAllowedFormat {
            allowed: req
                .formats
                .iter()
                .map(|f| FourCc::from_pixel_format(*f).to_string())
                .collect::<Vec<_>>()
                .join(", "),
            offered: describe_offer(caps),
        }),
    }
}

/// A one-line summary of a device's offer, for errors and logs:
/// "MJPG 1920x1080@30,60 1280x720@30; YUYV 640x480@30".
pub fn describe_offer(caps: &[FormatCaps]) -> String {
    if caps.is_empty() {
        return "nothing (no capture formats)".into();
    }
    caps.iter()
        .map(|fc| {
            let sizes = fc
                .sizes
                .iter()
                .map(|sc| {
                    let rates = sc
                        .intervals
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",");
                    if rates.is_empty() {
                        sc.size.to_string()
                    } else {
                        format!("{}@{rates}", sc.size)
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let supported = if fc.fourcc.pixel_format().is_some() {
                ""
            } else {
                " (not supported by the pipeline)"
            };
            format!("{}{supported} {sizes}", fc.fourcc)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The size a range gives for a request: a discrete size as is; in a stepwise
/// range the requested size clamped to the range and snapped to its grid (up where
/// the grid allows, so the request stays covered). `None` for a range a broken
/// driver reported (min above max, zero sizes).
pub fn fit_size(range: SizeRange, width: u32, height: u32) -> Option<(u32, u32)> {
    match range {
        SizeRange::Discrete { width, height } => {
            (width > 0 && height > 0).then_some((width, height))
        }
        SizeRange::Stepwise {
            min_width,
            max_width,
            step_width,
            min_height,
            max_height,
            step_height,
        } => Some((
            fit_axis(width, min_width, max_width, step_width)?,
            fit_axis(height, min_height, max_height, step_height)?,
        )),
    }
}

fn fit_axis(want: u32, min: u32, max: u32, step: u32) -> Option<u32> {
    if min == 0 || min > max {
        return None;
    }
    let step = step.max(1);
    let clamped = want.clamp(min, max);
    let steps_up = (clamped - min).div_ceil(step);
    let up = min.checked_add(steps_up.checked_mul(step)?)?;
    if up <= max {
        Some(up)
    } else {
        Some(min + (clamped - min) / step * step)
    }
}

/// The interval to ask for at one size: exact rate, else the highest below, else
/// the lowest above. `None` when the device lists no usable interval.
pub fn choose_interval(offered: &[IntervalRange], fps: u32) -> Option<Interval> {
    let target = f64::from(fps);
    let candidates = offered.iter().filter_map(|r| match *r {
        IntervalRange::Discrete(i) => i.fps().map(|f| (i, f)),
        IntervalRange::Stepwise { min, max, .. } => {
            let (fast, slow) = (min.fps()?, max.fps()?);
            if target <= fast && target >= slow {
                Some((Interval::from_fps(fps), target))
            } else if target > fast {
                Some((min, fast))
            } else {
                Some((max, slow))
            }
        }
    });
    candidates
        .min_by(|a, b| rate_key(a.1, target).total_cmp(&rate_key(b.1, target)))
        .map(|(i, _)| i)
}

/// Orders rates: exact (0), then below the target by distance, then above it.
fn rate_key(rate: f64, target: f64) -> f64 {
    if (rate - target).abs() < 1e-6 {
        0.0
    } else if rate < target {
        target - rate
    } else {
        // Any rate above ranks after every rate below.
        1e9 + (rate - target)
    }
}

/// Lexicographic score of a candidate: lower is better.
#[derive(Debug, PartialEq, PartialOrd)]
struct Score {
    size_class: u8,
    rate_class: u8,
    format_rank: usize,
    area_distance: u64,
    rate_distance: f64,
}

impl Score {
    fn new(
        w: u32,
        h: u32,
        interval: Option<Interval>,
        format_rank: usize,
        req: &ModeRequest,
    ) -> Self {
        let size_class = if (w, h) == (req.width, req.height) {
            0
        } else if w >= req.width && h >= req.height {
            1
        } else {
            2
        };
        let area = u64::from(w) * u64::from(h);
        let want = u64::from(req.width) * u64::from(req.height);
        let target = f64::from(req.fps);
        let (rate_class, rate_distance) = match interval.and_then(Interval::fps) {
            Some(r) if (r - target).abs() < 1e-6 => (0, 0.0),
            Some(r) if r < target => (1, target - r),
            Some(r) => (2, r - target),
            // Unknown rate: after every known one.
            None => (3, 0.0),
        };
        Self {
            size_class,
            rate_class,
            format_rank,
            area_distance: area.abs_diff(want),
            rate_distance,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn discrete(width: u32, height: u32, fps: &[u32]) -> SizeCaps {
        SizeCaps {
            size: SizeRange::Discrete { width, height },
            intervals: fps
                .iter()
                .map(|f| IntervalRange::Discrete(Interval::from_fps(*f)))
                .collect(),
        }
    }

    fn fmt(fourcc: FourCc, sizes: Vec<SizeCaps>) -> FormatCaps {
        FormatCaps {
            fourcc,
            description: String::new(),
            sizes,
        }
    }

    fn req(width: u32, height: u32, fps: u32) -> ModeRequest {
        ModeRequest {
            width,
            height,
            fps,
            formats: ModeRequest::DEFAULT_FORMATS.to_vec(),
        }
    }

    /// A typical UVC webcam: raw YUYV is slow at large sizes, MJPEG is fast.
    fn webcam() -> Vec<FormatCaps> {
        vec![
            fmt(
                FourCc::YUYV,
                vec![
                    discrete(640, 480, &[30, 15]),
                    discrete(1280, 720, &[10, 5]),
                    discrete(1920, 1080, &[5]),
                ],
            ),
            fmt(
                FourCc::MJPEG,
                vec![
                    discrete(640, 480, &[30]),
                    discrete(1280, 720, &[60, 30]),
                    discrete(1920, 1080, &[30]),
                ],
            ),
        ]
    }

    #[test]
    fn exact_mode_in_the_preferred_format() {
        let m = choose_mode(&webcam(), &req(640, 480, 30)).unwrap();
        assert_eq!((m.format, m.width, m.height), (PixelFormat::Yuyv, 640, 480));
        assert_eq!(m.interval, Some(Interval::from_fps(30)));
    }

    #[test]
    fn a_later_format_wins_only_with_a_better_rate() {
        let m = choose_mode(&webcam(), &req(1920, 1080, 30)).unwrap();
        assert_eq!(m.format, PixelFormat::Mjpeg);
        assert_eq!(m.interval, Some(Interval::from_fps(30)));
        // Asking for 5 fps: YUYV meets it exactly and is preferred.
        let m = choose_mode(&webcam(), &req(1920, 1080, 5)).unwrap();
        assert_eq!(m.format, PixelFormat::Yuyv);
    }

    #[test]
    fn preference_order_is_the_callers() {
        let mut r = req(640, 480, 30);
        r.formats = vec![PixelFormat::Mjpeg, PixelFormat::Yuyv];
        assert_eq!(
            choose_mode(&webcam(), &r).unwrap().format,
            PixelFormat::Mjpeg
        );
    }

    #[test]
    fn nearest_larger_size_before_smaller() {
        let caps = vec![fmt(
            FourCc::NV12,
            vec![
                discrete(640, 480, &[30]),
                discrete(1920, 1080, &[30]),
                discrete(1280, 960, &[30]),
                discrete(3840, 2160, &[30]),
            ],
        )];
        let m = choose_mode(&caps, &req(1280, 720, 30)).unwrap();
        assert_eq!((m.width, m.height), (1280, 960));
        // Nothing covers the request: the largest below.
        let m = choose_mode(&caps, &req(4096, 4096, 30)).unwrap();
        assert_eq!((m.width, m.height), (3840, 2160));
    }

    #[test]
    fn rate_closest_not_above_then_lowest_above() {
        let offered = [30, 60, 15, 120].map(|f| IntervalRange::Discrete(Interval::from_fps(f)));
        assert_eq!(choose_interval(&offered, 50), Some(Interval::from_fps(30)));
        assert_eq!(choose_interval(&offered, 60), Some(Interval::from_fps(60)));
        assert_eq!(choose_interval(&offered, 10), Some(Interval::from_fps(15)));
        assert_eq!(choose_interval(&[], 30), None);
        // NTSC rates: 30000/1001 is below 30 and chosen for 30.
        let ntsc = [IntervalRange::Discrete(Interval::new(1001, 30000))];
        assert_eq!(choose_interval(&ntsc, 30), Some(Interval::new(1001, 30000)));
    }

    #[test]
    fn stepwise_intervals_take_the_request_when_inside() {
        let range = [IntervalRange::Stepwise {
            min: Interval::from_fps(60),
            max: Interval::from_fps(1),
            step: Interval::new(1, 1),
        }];
        assert_eq!(choose_interval(&range, 25), Some(Interval::from_fps(25)));
        assert_eq!(choose_interval(&range, 90), Some(Interval::from_fps(60)));
    }

    #[test]
    fn stepwise_sizes_snap_to_the_grid() {
        let range = SizeRange::Stepwise {
            min_width: 16,
            max_width: 1920,
            step_width: 16,
            min_height: 16,
            max_height: 1080,
            step_height: 8,
        };
        assert_eq!(fit_size(range, 1280, 720), Some((1280, 720)));
        // 1000 is not on the 16-grid: the next step up covers it.
        assert_eq!(fit_size(range, 1000, 1001), Some((1008, 1008)));
        // Clamped to the range.
        assert_eq!(fit_size(range, 4000, 8), Some((1920, 16)));
        // Broken ranges are ignored rather than trusted.
        let broken = SizeRange::Stepwise {
            min_width: 100,
            max_width: 50,
            step_width: 0,
            min_height: 0,
            max_height: 10,
            step_height: 1,
        };
        assert_eq!(fit_size(broken, 64, 64), None);
    }

    #[test]
    fn no_allowed_format_lists_the_offer() {
        let caps = vec![fmt(FourCc(*b"GREY"), vec![discrete(640, 480, &[30])])];
        let err = choose_mode(&caps, &req(640, 480, 30)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, NegotiationError::NoAllowedFormat { .. }));
        assert!(text.contains("NV12, YUYV, MJPG"), "{text}");
        assert!(
            text.contains("GREY (not supported by the pipeline) 640x480@30"),
            "{text}"
        );
    }

    #[test]
    fn format_without_sizes_and_bad_requests_are_errors() {
        let caps = vec![fmt(FourCc::NV12, vec![])];
        assert_eq!(
            choose_mode(&caps, &req(640, 480, 30)),
            Err(NegotiationError::NoSizes {
                format: FourCc::NV12
            })
        );
        assert!(matches!(
            choose_mode(&caps, &req(0, 480, 30)),
            Err(NegotiationError::BadRequest(_))
        ));
        let mut r = req(640, 480, 30);
        r.formats.clear();
        assert!(matches!(
            choose_mode(&caps, &r),
            Err(NegotiationError::BadRequest(_))
        ));
    }

    #[test]
    fn size_without_intervals_runs_at_device_rate() {
        let caps = vec![fmt(FourCc::NV12, vec![discrete(640, 480, &[])])];
        let m = choose_mode(&caps, &req(640, 480, 30)).unwrap();
        assert_eq!(m.interval, None);
        assert_eq!(m.to_string(), "NV12 640x480 @ device rate");
    }

    #[test]
    fn fourcc_display_masks_garbage() {
        assert_eq!(FourCc([b'N', 0, 0xff, b'2']).to_string(), "N..2");
        assert_eq!(FourCc::MJPEG.pixel_format(), Some(PixelFormat::Mjpeg));
        assert_eq!(FourCc(*b"GREY").pixel_format(), None);
    }
}
