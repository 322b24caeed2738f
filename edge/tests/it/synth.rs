//! `venue-edge synth` end to end: it writes decodable frames, masks and instance
//! planes of the requested size and a truth.json that parses and matches them; bad arguments and
//! an unwritable directory fail with clear errors.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::BIN;

fn synth_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("venue-edge-synth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn synth(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("synth")
        .args(args)
        .output()
        .expect("run venue-edge")
}

fn decode(path: &Path) -> (png::OutputInfo, Vec<u8>) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("png header");
    let mut buf = vec![0; reader.output_buffer_size().expect("png size")];
    let info = reader.next_frame(&mut buf).expect("png data");
    buf.truncate(info.buffer_size());
    (info, buf)
}

/// The file `KIND_NNNNNN.png` of frame `i` in `out`, which the frame's entry
/// in truth.json (`f`) names under `kind`.
fn listed(out: &Path, f: &serde_json::Value, kind: &str, i: usize) -> PathBuf {
    let name = format!("{kind}_{i:06}.png");
    assert_eq!(f[kind], name.as_str(), "frame {i}");
    out.join(name)
}

#[test]
fn writes_frames_masks_instances_and_truth() {
    let dir = synth_dir("ok");
    let out = dir.join("nested/run");
    let frames = 40;
    let result = synth(&[
        "--scene",
        "slope",
        "--seed",
        "3",
        "--frames",
        &frames.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--width",
        "96",
        "--height",
        "54",
        "--fps",
        "25",
    ]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let truth: serde_json::Value =
        serde_json::from_reader(File::open(out.join("truth.json")).expect("truth.json"))
            .expect("truth.json parses");
    assert_eq!(truth["scene"], "slope");
    assert_eq!(truth["seed"], 3);
    assert_eq!(
        (truth["width"].as_u64(), truth["height"].as_u64()),
        (Some(96), Some(54))
    );
    assert_eq!(truth["fps"], 25);
    let list = truth["frames"].as_array().expect("frames");
    assert_eq!(list.len(), frames);
    let mut boxes = 0;
    for (i, f) in list.iter().enumerate() {
        assert_eq!(f["index"], i);
        let frame_file = listed(&out, f, "frame", i);
        let mask_file = listed(&out, f, "mask", i);
        let (info, rgb) = decode(&frame_file);
        assert_eq!((info.width, info.height), (96, 54));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(rgb.len(), 96 * 54 * 3);
        let (info, mask) = decode(&mask_file);
        assert_eq!((info.width, info.height), (96, 54));
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        assert!(mask.iter().all(|&m| m == 0 || m == 255));
        // Masked pixels lie in the listed boxes, and the boxes hold them all.
        let athletes = f["athletes"].as_array().expect("athletes");
        let mut inside = 0;
        for a in athletes {
            assert!(a["id"].as_u64().is_some());
            let b = &a["box"];
            let (x, y, w, h) = (
                b["x"].as_u64().unwrap() as usize,
                b["y"].as_u64().unwrap() as usize,
                b["width"].as_u64().unwrap() as usize,
                b["height"].as_u64().unwrap() as usize,
            );
            assert!(x + w <= 96 && y + h <= 54);
            inside += a["pixels"].as_u64().unwrap();
            boxes += 1;
        }
        let masked = mask.iter().filter(|&&m| m == 255).count() as u64;
        assert_eq!(masked, inside, "frame {i}");
        // Which athlete each mask pixel shows: a listed id on the mask (as many
        // pixels as listed), nothing off it.
        let instances_file = listed(&out, f, "instances", i);
        let (info, raw) = decode(&instances_file);
        assert_eq!((info.width, info.height), (96, 54));
        assert_eq!(
            (info.color_type, info.bit_depth),
            (png::ColorType::Grayscale, png::BitDepth::Sixteen)
        );
        let ids: Vec<u64> = raw
            .chunks_exact(2)
            .map(|p| u64::from(u16::from_be_bytes([p[0], p[1]])))
            .collect();
        assert_eq!(ids.len(), mask.len());
        for (&id, &m) in ids.iter().zip(&mask) {
            assert_eq!(id != 0, m == 255, "frame {i}");
        }
        for a in athletes {
            let id = a["id"].as_u64().unwrap();
            let n = ids.iter().filter(|&&p| p == id).count() as u64;
            assert_eq!(n, a["pixels"].as_u64().unwrap(), "frame {i} athlete {id}");
        }
        for e in f["events"].as_array().expect("events") {
            let kind = e["kind"].as_str().expect("kind");
            assert!(["enter", "exit", "take_off", "landing", "fall"].contains(&kind));
            assert!(e["athlete"].as_u64().is_some());
        }
    }
    assert!(boxes > 0, "no athlete in {frames} frames");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_arguments_are_explained() {
    let dir = synth_dir("bad");
    let out = dir.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--scene", "halfpipe", "--seed", "1", "--frames", "1", "--out", out,
            ],
            "halfpipe",
        ),
        (
            &[
                "--scene", "rink", "--seed", "1", "--frames", "1", "--out", out, "--width", "63",
            ],
            "even",
        ),
        (
            &[
                "--scene", "rink", "--seed", "1", "--frames", "0", "--out", out,
            ],
            "frames",
        ),
        (
            &["--scene", "rink", "--seed", "1", "--frames", "1"],
            "--out",
        ),
    ];
    for (args, needle) in cases {
        let result = synth(args);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    assert!(!dir.exists(), "a rejected command wrote nothing");
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    let dir = synth_dir("unwritable");
    std::fs::create_dir_all(&dir).unwrap();
    // A regular file where a directory should be: fails even for root.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let out = blocker.join("frames");
    let result = synth(&[
        "--scene",
        "rink",
        "--seed",
        "1",
        "--frames",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(
        stderr.contains("cannot create output directory") && stderr.contains("frames"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
