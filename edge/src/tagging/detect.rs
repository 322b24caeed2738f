//! Detections from a segmentation mask: 8-connected components found by run-length
//! labelling, small fragments merged into the athlete they belong to, tiny blobs
//! (snow particles, noise) dropped, and each survivor measured (box, centroid, area,
//! mask fraction) in frame pixels.

/// An axis-aligned box in frame pixels (floating point, `x0 <= x1`, `y0 <= y1`,
/// exclusive right and bottom edges).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    pub fn width(&self) -> f32 {
        (self.x1 - self.x0).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y1 - self.y0).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    pub fn center(&self) -> [f32; 2] {
        [(self.x0 + self.x1) * 0.5, (self.y0 + self.y1) * 0.5]
    }

    /// A box of `w`×`h` centred on `c`.
    pub fn around(c: [f32; 2], w: f32, h: f32) -> Rect {
        Rect {
            x0: c[0] - w * 0.5,
            y0: c[1] - h * 0.5,
            x1: c[0] + w * 0.5,
            y1: c[1] + h * 0.5,
        }
    }

    pub fn intersection(&self, o: &Rect) -> f32 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        w * h
    }

    /// Intersection over union, 0 for disjoint or empty boxes.
    pub fn iou(&self, o: &Rect) -> f32 {
        let i = self.intersection(o);
        let u = self.area() + o.area() - i;
        if u <= 0.0 { 0.0 } else { i / u }
    }

    /// The smallest box holding both.
    pub fn union(&self, o: &Rect) -> Rect {
        Rect {
            x0: self.x0.min(o.x0),
            y0: self.y0.min(o.y0),
            x1: self.x1.max(o.x1),
            y1: self.y1.max(o.y1),
        }
    }

    /// The box clipped to `0..w` × `0..h`.
    pub fn clip(&self, w: f32, h: f32) -> Rect {
        Rect {
            x0: self.x0.clamp(0.0, w),
            y0: self.y0.clamp(0.0, h),
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
        }
    }

    /// Whole pixels `[x, y, w, h]`, rounded outwards, clipped to `w`×`h`.
    pub fn to_pixels(&self, w: u32, h: u32) -> [u32; 4] {
        let x0 = self.x0.floor().clamp(0.0, w as f32) as u32;
        let y0 = self.y0.floor().clamp(0.0, h as f32) as u32;
        let x1 = self.x1.ceil().clamp(0.0, w as f32) as u32;
        let y1 = self.y1.ceil().clamp(0.0, h as f32) as u32;
        [x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0)]
    }
}

/// One athlete candidate found in the mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Blob {
    /// Box in frame pixels.
    pub rect: Rect,
    /// Mask-weighted centre in frame pixels.
    pub centroid: [f32; 2],
    /// Area in frame pixels (mask pixels times the scale).
    pub area: f32,
    /// Share of the box covered by the mask, 0–1.
    pub fill: f32,
    /// Box in mask pixels `[x0, y0, x1, y1)`, for cut-outs.
    pub mask_box: [u32; 4],
    /// Touches the edge of the frame (partly outside the view).
    pub at_edge: bool,
    /// A sliver at the frame's edge, below the size limits: the last (or first)
    /// bit of an athlete crossing the edge, or noise. It only ever continues a
    /// confirmed track; it never starts one and is not reported on its own.
    pub weak: bool,
    /// One of the pieces a component was cut into where two bodies stand side
    /// by side (a pack on one line): its width ends at the cut, not at the
    /// athlete's side.
    pub cut: bool,
}

