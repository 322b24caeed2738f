//! The tagger on a committed fixture: a ski jump rendered by the synthetic camera
//! (slope, test seed 9201) with its athlete masks, stored as film strips (frames
//! as one JPEG, masks as one PNG).
//! It must reproduce the committed strobe composite, show N distinct cut-outs, and
//! report the jump as one event id (started, then ended); bad inputs are refused
//! without changing anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use venue_drivers::{Clock, ManualClock, Scene, SyntheticCamera, SyntheticConfig};
use venue_edge::segment::read_image;
use venue_edge::tagging::{
    CameraInfo, Composite, EventUpdate, Pixels, TagInput, Tagger, TaggingConfig, TaggingError,
};
use venue_proto::{EventKind, EventPhase};

const W: usize = 256;
const H: usize = 144;
const FRAME_NS: u64 = 1_000_000_000 / 30;
const T0: u64 = 1_767_225_600_000_000_000;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/strobe")
}

fn camera() -> CameraInfo {
    CameraInfo {
        width: W as u32,
        height: H as u32,
        fps: 30,
        first_event_id: 100,
    }
}

fn config() -> TaggingConfig {
    TaggingConfig {
        strobe_cutouts: 4,
        thumbnail_interval_ms: 0,
        ..TaggingConfig::default()
    }
}

/// Frames (RGB) and masks of the fixture, one per strip row of H pixels.
fn load() -> Vec<(Vec<u8>, Vec<u8>)> {
    let frames = read_image(&dir().join("frames.jpg")).expect("frames strip");
    let masks = read_image(&dir().join("masks.png")).expect("masks strip");
    assert_eq!((frames.width, masks.width), (W, W));
    let n = frames.height / H;
    (0..n)
        .map(|i| {
            let rgb = frames.rgb[i * W * H * 3..(i + 1) * W * H * 3].to_vec();
            let mask = masks.rgb[i * W * H * 3..(i + 1) * W * H * 3]
                .chunks_exact(3)
                .map(|p| p[0])
                .collect();
            (rgb, mask)
        })
        .collect()
}

fn run(seq: &[(Vec<u8>, Vec<u8>)]) -> (Vec<EventUpdate>, Vec<Composite>) {
    let mut tagger = Tagger::new(&config(), camera()).expect("tagger");
    let (mut events, mut composites) = (Vec::new(), Vec::new());
    for (i, (rgb, mask)) in seq.iter().enumerate() {
        let out = tagger
            .push(TagInput {
                capture_ns: T0 + i as u64 * FRAME_NS,
                mask,
                mask_width: W,
                mask_height: H,
                pixels: Some(Pixels::Rgb(rgb)),
            })
            .expect("push");
        events.extend(out.events);
        for job in &out.composites {
            composites.push(job.render().expect("render"));
        }
    }
    events.extend(tagger.finish());
    (events, composites)
}

/// Writes the fixture: `UPDATE_FIXTURES=1 cargo test -p venue-edge --test it strobe`.
fn regenerate() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(0));
    let cfg = SyntheticConfig {
        width: W as u32,
        height: H as u32,
        fps: 30,
        seed: 9201,
        athletes: 1,
        fail_after_frames: None,
        scene: Scene::Slope,
    };
    let mut cam = SyntheticCamera::new(cfg, clock, 2).expect("camera");
    let mut all = Vec::new();
    let mut rgb = vec![0u8; W * H * 3];
    for _ in 0..240 {
        let (frame, truth) = cam.next_frame_with_truth().expect("frame");
        venue_edge::synth::nv12_to_rgb(&frame.data, W, H, &mut rgb);
        all.push((rgb.clone(), truth.mask.clone()));
    }
    // The first jump, with room before it for the tracker and the plate.
    let (_, composites) = run(&all);
    let c = composites
        .first()
        .expect("a jump in 240 frames of seed 9201");
    let take_off = ((c.start_ns - T0) / FRAME_NS) as usize;
    let landing = ((c.end_ns - T0) / FRAME_NS) as usize;
    let seq = &all[take_off.saturating_sub(25)..(landing + 12).min(all.len())];
    let rgb: Vec<u8> = seq.iter().flat_map(|p| p.0.clone()).collect();
    let mut jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut jpeg, 80)
        .encode(
            &rgb,
            W as u16,
            (H * seq.len()) as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode frames");
    std::fs::write(dir().join("frames.jpg"), jpeg).expect("write frames");
    let masks: Vec<u8> = seq.iter().flat_map(|p| p.1.clone()).collect();
    venue_edge::synth::write_png(
        &dir().join("masks.png"),
        W as u32,
        (H * seq.len()) as u32,
        png::ColorType::Grayscale,
        &masks,
    )
    .expect("write masks");
    // The committed composite comes from the stored (compressed) frames.
    let seq = load();
    let (_, composites) = run(&seq);
    let c = composites.first().expect("the fixture's jump");
    std::fs::write(dir().join("composite.png"), &c.png).expect("write composite");
}

