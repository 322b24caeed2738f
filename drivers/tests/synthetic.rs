//! The synthetic venue camera through its public API: frames and ground truth are
//! deterministic by seed, masks are exactly the athletes drawn, athletes come and
//! go with stable ids, skiers jump, land and fall.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use venue_drivers::{
    Clock, GroundTruth, ManualClock, MomentKind, Scene, SyntheticCamera, SyntheticConfig,
};

fn camera(scene: Scene, seed: u64, width: u32, height: u32) -> SyntheticCamera {
    let cfg = SyntheticConfig {
        width,
        height,
        fps: 30,
        seed,
        athletes: 4,
        scene,
        ..SyntheticConfig::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    SyntheticCamera::new(cfg, clock, 2).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a camera for `frames` frames, handing each frame's NV12 bytes and truth on.
fn each_frame(
    scene: Scene,
    seed: u64,
    (width, height): (u32, u32),
    frames: u64,
    mut check: impl FnMut(&[u8], &GroundTruth),
) {
    let mut cam = camera(scene, seed, width, height);
    for _ in 0..frames {
        let (frame, truth) = cam
            .next_frame_with_truth()
            .unwrap_or_else(|e| panic!("{e}"));
        check(&frame.data, truth);
    }
}

#[test]
fn same_seed_same_bytes_and_truth_other_seed_differs() {
    for scene in Scene::ALL {
        let (mut a, mut b, mut c) = (
            camera(scene, 11, 128, 72),
            camera(scene, 11, 128, 72),
            camera(scene, 12, 128, 72),
        );
        let mut differ = 0;
        for _ in 0..150 {
            let (fa, ta) = a.next_frame_with_truth().unwrap_or_else(|e| panic!("{e}"));
            let ta = ta.clone();
            let (fb, tb) = b.next_frame_with_truth().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(fa.data, fb.data, "{scene}");
            assert_eq!(&ta, tb, "{scene}");
            let (fc, _) = c.next_frame_with_truth().unwrap_or_else(|e| panic!("{e}"));
            differ += usize::from(fa.data != fc.data);
        }
        assert_eq!(differ, 150, "{scene}: another seed gives other frames");
    }
}

#[test]
fn masks_are_exactly_the_visible_athletes() {
    let (w, h) = (192u32, 108u32);
    for scene in Scene::ALL {
        for seed in 1..=3 {
            let (mut athlete_frames, mut specks_on_athletes) = (0, 0);
            each_frame(scene, seed, (w, h), 300, |data, t| {
                assert_eq!((t.width, t.height), (w, h));
                assert_eq!(t.mask.len(), (w * h) as usize);
                let luma = &data[..(w * h) as usize];
                let mut masked = 0u32;
                for y in 0..h {
                    for x in 0..w {
                        let i = (y * w + x) as usize;
                        match t.mask[i] {
                            0 => {}
                            255 => {
                                masked += 1;
                                // The mask is 0 outside every box.
                                assert!(
                                    t.athletes.iter().any(|a| a.bbox.contains(x, y)),
                                    "{scene} seed {seed} frame {}: mask at ({x},{y}) outside every box",
                                    t.seq
                                );
                                // Athletes are drawn darker than ice and snow.
                                assert!(
                                    luma[i] < 140,
                                    "{scene} frame {}: masked pixel ({x},{y}) has luma {}",
                                    t.seq,
                                    luma[i]
                                );
                            }
                            other => panic!("mask value {other}"),
                        }
                    }
                }
                let pixels: u32 = t.athletes.iter().map(|a| a.pixels).sum();
                assert_eq!(masked, pixels, "every masked pixel belongs to one athlete");
                for a in &t.athletes {
                    assert!(a.pixels > 0);
                    let b = a.bbox;
                    // Boxes are tight: each edge row and column holds a masked pixel.
                    let row = |y: u32| (b.x..b.x + b.width).any(|x| t.mask_at(x, y) == Some(255));
                    let col = |x: u32| (b.y..b.y + b.height).any(|y| t.mask_at(x, y) == Some(255));
                    assert!(row(b.y) && row(b.y + b.height - 1), "{b:?}");
                    assert!(col(b.x) && col(b.x + b.width - 1), "{b:?}");
                }
                // Snow particles are never athletes, even drawn over one.
                for s in &t.specks {
                    specks_on_athletes += t
                        .athletes
                        .iter()
                        .filter(|a| a.bbox.contains(s.x, s.y))
                        .count();
                    for y in s.y..(s.y + s.size).min(h) {
                        for x in s.x..(s.x + s.size).min(w) {
                            assert_eq!(t.mask_at(x, y), Some(0), "speck at ({x},{y})");
                        }
                    }
                }
                if scene == Scene::Slope {
                    assert!(!t.specks.is_empty());
                }
                athlete_frames += usize::from(!t.athletes.is_empty());
            });
            assert!(
                athlete_frames > 100,
                "{scene} seed {seed}: {athlete_frames}"
            );
        }
    }
}

#[test]
fn skaters_cross_and_hide_each_other() {
    let mut occluded = 0;
    for seed in 1..=3 {
        each_frame(Scene::Rink, seed, (160, 90), 600, |_, t| {
            occluded += t.athletes.iter().filter(|a| a.occluded).count();
        });
    }
    assert!(occluded > 0, "no skater was ever partly hidden by another");
}

#[derive(Debug, Default)]
struct Life {
    enter: Option<u64>,
    exit: Option<u64>,
    seen: Vec<u64>,
    moments: Vec<(u64, MomentKind)>,
    airborne: Vec<u64>,
}

fn lives(scene: Scene, seed: u64, frames: u64) -> BTreeMap<u32, Life> {
    let mut lives: BTreeMap<u32, Life> = BTreeMap::new();
    let mut last_center: BTreeMap<u32, (u64, f32, f32)> = BTreeMap::new();
    each_frame(scene, seed, (128, 72), frames, |_, t| {
        let f = t.seq;
        for m in &t.moments {
            let life = lives.entry(m.athlete).or_default();
            life.moments.push((f, m.kind));
            match m.kind {
                MomentKind::Enter => {
                    assert!(life.enter.is_none(), "athlete {} entered twice", m.athlete);
                    life.enter = Some(f);
                }
                MomentKind::Exit => life.exit = Some(f),
                _ => {}
            }
        }
        let mut ids = BTreeSet::new();
        for a in &t.athletes {
            assert!(ids.insert(a.id), "id {} listed twice", a.id);
            let life = lives.entry(a.id).or_default();
            let enter = life.enter.unwrap_or(u64::MAX);
            // Listed only between its arrival and its departure.
            assert!(enter <= f, "athlete {} seen before it entered", a.id);
            assert!(life.exit.is_none(), "athlete {} seen after it left", a.id);
            life.seen.push(f);
            if a.airborne {
                life.airborne.push(f);
            }
            // Same id, same athlete: it moves a little from frame to frame.
            let (cx, cy) = (
                a.bbox.x as f32 + a.bbox.width as f32 / 2.0,
                a.bbox.y as f32 + a.bbox.height as f32 / 2.0,
            );
            if let Some((pf, px, py)) = last_center.insert(a.id, (f, cx, cy))
                && pf + 1 == f
            {
                assert!(
                    (cx - px).abs() < 32.0 && (cy - py).abs() < 24.0,
                    "athlete {} jumped from ({px},{py}) to ({cx},{cy})",
                    a.id
                );
            }
        }
        for m in &t.moments {
            if m.kind == MomentKind::Exit {
                assert!(
                    !ids.contains(&m.athlete),
                    "exit frame still lists {}",
                    m.athlete
                );
            }
        }
    });
    lives
}

#[test]
fn athletes_enter_and_leave_with_stable_ids() {
    for scene in Scene::ALL {
        let lives = lives(scene, 5, 900);
        let entered = lives.values().filter(|l| l.enter.is_some()).count();
        let left = lives.values().filter(|l| l.exit.is_some()).count();
        assert!(
            entered >= 4 && left >= 3,
            "{scene}: {entered} entered, {left} left"
        );
        for (id, life) in &lives {
            if let (Some(a), Some(b)) = (life.enter, life.exit) {
                assert!(a < b, "{scene}: athlete {id} left before it entered");
                assert!(!life.seen.is_empty(), "{scene}: athlete {id} never visible");
            }
        }
        // Ids are handed out in order of arrival and never reused.
        let mut arrivals: Vec<(u64, u32)> = lives
            .iter()
            .filter_map(|(id, l)| l.enter.map(|f| (f, *id)))
            .collect();
        arrivals.sort();
        let order: Vec<u32> = arrivals.into_iter().map(|(_, id)| id).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{scene}");
    }
}

#[test]
fn skiers_take_off_land_and_sometimes_fall() {
    let (mut jumps, mut falls) = (0, 0);
    for seed in 1..=4 {
        for (id, life) in lives(Scene::Slope, seed, 450) {
            let take_off = life.moments.iter().find(|m| m.1 == MomentKind::TakeOff);
            let landing = life.moments.iter().find(|m| m.1 == MomentKind::Landing);
            if let (Some(&(a, _)), Some(&(b, _))) = (take_off, landing) {
                assert!(
                    b > a,
                    "athlete {id}: landed at {b} before taking off at {a}"
                );
                // Airborne exactly from take-off until the frame before landing.
                assert!(life.airborne.iter().all(|f| (a..b).contains(f)));
                assert!(life.airborne.contains(&a));
                jumps += 1;
            }
            falls += life
                .moments
                .iter()
                .filter(|m| m.1 == MomentKind::Fall)
                .count();
        }
    }
    assert!(jumps >= 4, "{jumps} complete jumps");
    assert!(falls >= 1, "no skier fell across four seeds");
}

#[test]
fn small_and_odd_shaped_frames_render_consistently() {
    for scene in Scene::ALL {
        for (w, h) in [(16, 16), (16, 64), (96, 16), (34, 18)] {
            each_frame(scene, 2, (w, h), 200, |data, t| {
                assert_eq!(data.len(), (w * h * 3 / 2) as usize);
                let masked = t.mask.iter().filter(|&&m| m == 255).count() as u32;
                assert_eq!(masked, t.athletes.iter().map(|a| a.pixels).sum::<u32>());
                for a in &t.athletes {
                    assert!(a.bbox.x + a.bbox.width <= w && a.bbox.y + a.bbox.height <= h);
                }
            });
        }
    }
}

#[test]
fn an_empty_venue_has_an_empty_truth() {
    for scene in Scene::ALL {
        let cfg = SyntheticConfig {
            width: 64,
            height: 36,
            athletes: 0,
            scene,
            ..SyntheticConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
        let mut cam = SyntheticCamera::new(cfg, clock, 2).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..60 {
            let (_, t) = cam
                .next_frame_with_truth()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(t.athletes.is_empty() && t.moments.is_empty());
            assert!(t.mask.iter().all(|&m| m == 0));
        }
    }
}
