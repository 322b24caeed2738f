//! Sharing out one blob of several athletes (a pack riding side by side, skaters
//! crossing) between the tracks predicted inside it: each mask pixel goes to the
//! predicted box it lies deepest in, and each track is measured from its share.
//! The share's top and centre follow the athlete (what jumps are found from); its
//! width is cut where the shares meet, so it is marked as such for the moments
//! that read the box's shape. Boxes too close to share by place can share by
//! the colours of the athletes' suits (see [`super::suit`]).

use super::detect::{Blob, Rect};
use super::suit::{Chroma, Suit, wearer};

/// A segmentation mask as the tracker reads it.
#[derive(Debug, Clone, Copy)]
pub struct MaskView<'a> {
    /// One byte per mask pixel, row-major, non-zero is athlete.
    pub data: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// Frame pixels per mask pixel, across and down.
    pub scale: [f32; 2],
    /// The frame's colours, where the tagger has the frame (suits tell shares
    /// apart).
    pub chroma: Option<Chroma<'a>>,
}

/// One track's part of a shared blob, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub rect: Rect,
    pub centroid: [f32; 2],
    /// Area in frame pixels.
    pub area: f32,
    /// Box in mask pixels `[x0, y0, x1, y1)`.
    pub mask_box: [u32; 4],
    /// The share itself touches the frame's edge (the blob may, elsewhere).
    pub at_edge: bool,
    /// Part of its pixels in the colour of its own suit (0–1; shared by place,
    /// of its top quarter's only)...
    pub worn: f32,
    /// ... and in the colour of another's.
    pub foreign: f32,
    /// How clearly the share's top row is its own: over the pixels of that row,
    /// the least ratio of the distance (in half-sizes, squared) to the nearest
    /// other box's centre over that to this box's. Near 1 the top lies on the
    /// seam between the shares (it may be a neighbour's head); a head at the top
    /// of its own box, beside a box apart, is 2 or more. Infinite alone.
    pub top_margin: f32,
    /// Part of the pixels of the share's top quarter (by its box's height) in
    /// its own suit's colour, and in another's: a head and shoulders in its own
    /// colours is its own top wherever the seam runs.
    pub top_worn: f32,
    pub top_foreign: f32,
}

/// Whether the boxes lie far enough apart for their shares to mean anything:
/// every pair is apart by at least `min_apart` of their mean size along one axis.
/// Two athletes almost on top of each other (the moment of a crossing) are not
/// shared out; their tracks coast on their motion instead.
pub fn apart(boxes: &[Rect], min_apart: f32) -> bool {
    boxes.iter().enumerate().all(|(i, a)| {
        boxes[i + 1..].iter().all(|b| {
            let (ca, cb) = (a.center(), b.center());
            let w = 0.5 * (a.width() + b.width());
            let h = 0.5 * (a.height() + b.height());
            (ca[0] - cb[0]).abs() >= min_apart * w || (ca[1] - cb[1]).abs() >= min_apart * h
        })
    })
}

/// A pixel of a suit goes to its wearer when it lies within this (squared)
/// distance of the wearer's box centre, in half-sizes: a box's width away.
const WEARER_REACH: f32 = 4.0;