#[test]
fn strobe_fixture_reproduces_its_composite_with_distinct_cutouts() {
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        regenerate();
    }
    let seq = load();
    let (events, composites) = run(&seq);
    assert_eq!(composites.len(), 1, "one composite for the one jump");
    let c = &composites[0];
    assert_eq!(c.cutouts.len(), config().strobe_cutouts as usize);
    // Distinct: each cut-out further along the jump, from its own frame, with
    // athlete pixels.
    for pair in c.cutouts.windows(2) {
        assert!(pair[1].t_ns > pair[0].t_ns);
        let (a, b) = (pair[0].rect, pair[1].rect);
        assert!(b[0] >= a[0] + 8, "cut-outs overlap: {a:?} {b:?}");
    }
    assert!(c.cutouts.iter().all(|k| k.pixels >= 100), "{:?}", c.cutouts);

    // Same picture as committed (a few pixels may differ by rounding).
    let path = std::env::temp_dir().join(format!("venue-strobe-{}.png", std::process::id()));
    std::fs::write(&path, &c.png).expect("write");
    let got = read_image(&path).expect("decode composite");
    let want = read_image(&dir().join("composite.png")).expect("committed composite");
    assert_eq!((got.width, got.height), (want.width, want.height));
    let differ = got
        .rgb
        .chunks_exact(3)
        .zip(want.rgb.chunks_exact(3))
        .filter(|(a, b)| a.iter().zip(*b).any(|(x, y)| x.abs_diff(*y) > 8))
        .count();
    assert!(
        differ * 200 <= got.width * got.height,
        "{differ} pixels differ"
    );
    // Where each cut-out's athlete is, the composite shows it (kits are far darker
    // than snow): at least a quarter of its box is dark.
    for k in &c.cutouts {
        let [x, y, w, h] = k.rect.map(|v| v as usize);
        let dark = (y..y + h)
            .flat_map(|yy| (x..x + w).map(move |xx| (xx, yy)))
            .filter(|&(xx, yy)| got.rgb[(yy * got.width + xx) * 3 + 1] < 140)
            .count();
        assert!(
            dark * 8 >= k.pixels as usize,
            "cut-out {k:?} is not visible"
        );
    }

    // The jump is one event: started once, ended once, same id; no second jump.
    let jumps: Vec<&EventUpdate> = events
        .iter()
        .filter(|e| e.kind == EventKind::Jump)
        .collect();
    let ids: std::collections::BTreeSet<u64> = jumps.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 1, "{jumps:?}");
    assert_eq!(
        jumps.iter().map(|e| e.phase).collect::<Vec<_>>(),
        vec![EventPhase::Started, EventPhase::Ended]
    );
    assert_eq!(Some(jumps[0].event_id), Some(c.event_id));
    let airtime = jumps[1].end_ns.expect("landing") - jumps[1].start_ns;
    assert!(
        (200_000_000..1_500_000_000).contains(&airtime),
        "airtime {airtime} ns"
    );
    assert!(events.iter().all(|e| e.event_id >= 100));
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let mut bad = config();
    bad.iou_min = 1.5;
    assert!(matches!(
        Tagger::new(&bad, camera()),
        Err(TaggingError::Config {
            field: "iou_min",
            ..
        })
    ));
    let mut bad = camera();
    bad.fps = 0;
    assert!(Tagger::new(&config(), bad).is_err());

    let seq = load();
    let mut tagger = Tagger::new(&config(), camera()).expect("tagger");
    let input = |i: usize| TagInput {
        capture_ns: T0 + i as u64 * FRAME_NS,
        mask: &seq[i].1,
        mask_width: W,
        mask_height: H,
        pixels: Some(Pixels::Rgb(&seq[i].0)),
    };
    for i in 0..20 {
        tagger.push(input(i)).expect("push");
    }
    let short = TagInput {
        mask: &seq[20].1[..100],
        ..input(20)
    };
    assert!(matches!(
        tagger.push(short),
        Err(TaggingError::MaskSize { .. })
    ));
    let tiny = TagInput {
        pixels: Some(Pixels::Rgb(&seq[20].0[..10])),
        ..input(20)
    };
    assert!(matches!(tagger.push(tiny), Err(TaggingError::Pixels(_))));
    assert!(matches!(
        tagger.push(input(5)),
        Err(TaggingError::TimeWentBack { .. })
    ));
    // None of that moved the tagger: the next frame tags as if nothing happened.
    let out = tagger.push(input(20)).expect("push");
    let mut fresh = Tagger::new(&config(), camera()).expect("tagger");
    let mut want = None;
    for i in 0..=20 {
        want = Some(fresh.push(input(i)).expect("push"));
    }
    assert_eq!(Some(out), want);
}
