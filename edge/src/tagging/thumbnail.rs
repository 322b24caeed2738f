//! Thumbnails: every N seconds per camera, a small JPEG of the frame with the
//! athlete mask tinted over it and each tracked athlete's box and id drawn, for a
//! technician or an operator to see at a glance what the camera and model see.

use venue_proto::Detection;

use super::pixels::Pixels;

/// One thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    pub capture_ns: u64,
    pub width: u32,
    pub height: u32,
    /// Baseline JPEG.
    pub jpeg: Vec<u8>,
}

/// Decides when a thumbnail is due and draws it.
#[derive(Debug)]
pub struct Thumbnailer {
    every_ns: u64,
    last_ns: Option<u64>,
    w: usize,
    h: usize,
    frame_w: u32,
    frame_h: u32,
    quality: u8,
    rgb: Vec<u8>,
}

/// 3×5 pixel digits, one row per 3 bits, top row first.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b010, 0b010, 0b010],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// A colour per track id, bright enough to read on snow and ice.
fn colour(id: u64) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 6] = [
        [255, 40, 40],
        [40, 200, 40],
        [40, 90, 255],
        [255, 160, 0],
        [200, 0, 200],
        [0, 190, 190],
    ];
    PALETTE[(id % PALETTE.len() as u64) as usize]
}

impl Thumbnailer {
    pub fn new(every_ms: u64, width: u32, quality: u8, frame_w: u32, frame_h: u32) -> Self {
        let w = width.min(frame_w).max(1) as usize;
        let h = ((u64::from(frame_h) * w as u64 / u64::from(frame_w.max(1))).max(1)) as usize;
        Self {
            every_ns: every_ms.saturating_mul(1_000_000),
            last_ns: None,
            w,
            h,
            frame_w,
            frame_h,
            quality,
            rgb: Vec::new(),
        }
    }

    /// A thumbnail of this frame if one is due (the first frame, then every
    /// interval).
    pub fn maybe(
        &mut self,
        t_ns: u64,
        px: Pixels<'_>,
        mask: &[u8],
        mw: usize,
        mh: usize,
        detections: &[Detection],
    ) -> Option<Thumbnail> {
        if self.every_ns == 0 || self.last_ns.is_some_and(|last| t_ns < last + self.every_ns) {
            return None;
        }
        self.last_ns = Some(t_ns);
        Some(self.draw(t_ns, px, mask, mw, mh, detections))
    }

    /// Draws the thumbnail: frame, tinted mask, boxes and ids.
    pub fn draw(
        &mut self,
        t_ns: u64,
        px: Pixels<'_>,
        mask: &[u8],
        mw: usize,
        mh: usize,
        detections: &[Detection],
    ) -> Thumbnail {
        let (w, h) = (self.w, self.h);
        px.sample(self.frame_w, self.frame_h, w, h, &mut self.rgb);
        for y in 0..h {
            let my = ((2 * y + 1) * mh / (2 * h)).min(mh.saturating_sub(1));
            for x in 0..w {
                let mx = ((2 * x + 1) * mw / (2 * w)).min(mw.saturating_sub(1));
                if mask.get(my * mw + mx).is_some_and(|&m| m != 0) {
                    let i = (y * w + x) * 3;
                    // Half-way to magenta: athletes stand out, their kit still shows.
                    let tint = [255u16, 0, 255];
                    for (c, t) in tint.iter().enumerate() {
                        self.rgb[i + c] = ((u16::from(self.rgb[i + c]) + t) / 2) as u8;
                    }
                }
            }
        }
        let (sx, sy) = (
            w as f32 / self.frame_w as f32,
            h as f32 / self.frame_h as f32,
        );
        for d in detections {
            let Some(id) = d.track else { continue };
            let c = colour(id);
            let x0 = (d.bbox.x as f32 * sx) as i64;
            let y0 = (d.bbox.y as f32 * sy) as i64;
            let x1 = ((d.bbox.x + d.bbox.w) as f32 * sx) as i64;
            let y1 = ((d.bbox.y + d.bbox.h) as f32 * sy) as i64;
            for x in x0..=x1 {
                self.put(x, y0, c);
                self.put(x, y1, c);
            }
            for y in y0..=y1 {
                self.put(x0, y, c);
                self.put(x1, y, c);
            }
            self.text(x0, y0 - 7, id, c);
        }
        let mut jpeg = Vec::new();
        let enc = jpeg_encoder::Encoder::new(&mut jpeg, self.quality);
        // Sizes are bounded by the config (≤ 1920 wide) and the frame: they fit u16.
        let ok = enc
            .encode(&self.rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .is_ok();
        if !ok {
            jpeg.clear();
        }
        Thumbnail {
            capture_ns: t_ns,
            width: w as u32,
            height: h as u32,
            jpeg,
        }
    }

    fn put(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        self.rgb[i..i + 3].copy_from_slice(&c);
    }

    /// Writes `n` in 3×5 digits at (`x`, `y`), on a dark backing for contrast.
    fn text(&mut self, x: i64, y: i64, n: u64, c: [u8; 3]) {
        let digits: Vec<usize> = n
            .to_string()
            .bytes()
            .map(|b| usize::from(b - b'0'))
            .collect();
        let y = y.max(0);
        for (k, &d) in digits.iter().enumerate() {
            let ox = x + 4 * k as i64;
            for (row, bits) in DIGITS[d % 10].iter().enumerate() {
                for col in 0..3 {
                    let on = bits >> (2 - col) & 1 == 1;
                    self.put(ox + col, y + row as i64, if on { c } else { [0, 0, 0] });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use venue_proto::BBox;

    #[test]
    fn due_every_interval_and_decodes_as_jpeg() {
        let (fw, fh) = (64u32, 36u32);
        let mut t = Thumbnailer::new(1000, 32, 80, fw, fh);
        let rgb = vec![220u8; (fw * fh * 3) as usize];
        let mut mask = vec![0u8; 16 * 9];
        mask[4 * 16 + 8] = 255;
        let dets = [Detection {
            class: 0,
            bbox: BBox {
                x: 20,
                y: 10,
                w: 10,
                h: 20,
            },
            score: 0.9,
            track: Some(14),
            area_px: 200,
        }];
        let first = t
            .maybe(0, Pixels::Rgb(&rgb), &mask, 16, 9, &dets)
            .expect("first frame");
        assert!(
            t.maybe(500_000_000, Pixels::Rgb(&rgb), &mask, 16, 9, &dets)
                .is_none()
        );
        assert!(
            t.maybe(1_000_000_000, Pixels::Rgb(&rgb), &mask, 16, 9, &dets)
                .is_some()
        );
        assert_eq!((first.width, first.height), (32, 18));
        let mut dec = zune_jpeg::JpegDecoder::new(&first.jpeg);
        let img = dec.decode().expect("valid JPEG");
        assert_eq!(dec.dimensions(), Some((32, 18)));
        // The tinted mask pixel is magenta-ish; the box outline is the id's colour.
        let at = |x: usize, y: usize| &img[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3];
        let m = at(16, 8);
        assert!(m[1] < 180 && m[1] < m[0] && m[1] < m[2], "{m:?}");
        let edge = at(10, 12);
        assert!(edge[0] < 200, "{edge:?}");
    }
}