impl Blob {
    /// One blob of both pieces (of one athlete).
    pub fn joined(&self, o: &Blob) -> Blob {
        let area = self.area + o.area;
        let (a, b) = if area > 0.0 {
            (self.area / area, o.area / area)
        } else {
            (0.5, 0.5)
        };
        let rect = self.rect.union(&o.rect);
        let (mb, ob) = (self.mask_box, o.mask_box);
        let mask_box = [
            mb[0].min(ob[0]),
            mb[1].min(ob[1]),
            mb[2].max(ob[2]),
            mb[3].max(ob[3]),
        ];
        let box_px = ((mask_box[2] - mask_box[0]) * (mask_box[3] - mask_box[1])).max(1) as f32;
        let mask_area = self.fill * ((mb[2] - mb[0]) * (mb[3] - mb[1])) as f32
            + o.fill * ((ob[2] - ob[0]) * (ob[3] - ob[1])) as f32;
        Blob {
            rect,
            centroid: [
                a * self.centroid[0] + b * o.centroid[0],
                a * self.centroid[1] + b * o.centroid[1],
            ],
            area,
            fill: (mask_area / box_px).min(1.0),
            mask_box,
            at_edge: self.at_edge || o.at_edge,
            weak: self.weak && o.weak,
            cut: self.cut || o.cut,
        }
    }
}

/// The filter rules for blobs (see [`super::TaggingConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlobRules {
    pub min_area_px: u32,
    pub min_area_fraction: f32,
    pub min_height_px: u32,
    pub merge_gap_px: u32,
    pub merge_max_ratio: f32,
}

/// A growing component during labelling.
#[derive(Debug, Clone, Copy)]
struct Comp {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    area: u32,
    sx: u64,
    sy: u64,
    /// Which component (index among the connected components) the pixels
    /// belong to; pieces cut from one keep its id.
    id: u32,
}

impl Comp {
    fn absorb(&mut self, o: &Comp) {
        self.x0 = self.x0.min(o.x0);
        self.y0 = self.y0.min(o.y0);
        self.x1 = self.x1.max(o.x1);
        self.y1 = self.y1.max(o.y1);
        self.area += o.area;
        self.sx += o.sx;
        self.sy += o.sy;
    }

    /// Boxes, each grown by `gap`, touch.
    fn near(&self, o: &Comp, gap: u32) -> bool {
        self.x0 <= o.x1 + gap + 1
            && o.x0 <= self.x1 + gap + 1
            && self.y0 <= o.y1 + gap + 1
            && o.y0 <= self.y1 + gap + 1
    }
}

/// Finds blobs in masks; keeps its buffers between frames so steady state does not
/// allocate.
#[derive(Debug, Default)]
pub struct Detector {
    /// Runs of the previous and the current row: (x0, x1 inclusive, label).
    prev: Vec<(u32, u32, u32)>,
    cur: Vec<(u32, u32, u32)>,
    parent: Vec<u32>,
    comps: Vec<Comp>,
    roots: Vec<Comp>,
    /// Root label → index in `roots`.
    index: Vec<u32>,
    /// Column profile scratch for splitting merged athletes.
    profile: Vec<f32>,
    /// Per component id: the id of the component it was merged into (itself
    /// when it was not).
    alias: Vec<u32>,
    /// Per run (label): the id of the component it ended in.
    run_id: Vec<u32>,
    /// The runs of the component being split.
    mine: Vec<Run>,
    /// Run labels grouped by the component they ended in, in row order (one
    /// pass, instead of one scan of every run per component); `starts[i]` is
    /// where the runs of id `i` end.
    by_id: Vec<u32>,
    starts: Vec<u32>,
}

/// Least mask pixels of a sliver at the frame's edge (see [`Blob::weak`]).
const MIN_SLIVER_PX: u32 = 2;

/// Least height of each body, as a share of the component's height, for a cut.
const SPLIT_PEAK: f32 = 0.5;
/// Deepest the valley between two bodies may be, as a share of the lower body.
const SPLIT_VALLEY: f32 = 0.3;

