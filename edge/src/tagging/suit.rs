//! Suit colours: the hue of an athlete's mask pixels as a small histogram per
//! track (what tells the shares of a group apart when their boxes do not), and
//! the two suits of a pack that rides as one blob (what starts its second track).
//!
//! Hue, not the full colour: where a suit meets the snow the mask's pixels are a
//! blend of the two, and blending with a grey keeps the hue. Grey pixels (skis,
//! sticks, boots, a black suit, the blended rim) carry no suit and are left to
//! the shares' geometry.

use std::f32::consts::TAU;
use std::sync::LazyLock;

use super::pixels::Pixels;
use super::share::MaskView;

/// Hue bins around the colour circle (15° each).
pub const HUES: usize = 24;
/// Least chroma (distance of U, V from grey) of a pixel that shows a suit.
const MIN_CHROMA: i32 = 16;
/// Fewest coloured pixels that say anything of a suit.
const MIN_PIXELS: u32 = 12;
/// Pixels of a hue that show a suit is there at all.
pub const SEEN_PIXELS: u32 = 4;
/// A hue bin that much of a suit (with its neighbours) is the suit's.
const WORN_WEIGHT: f32 = 0.2;
/// Weight of a new look in a track's suit.
const LEARN: f32 = 0.25;

/// The frame's pixels, read under the mask's pixels.
#[derive(Debug, Clone, Copy)]
pub struct Chroma<'a> {
    pub pixels: Pixels<'a>,
    /// The frame's size in pixels.
    pub width: usize,
    pub height: usize,
}

impl Chroma<'_> {
    /// The hue bin of the frame pixel at the centre of mask pixel (`mx`, `my`),
    /// at `scale` frame pixels per mask pixel; `None` for grey.
    #[inline]
    pub fn hue(&self, mx: u32, my: u32, scale: [f32; 2]) -> Option<u8> {
        let x = (((mx as f32 + 0.5) * scale[0]) as usize).min(self.width.checked_sub(1)?);
        let y = (((my as f32 + 0.5) * scale[1]) as usize).min(self.height.checked_sub(1)?);
        let [u, v] = self.pixels.uv_at(x, y, self.width, self.height);
        hue_of(u, v)
    }
}

/// The hue bin of chroma (`u`, `v`) about grey (each −128..127); `None` when
/// it is too grey. Read from a table made once: an `atan2` per mask pixel was
/// most of the colour work.
pub fn hue_of(u: i32, v: i32) -> Option<u8> {
    static TABLE: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let mut t = vec![GREY; 256 * 256];
        for u in -128..128 {
            for v in -128..128 {
                t[table_index(u, v)] = exact_hue(u, v).unwrap_or(GREY);
            }
        }
        t
    });
    let h = TABLE.get(table_index(u, v)).copied().unwrap_or(GREY);
    (h != GREY).then_some(h)
}

/// Marks a grey entry of the hue table.
const GREY: u8 = u8::MAX;

fn table_index(u: i32, v: i32) -> usize {
    ((u.clamp(-128, 127) + 128) as usize) << 8 | (v.clamp(-128, 127) + 128) as usize
}

fn exact_hue(u: i32, v: i32) -> Option<u8> {
    if u * u + v * v < MIN_CHROMA * MIN_CHROMA {
        return None;
    }
    let turn = (v as f32).atan2(u as f32) / TAU + 1.0;
    Some(((turn * HUES as f32) as usize % HUES) as u8)
}

/// Steps between two hue bins around the circle.
fn apart(a: usize, b: usize) -> usize {
    let d = a.abs_diff(b);
    d.min(HUES - d)
}

/// The coloured pixels of a stretch of mask, counted by hue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hues {
    pub counts: [u32; HUES],
    /// Mask pixels counted, coloured or not.
    pub pixels: u32,
}

impl Hues {
    /// The mask's pixels inside `mask_box` (`[x0, y0, x1, y1)` in mask pixels);
    /// empty without the frame's pixels.
    pub fn count(mask: &MaskView<'_>, mask_box: [u32; 4]) -> Hues {
        let mut out = Hues::default();
        let Some(chroma) = mask.chroma else {
            return out;
        };
        for_mask_pixels(mask, mask_box, |x, y| {
            out.pixels += 1;
            if let Some(h) = chroma.hue(x, y, mask.scale) {
                out.counts[h as usize] += 1;
            }
        });
        out
    }

