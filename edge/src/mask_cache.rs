//! A cache of the reference model's masks for `venue-edge eval --mask-cache DIR`:
//! one file per rendered sequence (scene, seed, size, rate, athletes, frame count)
//! and model (a hash of its ONNX bytes), holding every frame's mask. Tuning the
//! tagger re-runs the same sequences many times; the model is most of the cost
//! (hundreds of ms per frame on a CPU), the tagger a fraction of a millisecond.
//! A file that does not match what it claims is ignored and rewritten.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"VEMASKS1";

/// Every frame's mask of one sequence, all of one size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masks {
    pub width: usize,
    pub height: usize,
    pub frames: Vec<Vec<u8>>,
}

/// A short digest of the model's bytes, for the file name. `DefaultHasher` is not
/// stable across Rust releases: a new toolchain only costs a recomputation.
pub fn model_digest(onnx: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    onnx.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Where the masks of a sequence live under `dir`; `what` names the sequence.
pub fn path(dir: &Path, what: &str, model: &str) -> PathBuf {
    dir.join(format!("{what}-{model}.masks"))
}

/// The cached masks, or `None` when there is no usable file (missing, another
/// frame count, damaged).
pub fn load(path: &Path, frames: usize) -> Option<Masks> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let word = |i: usize| -> Option<usize> {
        let b: [u8; 4] = rest.get(i * 4..i * 4 + 4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    };
    let (width, height, n) = (word(0)?, word(1)?, word(2)?);
    let size = width.checked_mul(height)?;
    let body = rest.get(12..)?;
    if n != frames || size == 0 || body.len() != n.checked_mul(size)? {
        return None;
    }
    Some(Masks {
        width,
        height,
        frames: body.chunks_exact(size).map(<[u8]>::to_vec).collect(),
    })
}

/// Writes `masks` to `path` (through a temporary file, so a reader never sees half).
pub fn store(path: &Path, masks: &Masks) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    f.write_all(MAGIC)?;
    for v in [masks.width, masks.height, masks.frames.len()] {
        let v = u32::try_from(v).map_err(|_| std::io::Error::other("mask cache: too large"))?;
        f.write_all(&v.to_le_bytes())?;
    }
    for m in &masks.frames {
        f.write_all(m)?;
    }
    f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_files_are_ignored() {
        let dir = std::env::temp_dir().join(format!("venue-mask-cache-{}", std::process::id()));
        let p = path(&dir, "slope-1", &model_digest(b"model"));
        let masks = Masks {
            width: 3,
            height: 2,
            frames: vec![vec![0, 1, 0, 1, 1, 0], vec![1; 6]],
        };
        assert_eq!(load(&p, 2), None, "nothing cached yet");
        store(&p, &masks).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load(&p, 2), Some(masks.clone()));
        assert_eq!(load(&p, 3), None, "another frame count");
        let mut bytes = std::fs::read(&p).unwrap_or_default();
        bytes.pop();
        std::fs::write(&p, &bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(load(&p, 2), None, "a truncated file");
        assert_ne!(model_digest(b"model"), model_digest(b"other model"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
