//! Masks: 0/255 bytes, row-major, from the model output at model resolution, resized
//! on demand to the frame's size.

use crate::{ModelError, Tensor};

/// A binary mask, one byte per pixel: 255 foreground (athlete), 0 background.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Mask {
    /// Thresholds a `1×1×H×W` output: foreground where the value is above `raw_threshold`
    /// (a logit or a probability, as the manifest says).
    pub fn from_output(out: &Tensor, raw_threshold: f32) -> Result<Mask, ModelError> {
        let [n, c, h, w] = out.shape;
        if n != 1 || c != 1 || out.data.len() != h * w {
            return Err(ModelError::Mismatch(format!(
                "expected an output of shape 1x1xHxW, got {n}x{c}x{h}x{w}"
            )));
        }
        let data = out
            .data
            .iter()
            .map(|&v| if v > raw_threshold { 255 } else { 0 })
            .collect();
        Ok(Mask {
            width: w,
            height: h,
            data,
        })
    }

    /// The mask at another size, nearest neighbour (pixel centres map to pixel centres).
    /// Returns a copy when the size is the same.
    pub fn resize(&self, width: usize, height: usize) -> Mask {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let mut data = vec![0u8; width * height];
        if self.width == 0 || self.height == 0 {
            return Mask {
                width,
                height,
                data,
            };
        }
        let xs: Vec<usize> = (0..width)
            .map(|x| ((2 * x + 1) * self.width / (2 * width)).min(self.width - 1))
            .collect();
        for (y, row) in data.chunks_exact_mut(width.max(1)).enumerate() {
            let sy = ((2 * y + 1) * self.height / (2 * height)).min(self.height - 1);
            let src = &self.data[sy * self.width..(sy + 1) * self.width];
            for (d, &sx) in row.iter_mut().zip(&xs) {
                *d = src[sx];
            }
        }
        Mask {
            width,
            height,
            data,
        }
    }

    /// Foreground pixel count.
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logits_threshold_and_shape() -> Result<(), ModelError> {
        let out = Tensor {
            shape: [1, 1, 2, 3],
            data: vec![-1.0, 0.0, 0.5, 3.0, -0.1, 0.01],
        };
        let m = Mask::from_output(&out, 0.0)?;
        assert_eq!((m.width, m.height), (3, 2));
        assert_eq!(m.data, vec![0, 0, 255, 255, 0, 255]);
        let bad = Tensor {
            shape: [1, 2, 1, 1],
            data: vec![0.0, 0.0],
        };
        assert!(Mask::from_output(&bad, 0.0).is_err());
        Ok(())
    }

    #[test]
    fn resize_nearest() {
        let m = Mask {
            width: 2,
            height: 2,
            data: vec![255, 0, 0, 255],
        };
        let big = m.resize(4, 4);
        assert_eq!(
            big.data,
            vec![
                255, 255, 0, 0, //
                255, 255, 0, 0, //
                0, 0, 255, 255, //
                0, 0, 255, 255,
            ]
        );
        assert_eq!(big.resize(2, 2), m);
        assert_eq!(m.resize(2, 2), m);
        // The middle row and column fall on the second source row and column.
        assert_eq!(m.resize(3, 1).data, vec![0, 255, 255]);
    }
}