    /// Whether a suit of `hue` shows at all (a few pixels of it or next to it):
    /// an athlete coming in behind another shows a sliver first.
    pub fn shows(&self, hue: usize) -> bool {
        let c = |i: usize| self.counts[i % HUES];
        c(hue) + c(hue + 1) + c(hue + HUES - 1) >= SEEN_PIXELS
    }

    pub fn coloured(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// Counts with each bin's neighbours at half weight: a suit whose hue lies
    /// on the border of two bins is one peak.
    fn smoothed(&self) -> [f32; HUES] {
        let c = |i: usize| self.counts[i % HUES] as f32;
        std::array::from_fn(|i| c(i) + 0.5 * (c(i + 1) + c(i + HUES - 1)))
    }
}

/// Calls `f` for every non-zero mask pixel inside `mask_box`.
fn for_mask_pixels(mask: &MaskView<'_>, mask_box: [u32; 4], mut f: impl FnMut(u32, u32)) {
    let [x0, y0, x1, y1] = mask_box;
    let (x1, y1) = (x1.min(mask.width as u32), y1.min(mask.height as u32));
    for y in y0..y1 {
        let row = y as usize * mask.width;
        for x in x0..x1 {
            if mask.data.get(row + x as usize).is_some_and(|&m| m != 0) {
                f(x, y);
            }
        }
    }
}

/// A track's suit: the share of its coloured pixels in each hue bin, learnt
/// from the blobs it had to itself. All zero until it has been seen in colour.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Suit {
    share: [f32; HUES],
    known: bool,
}

impl Suit {
    /// The suit of these pixels, when enough of them are coloured.
    pub fn of(hues: &Hues) -> Option<Suit> {
        let n = hues.coloured();
        (n >= MIN_PIXELS).then(|| Suit {
            share: std::array::from_fn(|i| hues.counts[i] as f32 / n as f32),
            known: true,
        })
    }

    pub fn known(&self) -> bool {
        self.known
    }

    /// Takes in a new look at the athlete (ignored when too few pixels are
    /// coloured to say anything).
    pub fn learn(&mut self, hues: &Hues) {
        let Some(new) = Suit::of(hues) else { return };
        if !self.known {
            *self = new;
            return;
        }
        for (s, n) in self.share.iter_mut().zip(new.share) {
            *s += LEARN * (n - *s);
        }
    }

    /// How much of the suit lies at `hue` or next to it (0 to 1.5).
    pub fn weight(&self, hue: u8) -> f32 {
        let h = hue as usize % HUES;
        self.share[h] + 0.5 * (self.share[(h + 1) % HUES] + self.share[(h + HUES - 1) % HUES])
    }

    /// How many of `hues`' pixels wear this suit: those in hues that are at
    /// least a fifth of it (with their neighbours); 0 when it is unknown.
    pub fn worn_in(&self, hues: &Hues) -> u32 {
        if !self.known {
            return 0;
        }
        (0..HUES)
            .filter(|&h| self.weight(h as u8) >= WORN_WEIGHT)
            .map(|h| hues.counts[h])
            .sum()
    }

    /// Whether `hues` are plainly someone else's: a clear suit in them, unlike
    /// this one, and next to none of this one's colours. False while this suit
    /// is unknown.
    pub fn not_in(&self, hues: &Hues) -> bool {
        self.known
            && hues.coloured() >= 2 * MIN_PIXELS
            && self.worn_in(hues) < SEEN_PIXELS
            && Suit::of(hues).is_some_and(|s| self.alike(&s) <= DISTINCT)
    }

    /// How alike two suits are: the colour the two have in common (histogram
    /// intersection, 0 to 1); 1 when either is unknown.
    pub fn alike(&self, o: &Suit) -> f32 {
        if !(self.known && o.known) {
            return 1.0;
        }
        self.share.iter().zip(o.share).map(|(a, b)| a.min(b)).sum()
    }
}

/// Suits alike up to this share are told apart.
pub const DISTINCT: f32 = 0.3;

/// Which of `suits` a pixel of `hue` wears: the one it is a large part of, at
/// least `OWN_RATIO` times more than of any other; `None` when it is not clear.
pub fn wearer(suits: &[Suit], hue: u8) -> Option<usize> {
    const OWN_MIN: f32 = 0.1;
    const OWN_RATIO: f32 = 3.0;
    let mut best = None;
    let mut second = 0.0f32;
    let mut top = 0.0f32;
    for (k, s) in suits.iter().enumerate() {
        let w = s.weight(hue);
        if w > top {
            second = top;
            top = w;
            best = Some(k);
        } else {
            second = second.max(w);
        }
    }
    best.filter(|_| top >= OWN_MIN && top >= OWN_RATIO * second)
}