/// The mask pixels of `blob` (inside its mask box) shared out between `boxes`:
/// each pixel to the box whose centre is nearest, measured in half-sizes of that
/// box along each axis (so a pixel at the edge of a box and one at the edge of
/// its neighbour count alike). With `suits` (one per box) and the frame's
/// colours, each share counts the pixels in its own suit's colour and in
/// another's; `by_colour`, a pixel in the colour of one of the suits alone goes
/// to that box instead when it is near enough: athletes who overlap are told
/// apart by what they wear. `None` for a box that got no pixels.
pub fn share(
    mask: &MaskView<'_>,
    blob: &Blob,
    boxes: &[Rect],
    suits: &[Suit],
    by_colour: bool,
) -> Vec<Option<Share>> {
    let colour = mask
        .chroma
        .filter(|_| suits.len() == boxes.len() && suits.iter().all(Suit::known));
    #[derive(Clone, Copy)]
    struct Acc {
        x0: u32,
        y0: u32,
        x1: u32,
        y1: u32,
        n: u32,
        sx: u64,
        sy: u64,
        worn: u32,
        foreign: u32,
        top_margin: f32,
        top_n: u32,
        top_worn: u32,
        top_foreign: u32,
    }
    let mut acc: Vec<Option<Acc>> = vec![None; boxes.len()];
    let [x0, y0, x1, y1] = blob.mask_box;
    let (x1, y1) = (x1.min(mask.width as u32), y1.min(mask.height as u32));
    let [kx, ky] = mask.scale;
    let half: Vec<([f32; 2], [f32; 2])> = boxes
        .iter()
        .map(|b| {
            (
                b.center(),
                [(0.5 * b.width()).max(0.5), (0.5 * b.height()).max(0.5)],
            )
        })
        .collect();
    // A box's top quarter in mask rows.
    let quarter: Vec<u32> = boxes
        .iter()
        .map(|b| ((0.25 * b.height() / ky).round() as u32).max(1))
        .collect();
    for y in y0..y1 {
        let row = y as usize * mask.width;
        let py = (y as f32 + 0.5) * ky;
        for x in x0..x1 {
            if mask.data.get(row + x as usize).is_none_or(|&m| m == 0) {
                continue;
            }
            let px = (x as f32 + 0.5) * kx;
            let dist = |k: usize| {
                let (c, h) = half[k];
                ((px - c[0]) / h[0]).powi(2) + ((py - c[1]) / h[1]).powi(2)
            };
            let wearer_of = || {
                colour
                    .and_then(|c| c.hue(x, y, mask.scale))
                    .and_then(|hue| wearer(suits, hue))
            };
            let nearest = || (0..half.len()).min_by(|&a, &b| dist(a).total_cmp(&dist(b)));
            // Shared by place, the colour is read in the shares' top quarters
            // only (their tops), which is all it is used for there.
            let (k, worn) = if by_colour {
                let worn = wearer_of();
                let Some(k) = worn.filter(|&k| dist(k) <= WEARER_REACH).or_else(nearest) else {
                    continue;
                };
                (k, worn)
            } else {
                let Some(k) = nearest() else {
                    continue;
                };
                let in_top = acc[k].is_none_or(|a| y < a.y0 + quarter[k]);
                (k, if in_top { wearer_of() } else { None })
            };
            let margin = || {
                let own = dist(k).max(1e-6);
                (0..half.len())
                    .filter(|&o| o != k)
                    .map(|o| dist(o) / own)
                    .fold(f32::INFINITY, f32::min)
            };
            let a = acc[k].get_or_insert(Acc {
                x0: x,
                y0: y,
                x1: x,
                y1: y,
                n: 0,
                sx: 0,
                sy: 0,
                worn: 0,
                foreign: 0,
                top_margin: f32::INFINITY,
                top_n: 0,
                top_worn: 0,
                top_foreign: 0,
            });
            // Rows come top down: the first row a share gets is its top row.
            if y == a.y0 {
                a.top_margin = a.top_margin.min(margin());
            }
            a.x0 = a.x0.min(x);
            a.y0 = a.y0.min(y);
            a.x1 = a.x1.max(x);
            a.y1 = a.y1.max(y);
            a.n += 1;
            a.sx += u64::from(x);
            a.sy += u64::from(y);
            a.worn += u32::from(worn == Some(k));
            a.foreign += u32::from(worn.is_some_and(|w| w != k));
            if y < a.y0 + quarter[k] {
                a.top_n += 1;
                a.top_worn += u32::from(worn == Some(k));
                a.top_foreign += u32::from(worn.is_some_and(|w| w != k));
            }
        }
    }
    acc.into_iter()
        .map(|a| {
            let a = a?;
            let n = a.n as f32;
            Some(Share {
                rect: Rect {
                    x0: a.x0 as f32 * kx,
                    y0: a.y0 as f32 * ky,
                    x1: (a.x1 + 1) as f32 * kx,
                    y1: (a.y1 + 1) as f32 * ky,
                },
                centroid: [(a.sx as f32 / n + 0.5) * kx, (a.sy as f32 / n + 0.5) * ky],
                area: n * kx * ky,
                mask_box: [a.x0, a.y0, a.x1 + 1, a.y1 + 1],
                at_edge: a.x0 == 0
                    || a.y0 == 0
                    || a.x1 + 1 >= mask.width as u32
                    || a.y1 + 1 >= mask.height as u32,
                worn: a.worn as f32 / n,
                foreign: a.foreign as f32 / n,
                top_margin: a.top_margin,
                top_worn: a.top_worn as f32 / a.top_n.max(1) as f32,
                top_foreign: a.top_foreign as f32 / a.top_n.max(1) as f32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x0: f32, y0: f32, x1: f32, y1: f32) -> Rect {
        Rect { x0, y0, x1, y1 }
    }

    /// Two bodies side by side in one blob: each predicted box gets its own body,
    /// with its own top (the taller one's head is higher).
    #[test]
    fn two_bodies_in_one_blob_are_shared_by_their_boxes() {
        // 12×9 mask at 2 frame pixels per mask pixel: a body at columns 1..=3
        // from row 1, one at columns 7..=9 from row 3, joined by skis on row 7
        // that reach the left edge.
        let (w, h) = (12usize, 9usize);
        let mut data = vec![0u8; w * h];
        for y in 1..8 {
            for x in 1..=3 {
                data[y * w + x] = 1;
            }
        }
        for y in 3..8 {
            for x in 7..=9 {
                data[y * w + x] = 1;
            }
        }
        for x in 0..11 {
            data[7 * w + x] = 1;
        }
        let mask = MaskView {
            data: &data,
            width: w,
            height: h,
            scale: [2.0, 2.0],
            chroma: None,
        };
        let blob = Blob {
            rect: rect(0.0, 2.0, 24.0, 16.0),
            centroid: [12.0, 10.0],
            area: 100.0,
            fill: 0.5,
            mask_box: [0, 1, 12, 8],
            at_edge: true,
            weak: false,
            cut: false,
        };
        let boxes = [rect(1.0, 2.0, 9.0, 16.0), rect(13.0, 6.0, 21.0, 16.0)];
        assert!(apart(&boxes, 0.4));
        let s = share(&mask, &blob, &boxes, &[], false);
        let (a, b) = (s[0].expect("left share"), s[1].expect("right share"));
        assert_eq!(a.rect.y0, 2.0, "the left body's head");
        assert_eq!(b.rect.y0, 6.0, "the right body's head");
        assert!(a.rect.x1 <= b.rect.x0, "{a:?} {b:?}");
        assert!(a.centroid[0] < 10.0 && b.centroid[0] > 14.0);
        // The blob touches the left edge (the skis); only the left share does.
        assert!(a.at_edge && !b.at_edge);
        // Every pixel went somewhere.
        let total: f32 = s.iter().flatten().map(|s| s.area).sum();
        let pixels = data.iter().filter(|&&m| m != 0).count() as f32;
        assert_eq!(total, pixels * 4.0);
    }

    /// A share's top is trusted only when it lies clearly in its own box: a
    /// head on the seam between two boxes may be either athlete's.
    #[test]
    fn a_top_on_the_seam_between_shares_is_not_clearly_its_own() {
        let (w, h) = (16usize, 10usize);
        let mut data = vec![0u8; w * h];
        let mut body = |xs: std::ops::RangeInclusive<usize>, from: usize| {
            for y in from..10 {
                for x in xs.clone() {
                    data[y * w + x] = 1;
                }
            }
        };
        // Inside the left box, another head on the seam (rows 1..), and a body
        // inside the right box; skis join them on the bottom row.
        body(2..=3, 3);
        body(7..=8, 1);
        body(12..=13, 4);
        for x in 0..16 {
            data[9 * w + x] = 1;
        }
        let mask = MaskView {
            data: &data,
            width: w,
            height: h,
            scale: [1.0, 1.0],
            chroma: None,
        };
        let blob = Blob {
            rect: rect(0.0, 1.0, 16.0, 10.0),
            centroid: [8.0, 6.0],
            area: 60.0,
            fill: 0.5,
            mask_box: [0, 1, 16, 10],
            at_edge: true,
            weak: false,
            cut: false,
        };
        let boxes = [rect(0.0, 2.0, 6.0, 10.0), rect(10.0, 2.0, 16.0, 10.0)];
        let s = share(&mask, &blob, &boxes, &[], false);
        let (left, right) = (s[0].expect("left share"), s[1].expect("right share"));
        // The head on the seam is split between the shares and is the top of
        // both, each nearly as near the other box as its own.
        for part in [left, right] {
            assert_eq!(part.rect.y0, 1.0);
            assert!(part.top_margin < 1.5, "{part:?}");
        }
        // Without it, each top is its own body's head, deep in its box.
        for y in 1..9 {
            for x in 7..=8 {
                data[y * w + x] = 0;
            }
        }
        let mask = MaskView {
            data: &data,
            width: w,
            height: h,
            scale: [1.0, 1.0],
            chroma: None,
        };
        let s = share(&mask, &blob, &boxes, &[], false);
        let (left, right) = (s[0].expect("left share"), s[1].expect("right share"));
        assert_eq!((left.rect.y0, right.rect.y0), (3.0, 4.0));
        for part in [left, right] {
            assert!(part.top_margin > 4.0, "{part:?}");
        }
    }

    #[test]
    fn boxes_on_top_of_each_other_are_not_apart() {
        let a = rect(0.0, 0.0, 10.0, 20.0);
        assert!(!apart(&[a, rect(2.0, 1.0, 12.0, 21.0)], 0.4));
        assert!(apart(&[a, rect(5.0, 0.0, 15.0, 20.0)], 0.4));
        assert!(apart(&[a, rect(0.0, 9.0, 10.0, 29.0)], 0.4));
        assert!(apart(&[a], 0.4));
    }
}
