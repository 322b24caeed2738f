//! Ground truth of one synthetic frame: the athlete mask, the visible athletes with
//! their boxes and stable ids, and the key moments that happened on that frame.

/// An axis-aligned pixel rectangle: columns `x..x + width`, rows `y..y + height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelBox {
    /// Whether pixel (`px`, `py`) lies inside the box.
    pub fn contains(&self, px: u32, py: u32) -> bool {
        px >= self.x && py >= self.y && px - self.x < self.width && py - self.y < self.height
    }
}

/// One athlete as the camera sees it on one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AthleteTruth {
    /// Stable for as long as the athlete is in view; never reused by the camera.
    pub id: u32,
    /// Tight box around the athlete's visible pixels (mask 255 and this athlete).
    pub bbox: PixelBox,
    /// Visible pixels of this athlete.
    pub pixels: u32,
    /// Part of the athlete is hidden behind a nearer athlete or a snow particle.
    pub occluded: bool,
    /// In the air (between a take-off and its landing).
    pub airborne: bool,
    /// Lying on the snow after a fall.
    pub fallen: bool,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MomentKind {
    /// The athlete's first frame in view.
    Enter,
    /// The first frame on which the athlete is no longer in view (it is not listed
    /// among that frame's athletes any more).
    Exit,
    /// The first frame with the athlete in the air.
    TakeOff,
    /// The first frame with the athlete back on the snow.
    Landing,
    /// The first frame of a fall.
    Fall,
}

impl MomentKind {
    /// A stable snake_case name, for files and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enter => "enter",
            Self::Exit => "exit",
            Self::TakeOff => "take_off",
            Self::Landing => "landing",
            Self::Fall => "fall",
        }
    }
}

/// Seconds a fall's tumble takes, from the `Fall` moment until the athlete lies
/// on the snow: what shows that the athlete fell is in these frames, after the
/// moment's own.
pub const FALL_TUMBLE_S: f32 = 0.35;

/// A key moment of one athlete, labelled on the frame it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub kind: MomentKind,
    pub athlete: u32,
}

/// A snow particle drawn on the frame: a square of `size` pixels at (`x`, `y`),
/// clipped to the frame. Never part of the athlete mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speck {
    pub x: u32,
    pub y: u32,
    pub size: u32,
}

/// Everything known about one rendered frame. The camera keeps one and refills it
/// for every frame, so its buffers are reused; clone it to keep it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroundTruth {
    /// Sequence number of the frame this describes.
    pub seq: u64,
    /// Scene time of the frame, seconds since the first frame.
    pub time_s: f64,
    pub width: u32,
    pub height: u32,
    /// One byte per pixel, row-major: 255 where an athlete was drawn and is visible,
    /// 0 elsewhere.
    pub mask: Vec<u8>,
    /// Athletes with at least one visible pixel, nearest last.
    pub athletes: Vec<AthleteTruth>,
    /// Key moments on this frame.
    pub moments: Vec<Moment>,
    /// Snow particles drawn over the scene (distractors, never in the mask).
    pub specks: Vec<Speck>,
}

impl GroundTruth {
    /// Mask value at (`x`, `y`), or `None` outside the frame.
    pub fn mask_at(&self, x: u32, y: u32) -> Option<u8> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.mask
            .get(y as usize * self.width as usize + x as usize)
            .copied()
    }

    /// The athlete with this id, if visible on this frame.
    pub fn athlete(&self, id: u32) -> Option<&AthleteTruth> {
        self.athletes.iter().find(|a| a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_contains_half_open() {
        let b = PixelBox {
            x: 2,
            y: 3,
            width: 4,
            height: 1,
        };
        assert!(b.contains(2, 3) && b.contains(5, 3));
        assert!(!b.contains(6, 3) && !b.contains(2, 4) && !b.contains(1, 3));
        let t = GroundTruth {
            width: 2,
            height: 1,
            mask: vec![0, 255],
            ..GroundTruth::default()
        };
        assert_eq!(t.mask_at(1, 0), Some(255));
        assert_eq!(t.mask_at(2, 0), None);
    }
}