/// The column (inclusive end of the left part) where component `c` is best cut in
/// two: mask pixels per column, smoothed over three columns, must rise to at least
/// [`SPLIT_PEAK`] of the component's height on both sides of a valley no higher than
/// [`SPLIT_VALLEY`] of the lower side. A single athlete has one body column with
/// thin skis, sticks or arms beside it, so it is never cut.
fn split_columns(runs: &[Run], c: &Comp, profile: &mut Vec<f32>) -> Option<u32> {
    let (w, h) = ((c.x1 - c.x0 + 1) as usize, (c.y1 - c.y0 + 1) as usize);
    if w < 5 || h < 6 {
        return None;
    }
    profile.clear();
    profile.resize(w, 0.0);
    for r in runs {
        for p in &mut profile[(r.x0 - c.x0) as usize..=(r.x1 - c.x0) as usize] {
            *p += 1.0;
        }
    }
    // Three-column mean, in place from a copy of the neighbours.
    let mut prev = profile[0];
    for i in 0..w {
        let cur = profile[i];
        let next = profile.get(i + 1).copied().unwrap_or(cur);
        profile[i] = (prev + cur + next) / 3.0;
        prev = cur;
    }
    let tall = SPLIT_PEAK * h as f32;
    let mut best: Option<(f32, usize)> = None;
    let mut left_max = profile[0];
    for k in 1..w - 1 {
        left_max = left_max.max(profile[k - 1]);
        if left_max < tall || profile[k] > SPLIT_VALLEY * left_max {
            continue;
        }
        let right_max = profile[k + 1..].iter().copied().fold(0.0, f32::max);
        let side = left_max.min(right_max);
        if side < tall || profile[k] > SPLIT_VALLEY * side {
            continue;
        }
        let depth = profile[k] / side;
        if best.is_none_or(|(d, _)| depth < d) {
            best = Some((depth, k));
        }
    }
    best.map(|(_, k)| c.x0 + k as u32)
}

/// The component's pixels in columns `x0..=x1`, measured again.
fn measure(runs: &[Run], id: u32, x0: u32, x1: u32) -> Option<Comp> {
    let mut out: Option<Comp> = None;
    for r in runs {
        let (a, b) = (r.x0.max(x0), r.x1.min(x1));
        if a > b {
            continue;
        }
        let n = b - a + 1;
        let piece = Comp {
            x0: a,
            y0: r.y,
            x1: b,
            y1: r.y,
            area: n,
            sx: u64::from(n) * u64::from(a + b) / 2,
            sy: u64::from(n) * u64::from(r.y),
            id,
        };
        match out.as_mut() {
            Some(o) => o.absorb(&piece),
            None => out = Some(piece),
        }
    }
    out
}

/// One run of mask pixels on row `y`, columns `x0..=x1`.
#[derive(Debug, Clone, Copy)]
struct Run {
    y: u32,
    x0: u32,
    x1: u32,
}