/// Two athletes in one blob, told apart by their suits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pack {
    /// The larger suit first.
    pub suits: [Suit; 2],
    /// Where each suit's pixels lie, in mask pixels `[x0, y0, x1, y1)`.
    pub boxes: [[u32; 4]; 2],
    /// The hue bin at each suit's peak.
    pub peaks: [u8; 2],
}

impl Pack {
    /// Whether `o` shows the same two suits (each peak within a bin).
    pub fn same_as(&self, o: &Pack) -> bool {
        let close = |a: u8, b: u8| apart(a as usize, b as usize) <= 1;
        (close(self.peaks[0], o.peaks[0]) && close(self.peaks[1], o.peaks[1]))
            || (close(self.peaks[0], o.peaks[1]) && close(self.peaks[1], o.peaks[0]))
    }
}

/// Least share of a blob's coloured pixels each suit of a pack holds.
const PACK_SHARE: f32 = 0.2;
/// Least share of a blob's pixels that are coloured to look for two suits.
const PACK_COLOURED: f32 = 0.3;
/// Least height of each suit's pixels, in the blob's height: a helmet in
/// another colour is no second athlete.
const PACK_TALL: f32 = 0.5;
/// Least distance between the two suits' centres across, in their mean width:
/// two athletes side by side, not one in a two-coloured suit.
const PACK_APART: f32 = 0.25;
/// Fewest bins between the two suits' peaks (45°).
const PACK_HUES_APART: usize = 3;

