//! Run-length encoding of masks for the wire: row-major, alternating run lengths
//! starting with a background run (which may be 0), so `[0, 3, 2]` is three
//! foreground pixels then two background pixels. Any non-zero byte is foreground;
//! decoding gives 0/255.

/// Why a run list does not describe a mask of the expected size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RleError {
    #[error("runs cover {covered} pixels, the mask has {expected}")]
    Length { covered: u64, expected: u64 },
}

/// Encodes a mask as alternating background/foreground run lengths.
pub fn rle_encode(mask: &[u8]) -> Vec<u32> {
    let mut runs = Vec::new();
    let mut current = false;
    let mut len: u32 = 0;
    for &px in mask {
        let fg = px != 0;
        if fg != current || len == u32::MAX {
            runs.push(len);
            if fg == current {
                // A run longer than u32::MAX: continue it after an empty opposite run.
                runs.push(0);
            }
            current = fg;
            len = 0;
        }
        len += 1;
    }
    if len > 0 || runs.is_empty() {
        runs.push(len);
    }
    runs
}

/// Decodes runs into a 0/255 mask of exactly `len` pixels.
pub fn rle_decode(runs: &[u32], len: usize) -> Result<Vec<u8>, RleError> {
    let covered: u64 = runs.iter().map(|&r| u64::from(r)).sum();
    if covered != len as u64 {
        return Err(RleError::Length {
            covered,
            expected: len as u64,
        });
    }
    let mut mask = Vec::with_capacity(len);
    for (i, &r) in runs.iter().enumerate() {
        let value = if i % 2 == 0 { 0 } else { 255 };
        mask.resize(mask.len() + r as usize, value);
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() -> Result<(), RleError> {
        assert_eq!(rle_encode(&[]), vec![0]);
        assert_eq!(rle_encode(&[0, 0]), vec![2]);
        assert_eq!(rle_encode(&[255, 255, 255, 0, 0]), vec![0, 3, 2]);
        assert_eq!(rle_encode(&[0, 1, 0]), vec![1, 1, 1]);
        assert_eq!(rle_decode(&[0, 3, 2], 5)?, vec![255, 255, 255, 0, 0]);
        assert_eq!(rle_decode(&[0], 0)?, Vec::<u8>::new());
        assert_eq!(
            rle_decode(&[1, 2], 4),
            Err(RleError::Length {
                covered: 3,
                expected: 4
            })
        );
        Ok(())
    }

    proptest! {
        #[test]
        fn round_trip(mask in proptest::collection::vec(prop_oneof![Just(0u8), Just(255u8)], 0..2000)) {
            let runs = rle_encode(&mask);
            prop_assert_eq!(rle_decode(&runs, mask.len()), Ok(mask));
        }

        #[test]
        fn runs_alternate_and_never_empty_inside(mask in proptest::collection::vec(any::<u8>(), 1..500)) {
            let runs = rle_encode(&mask);
            // Only the first (background) run may be empty.
            prop_assert!(runs.iter().skip(1).all(|&r| r > 0));
            let decoded = rle_decode(&runs, mask.len());
            let normalised: Vec<u8> = mask.iter().map(|&v| if v != 0 { 255 } else { 0 }).collect();
            prop_assert_eq!(decoded, Ok(normalised));
        }

        #[test]
        fn decode_never_panics(runs in proptest::collection::vec(any::<u32>(), 0..8), len in 0usize..5000) {
            let _ = rle_decode(&runs, len);
        }
    }
}