impl Detector {
    fn find(&mut self, mut a: u32) -> u32 {
        while self.parent[a as usize] != a {
            let p = self.parent[a as usize];
            self.parent[a as usize] = self.parent[p as usize];
            a = p;
        }
        a
    }

    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }

    /// Blobs of `mask` (`mw`×`mh`, non-zero is athlete) in a `fw`×`fh` frame,
    /// appended to `out` (cleared first). A mask shorter than `mw × mh` is read
    /// as far as it goes.
    pub fn detect(
        &mut self,
        mask: &[u8],
        (mw, mh): (usize, usize),
        (fw, fh): (u32, u32),
        rules: &BlobRules,
        out: &mut Vec<Blob>,
    ) {
        out.clear();
        self.prev.clear();
        self.parent.clear();
        self.comps.clear();
        if mw == 0 || mh == 0 {
            return;
        }
        let rows = mh.min(mask.len() / mw);
        for y in 0..rows {
            let row = &mask[y * mw..(y + 1) * mw];
            self.cur.clear();
            let mut x = 0;
            while x < mw {
                if row[x] == 0 {
                    x += 1;
                    continue;
                }
                let start = x;
                while x < mw && row[x] != 0 {
                    x += 1;
                }
                let label = self.parent.len() as u32;
                self.parent.push(label);
                let (x0, x1) = (start as u32, (x - 1) as u32);
                let n = x1 - x0 + 1;
                // Sum of x over the run: n * (x0 + x1) / 2.
                let sx = u64::from(n) * u64::from(x0 + x1) / 2;
                self.comps.push(Comp {
                    x0,
                    y0: y as u32,
                    x1,
                    y1: y as u32,
                    area: n,
                    sx,
                    sy: u64::from(n) * y as u64,
                    id: 0,
                });
                self.cur.push((x0, x1, label));
            }
            // 8-connectivity: runs touch when they overlap with one pixel of slack.
            let (mut i, mut j) = (0, 0);
            while i < self.cur.len() && j < self.prev.len() {
                let (a0, a1, la) = self.cur[i];
                let (b0, b1, lb) = self.prev[j];
                if a0 <= b1 + 1 && b0 <= a1 + 1 {
                    self.union(la, lb);
                }
                if a1 < b1 { i += 1 } else { j += 1 }
            }
            std::mem::swap(&mut self.prev, &mut self.cur);
        }
        // Fold every run into its root.
        self.roots.clear();
        self.index.clear();
        self.index.resize(self.parent.len(), u32::MAX);
        self.run_id.clear();
        for l in 0..self.parent.len() as u32 {
            let r = self.find(l) as usize;
            let c = self.comps[l as usize];
            if self.index[r] == u32::MAX {
                self.index[r] = self.roots.len() as u32;
                self.roots.push(Comp {
                    id: self.index[r],
                    ..c
                });
            } else {
                self.roots[self.index[r] as usize].absorb(&c);
            }
            self.run_id.push(self.index[r]);
        }
        self.alias.clear();
        self.alias.extend(0..self.roots.len() as u32);
        // Fragments (a ski, an arm cut off by a thin gap) join the larger component
        // they sit next to; two athletes of similar size are never merged here.
        self.roots
            .sort_unstable_by_key(|c| std::cmp::Reverse(c.area));
        let mut i = 0;
        while i < self.roots.len() {
            let mut j = i + 1;
            let mut grew = false;
            while j < self.roots.len() {
                let (big, small) = (self.roots[i], self.roots[j]);
                // Pieces of one athlete cut by the frame's edge (a body and its
                // skis, entering) join too.
                let edge = |c: &Comp| {
                    [
                        c.x0 == 0,
                        c.y0 == 0,
                        c.x1 + 1 >= mw as u32,
                        c.y1 + 1 >= rows as u32,
                    ]
                };
                let (eb, es) = (edge(&big), edge(&small));
                let same_edge = eb.iter().zip(&es).any(|(a, b)| *a && *b);
                if ((small.area as f32) <= rules.merge_max_ratio * big.area as f32 || same_edge)
                    && big.near(&small, rules.merge_gap_px * if same_edge { 2 } else { 1 })
                {
                    self.roots[i].absorb(&small);
                    self.alias[small.id as usize] = self.roots[i].id;
                    self.roots.swap_remove(j);
                    grew = true;
                    // Order after swap_remove is broken only for smaller entries; rescan.
                    self.roots[i + 1..].sort_unstable_by_key(|c| std::cmp::Reverse(c.area));
                    j = i + 1;
                } else {
                    j += 1;
                }
            }
            if !grew {
                i += 1;
            }
        }
        let (sx, sy) = (fw as f32 / mw as f32, fh as f32 / mh as f32);
        let min_area = rules
            .min_area_px
            .max((rules.min_area_fraction * (mw * mh) as f32).ceil() as u32);
        // Athletes that overlap in the image (a pack on one line) are one component:
        // cut each where its column profile has two tall bodies with a deep valley
        // between them.
        // Every run's final component (merges chain: follow them to the end).
        for id in self.run_id.iter_mut() {
            while self.alias[*id as usize] != *id {
                *id = self.alias[*id as usize];
            }
        }
        // Runs bucketed by component id (a counting sort; labels stay in row order).
        let ids = self.alias.len();
        self.starts.clear();
        self.starts.resize(ids + 1, 0);
        for &id in &self.run_id {
            self.starts[id as usize + 1] += 1;
        }
        for i in 0..ids {
            self.starts[i + 1] += self.starts[i];
        }
        self.by_id.clear();
        self.by_id.resize(self.run_id.len(), 0);
        // Placing a run moves its bucket's start on: afterwards `starts[i]` is
        // where bucket `i` ends, i.e. bucket `i` is `starts[i - 1]..starts[i]`.
        for (l, &id) in self.run_id.iter().enumerate() {
            self.by_id[self.starts[id as usize] as usize] = l as u32;
            self.starts[id as usize] += 1;
        }
        let mut k = 0;
        while k < self.roots.len() {
            let c = self.roots[k];
            // Only this component's own pixels: its box may hold a neighbour's.
            self.mine.clear();
            if c.x1 - c.x0 >= 4 && c.y1 - c.y0 >= 5 {
                let id = c.id as usize;
                let a = if id == 0 {
                    0
                } else {
                    self.starts[id - 1] as usize
                };
                let b = self.starts[id] as usize;
                for &l in &self.by_id[a..b] {
                    let r = &self.comps[l as usize];
                    if r.x1 >= c.x0 && r.x0 <= c.x1 {
                        self.mine.push(Run {
                            y: r.y0,
                            x0: r.x0.max(c.x0),
                            x1: r.x1.min(c.x1),
                        });
                    }
                }
            }
            let cut = if self.mine.is_empty() {
                None
            } else {
                split_columns(&self.mine, &c, &mut self.profile)
            };
            match cut {
                Some(cut) => {
                    let (a, b) = (
                        measure(&self.mine, c.id, c.x0, cut),
                        measure(&self.mine, c.id, cut + 1, c.x1),
                    );
                    match (a, b) {
                        (Some(a), Some(b)) if a.area >= min_area && b.area >= min_area => {
                            self.roots[k] = a;
                            self.roots.push(b);
                        }
                        _ => k += 1,
                    }
                }
                None => k += 1,
            }
        }
        for (k, c) in self.roots.iter().enumerate() {
            // Pieces of one component keep its id.
            let cut = self
                .roots
                .iter()
                .enumerate()
                .any(|(o, other)| o != k && other.id == c.id);
            let h = c.y1 - c.y0 + 1;
            let at_edge =
                c.x0 == 0 || c.y0 == 0 || c.x1 + 1 >= mw as u32 || c.y1 + 1 >= rows as u32;
            let weak = c.area < min_area || h < rules.min_height_px;
            if weak && !(at_edge && c.area >= MIN_SLIVER_PX) {
                continue;
            }
            let rect = Rect {
                x0: c.x0 as f32 * sx,
                y0: c.y0 as f32 * sy,
                x1: (c.x1 + 1) as f32 * sx,
                y1: (c.y1 + 1) as f32 * sy,
            };
            let box_px = ((c.x1 - c.x0 + 1) * h) as f32;
            out.push(Blob {
                rect,
                centroid: [
                    (c.sx as f32 / c.area as f32 + 0.5) * sx,
                    (c.sy as f32 / c.area as f32 + 0.5) * sy,
                ],
                area: c.area as f32 * sx * sy,
                fill: c.area as f32 / box_px,
                mask_box: [c.x0, c.y0, c.x1 + 1, c.y1 + 1],
                at_edge,
                weak,
                cut,
            });
        }
        // Largest first, so output order is stable for equal inputs.
        out.sort_by(|a, b| b.area.total_cmp(&a.area));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: BlobRules = BlobRules {
        min_area_px: 4,
        min_area_fraction: 0.0,
        min_height_px: 2,
        merge_gap_px: 1,
        merge_max_ratio: 0.3,
    };

    fn mask(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let data = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| if b == b'#' { 255 } else { 0 }))
            .collect();
        (data, w, rows.len())
    }

    /// A skier's long skis reach under a neighbour who is not touching them: the
    /// skier's box holds the neighbour's body, but only the skier's own pixels
    /// are read when looking for a cut, so the skier is not cut in two (and no
    /// piece is measured with the neighbour's pixels in it).
    #[test]
    fn a_neighbour_inside_a_blobs_box_is_not_read_as_part_of_it() {
        let (m, w, h) = mask(&[
            "....................",
            "........##.......##.",
            "........###......##.",
            "........##.......##.",
            "........##.......##.",
            "........##.......##.",
            "........##..........",
            "..################..",
            "....................",
        ]);
        let mut d = Detector::default();
        let mut out = Vec::new();
        d.detect(&m, (w, h), (w as u32, h as u32), &RULES, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        let skier = out
            .iter()
            .find(|b| b.rect.x0 == 2.0)
            .unwrap_or_else(|| panic!("skier in {out:?}"));
        assert_eq!(skier.area, 13.0 + 16.0, "{skier:?}");
        assert_eq!((skier.rect.x1, skier.rect.y0), (18.0, 1.0), "{skier:?}");
    }

    #[test]
    fn components_boxes_and_tiny_blobs() {
        let (m, w, h) = mask(&[
            "............",
            ".##.......#.",
            ".##......#..",
            "..#.......#.",
            "............",
            ".....###....",
            ".....###..#.",
            "............",
        ]);
        let mut d = Detector::default();
        let mut out = Vec::new();
        // Frame twice the mask size: boxes scale.
        d.detect(&m, (w, h), (24, 16), &RULES, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        // The diagonal specks at the right are one 8-connected blob of 3 pixels, and
        // the lone speck is too far from the block to be a fragment: both dropped.
        let a = out.iter().find(|b| b.rect.x0 == 2.0).expect("left blob");
        assert_eq!(
            a.rect,
            Rect {
                x0: 2.0,
                y0: 2.0,
                x1: 6.0,
                y1: 8.0
            }
        );
        assert_eq!(a.area, 5.0 * 4.0);
        assert!(!a.at_edge);
        let b = out.iter().find(|b| b.rect.x0 == 10.0).expect("bottom blob");
        assert_eq!(b.mask_box, [5, 5, 8, 7]);
        assert!((b.fill - 1.0).abs() < 1e-6);
        assert_eq!(b.centroid, [13.0, 12.0]);
    }

    #[test]
    fn two_overlapping_bodies_are_cut_apart_but_one_body_with_skis_is_not() {
        // Two skiers one behind the other: bodies apart, skis touching.
        let (m, w, h) = mask(&[
            "....................",
            "...##.........##....",
            "...##.........##....",
            "...###.......###....",
            "...##.........##....",
            "...##.........##....",
            "..#################.",
            "....................",
        ]);
        let mut d = Detector::default();
        let mut out = Vec::new();
        d.detect(&m, (w, h), (w as u32, h as u32), &RULES, &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        let mut xs: Vec<f32> = out.iter().map(|b| b.centroid[0]).collect();
        xs.sort_by(f32::total_cmp);
        assert!(xs[0] < 8.0 && xs[1] > 12.0, "{xs:?}");
        assert!(
            out.iter().all(|b| b.cut),
            "both widths end at the cut: {out:?}"
        );
        // One skier: a body over long skis stays one.
        let (m, w, h) = mask(&[
            "....................",
            "........##..........",
            "........###.........",
            "........##..........",
            "........##..........",
            "........##..........",
            "..################..",
            "....................",
        ]);
        d.detect(&m, (w, h), (w as u32, h as u32), &RULES, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(!out[0].cut);
    }

    #[test]
    fn fragments_and_pieces_at_an_edge_merge_but_equal_neighbours_do_not() {
        let (m, w, h) = mask(&[
            ".............",
            ".####.####.#.",
            ".####.####...",
            ".####.####...",
            ".............",
        ]);
        let mut d = Detector::default();
        let mut out = Vec::new();
        d.detect(&m, (w, h), (13, 5), &RULES, &mut out);
        // Two equal blocks stay apart; the one-pixel fragment joins its neighbour.
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().any(|b| b.rect.x1 == 12.0 && b.area == 13.0));
        // Two pieces cut by the same frame edge (a body and its skis coming in) are
        // one athlete, even of similar size.
        let (m, w, h) = mask(&["###...", "......", "###...", "###..."]);
        d.detect(&m, (w, h), (6, 4), &RULES, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].mask_box, [0, 0, 3, 4]);
        // A mask shorter than its stated size is read as far as it goes: one row
        // at the edge is only a sliver there.
        d.detect(&m[..w], (w, h), (6, 4), &RULES, &mut out);
        assert!(out.iter().all(|b| b.weak && b.at_edge), "{out:?}");
        d.detect(&[], (0, 0), (6, 4), &RULES, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn slivers_are_kept_at_the_edge_only() {
        // Two-pixel specks: one inside the frame (noise), one on its right edge
        // (skis leaving).
        let (m, w, h) = mask(&[
            "........", //
            "..##..##", //
            "........",
        ]);
        let mut d = Detector::default();
        let mut out = Vec::new();
        d.detect(&m, (w, h), (8, 3), &RULES, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].weak && out[0].at_edge && out[0].rect.x1 == 8.0);
    }
}