/// Two suits in the blob inside `mask_box` (whose `hues` are counted): two hue
/// peaks far apart around the circle, each a fair part of the coloured pixels,
/// each about as tall as the blob, side by side. `None` without the frame's
/// pixels or when the blob shows one suit.
pub fn two_suits(mask: &MaskView<'_>, mask_box: [u32; 4], hues: &Hues) -> Option<Pack> {
    let n = hues.coloured();
    if n < 2 * MIN_PIXELS || (n as f32) < PACK_COLOURED * hues.pixels as f32 {
        return None;
    }
    let sm = hues.smoothed();
    let peak = |skip: Option<usize>| {
        (0..HUES)
            .filter(|&i| skip.is_none_or(|p| apart(i, p) >= PACK_HUES_APART))
            .max_by(|&a, &b| sm[a].total_cmp(&sm[b]))
    };
    let p0 = peak(None)?;
    let p1 = peak(Some(p0))?;
    // Each bin to the nearer peak, within two bins of it.
    let side = |h: usize| -> Option<usize> {
        let (d0, d1) = (apart(h, p0), apart(h, p1));
        if d0 <= 2 && d0 <= d1 {
            Some(0)
        } else if d1 <= 2 {
            Some(1)
        } else {
            None
        }
    };
    #[derive(Clone, Copy)]
    struct Acc {
        counts: [u32; HUES],
        n: u32,
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
        sx: u64,
    }
    let mut acc = [Acc {
        counts: [0; HUES],
        n: 0,
        x0: u32::MAX,
        y0: u32::MAX,
        x1: 0,
        y1: 0,
        sx: 0,
    }; 2];
    let chroma = mask.chroma?;
    for_mask_pixels(mask, mask_box, |x, y| {
        let Some(h) = chroma.hue(x, y, mask.scale) else {
            return;
        };
        let Some(k) = side(h as usize) else { return };
        let a = &mut acc[k];
        a.counts[h as usize] += 1;
        a.n += 1;
        a.x0 = a.x0.min(x);
        a.y0 = a.y0.min(y);
        a.x1 = a.x1.max(x + 1);
        a.y1 = a.y1.max(y + 1);
        a.sx += u64::from(x);
    });
    let blob_h = mask_box[3].saturating_sub(mask_box[1]) as f32;
    let fair = |a: &Acc| {
        a.n >= MIN_PIXELS
            && a.n as f32 >= PACK_SHARE * n as f32
            && (a.y1 - a.y0) as f32 >= PACK_TALL * blob_h
    };
    if !(fair(&acc[0]) && fair(&acc[1])) {
        return None;
    }
    let cx = |a: &Acc| a.sx as f32 / a.n as f32;
    let mean_w = 0.5 * ((acc[0].x1 - acc[0].x0) + (acc[1].x1 - acc[1].x0)) as f32;
    if (cx(&acc[0]) - cx(&acc[1])).abs() < PACK_APART * mean_w {
        return None;
    }
    let suit = |a: &Acc| {
        Suit::of(&Hues {
            counts: a.counts,
            pixels: a.n,
        })
    };
    let (big, small) = if acc[0].n >= acc[1].n { (0, 1) } else { (1, 0) };
    let peaks = [p0 as u8, p1 as u8];
    Some(Pack {
        suits: [suit(&acc[big])?, suit(&acc[small])?],
        boxes: [
            [acc[big].x0, acc[big].y0, acc[big].x1, acc[big].y1],
            [acc[small].x0, acc[small].y0, acc[small].x1, acc[small].y1],
        ],
        peaks: [peaks[big], peaks[small]],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed RGB of `w`×`h` with each pixel's colour from `f`.
    fn rgb(w: usize, h: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> Vec<u8> {
        let mut out = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                out.extend_from_slice(&f(x, y));
            }
        }
        out
    }

    const RED: [u8; 3] = [200, 30, 30];
    const BLUE: [u8; 3] = [30, 60, 200];
    const WHITE: [u8; 3] = [240, 240, 240];
    const GREY: [u8; 3] = [60, 60, 60];

    #[test]
    fn the_hue_table_is_the_exact_hue() {
        for u in -128..128 {
            for v in -128..128 {
                assert_eq!(hue_of(u, v), exact_hue(u, v), "{u} {v}");
            }
        }
        assert_eq!(
            hue_of(500, -500),
            exact_hue(127, -128),
            "out of range is clamped"
        );
    }

    #[test]
    fn hues_tell_suits_apart_and_greys_carry_none() {
        let hue = |c: [u8; 3]| {
            let px = rgb(1, 1, |_, _| c);
            let [u, v] = Pixels::Rgb(&px).uv_at(0, 0, 1, 1);
            hue_of(u, v)
        };
        assert_eq!(hue(WHITE), None);
        assert_eq!(hue(GREY), None);
        let (r, b) = (hue(RED).expect("red"), hue(BLUE).expect("blue"));
        assert!(apart(r as usize, b as usize) >= PACK_HUES_APART, "{r} {b}");
        // A red blended half with the snow keeps its hue.
        let pink = [220, 135, 135];
        assert_eq!(hue(pink), Some(r));
    }

    /// A 12×10 mask of two bodies side by side (red at columns 2..6, blue at
    /// 6..10, rows 1..9), grey skis along row 9, and the frame at 2× the mask.
    fn pack_scene(blue_rows: std::ops::Range<usize>) -> (Vec<u8>, Vec<u8>) {
        let (w, h) = (12usize, 10usize);
        let mut mask = vec![0u8; w * h];
        let frame = rgb(2 * w, 2 * h, |x, y| {
            let (mx, my) = (x / 2, y / 2);
            if my == 9 && (1..11).contains(&mx) {
                GREY
            } else if (1..9).contains(&my) && (2..6).contains(&mx) {
                RED
            } else if blue_rows.contains(&my) && (6..10).contains(&mx) {
                BLUE
            } else {
                WHITE
            }
        });
        for y in 0..h {
            for x in 0..w {
                let i = ((2 * y) * 2 * w + 2 * x) * 3;
                if frame[i..i + 3] != WHITE {
                    mask[y * w + x] = 1;
                }
            }
        }
        (mask, frame)
    }

    fn view<'a>(mask: &'a [u8], frame: &'a [u8]) -> MaskView<'a> {
        MaskView {
            data: mask,
            width: 12,
            height: 10,
            scale: [2.0, 2.0],
            chroma: Some(Chroma {
                pixels: Pixels::Rgb(frame),
                width: 24,
                height: 20,
            }),
        }
    }

    /// Two suits in the whole 12×10 test mask.
    fn suits_in(m: &MaskView<'_>) -> Option<Pack> {
        let whole = [0, 0, 12, 10];
        two_suits(m, whole, &Hues::count(m, whole))
    }

    #[test]
    fn a_pack_of_two_suits_is_found_and_each_suit_placed() {
        let (mask, frame) = pack_scene(1..9);
        let m = view(&mask, &frame);
        let pack = suits_in(&m).expect("two suits");
        // Equal halves: whichever is first, the boxes are the two bodies.
        let mut boxes = pack.boxes;
        boxes.sort();
        assert_eq!(boxes, [[2, 1, 6, 9], [6, 1, 10, 9]]);
        assert!(pack.suits[0].alike(&pack.suits[1]) < DISTINCT);
        // Each suit's own colour is worn by it alone.
        let red = {
            let [u, v] = Pixels::Rgb(&RED).uv_at(0, 0, 1, 1);
            hue_of(u, v).expect("red")
        };
        let who = wearer(&pack.suits, red).expect("red has a wearer");
        assert_eq!(pack.boxes[who][0], 2, "red is the left body");
        assert!(suits_in(&m).is_some_and(|p| p.same_as(&pack)));
    }

    /// Shared out by place, a share's top is its own by colour when its top
    /// quarter wears its own suit; a neighbour's head that fell to it is not.
    #[test]
    fn a_share_by_place_reads_its_top_from_its_top_quarter_colours() {
        use crate::tagging::detect::{Blob, Rect};
        use crate::tagging::share::{apart, share};
        let blob = Blob {
            rect: Rect {
                x0: 2.0,
                y0: 0.0,
                x1: 22.0,
                y1: 20.0,
            },
            centroid: [12.0, 10.0],
            area: 300.0,
            fill: 0.7,
            mask_box: [0, 0, 12, 10],
            at_edge: false,
            weak: false,
            cut: false,
        };
        let suits_of = |m: &MaskView<'_>| {
            [[2, 1, 6, 9], [6, 1, 10, 9]].map(|b| Suit::of(&Hues::count(m, b)).expect("a suit"))
        };
        // Red and blue side by side, as tall; boxes on their bodies.
        let (mask, frame) = pack_scene(1..9);
        let m = view(&mask, &frame);
        let suits = suits_of(&m);
        let boxes = [
            Rect {
                x0: 4.0,
                y0: 2.0,
                x1: 12.0,
                y1: 18.0,
            },
            Rect {
                x0: 12.0,
                y0: 2.0,
                x1: 20.0,
                y1: 18.0,
            },
        ];
        assert!(apart(&boxes, 0.6));
        let parts = share(&m, &blob, &boxes, &suits, false);
        let red = parts[0].expect("red share");
        assert_eq!(red.rect.y0, 2.0);
        assert!(
            red.top_margin < 2.0,
            "the top row runs to the seam: {red:?}"
        );
        assert_eq!((red.top_worn, red.top_foreign), (1.0, 0.0));
        // Blue a row taller and the red box predicted to the right: the blue
        // head's left half falls to the red share and is its top.
        let (mask, frame) = pack_scene(0..9);
        let m = view(&mask, &frame);
        let boxes = [
            Rect {
                x0: 6.0,
                y0: 2.0,
                x1: 14.0,
                y1: 18.0,
            },
            Rect {
                x0: 16.0,
                y0: 2.0,
                x1: 24.0,
                y1: 18.0,
            },
        ];
        let red = share(&m, &blob, &boxes, &suits, false)[0].expect("red share");
        assert_eq!(red.rect.y0, 0.0, "{red:?}");
        assert!(red.top_foreign >= 0.25, "{red:?}");
    }

    #[test]
    fn a_helmet_or_a_single_suit_is_no_pack() {
        // The blue is a helmet: two rows high.
        let (mask, frame) = pack_scene(1..3);
        assert_eq!(suits_in(&view(&mask, &frame)), None);
        // One body alone.
        let (mask, frame) = pack_scene(0..0);
        assert_eq!(suits_in(&view(&mask, &frame)), None);
        // Without the frame's pixels nothing is known.
        let (mask, _) = pack_scene(1..9);
        let blind = MaskView {
            chroma: None,
            ..view(&mask, &[])
        };
        assert_eq!(suits_in(&blind), None);
        assert_eq!(Hues::count(&blind, [0, 0, 12, 10]).coloured(), 0);
    }

    #[test]
    fn a_suit_learns_slowly_and_unknown_suits_are_alike() {
        let mut a = Suit::default();
        assert!(!a.known());
        let mut reds = Hues::default();
        reds.counts[3] = 40;
        reds.pixels = 50;
        a.learn(&reds);
        assert!(a.known());
        assert_eq!(a.alike(&Suit::default()), 1.0);
        let mut blues = Hues::default();
        blues.counts[15] = 40;
        a.learn(&blues);
        // One look of another colour moves it a quarter of the way.
        assert!((a.weight(3) - 0.75).abs() < 1e-6, "{}", a.weight(3));
        assert!((a.weight(15) - 0.25).abs() < 1e-6);
        // Too few coloured pixels say nothing.
        let mut few = Hues::default();
        few.counts[15] = 3;
        let before = a;
        a.learn(&few);
        assert_eq!(a, before);
        let b = Suit::of(&blues).expect("blue suit");
        assert_eq!(wearer(&[a, b], 3), Some(0));
        assert_eq!(wearer(&[a, b], 15), Some(1));
        assert_eq!(wearer(&[a, b], 9), None, "nobody wears this hue");
    }
}
