//! Copying a dequeued V4L2 buffer into a frame buffer: drivers may pad each row
//! (`bytesperline` > the row's pixels), the pipeline's frames are packed.

/// Layout of a raw image in a device buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    /// Bytes of pixels in one row of each plane, packed.
    pub row_bytes: usize,
    /// Bytes from one row to the next in the device buffer.
    pub stride: usize,
    /// Rows in the whole image (for NV12: luma rows + chroma rows, which share the
    /// stride and follow each other).
    pub rows: usize,
}

impl RowLayout {
    /// Bytes of the packed image.
    pub fn packed_len(self) -> usize {
        self.row_bytes * self.rows
    }
}

/// Why a buffer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("the device delivered {got} bytes, a frame needs {need}")]
    Short { got: usize, need: usize },
    #[error("the device reports {stride} bytes per line for rows of {row_bytes} bytes")]
    BadStride { stride: usize, row_bytes: usize },
}

/// Packs `src` into `dst` (cleared first; its capacity is reused).
pub fn pack_rows(src: &[u8], layout: RowLayout, dst: &mut Vec<u8>) -> Result<(), CopyError> {
    let RowLayout {
        row_bytes,
        stride,
        rows,
    } = layout;
    if stride < row_bytes {
        return Err(CopyError::BadStride { stride, row_bytes });
    }
    // The last row needs no padding after it.
    let need = if rows == 0 {
        0
    } else {
        stride * (rows - 1) + row_bytes
    };
    if src.len() < need {
        return Err(CopyError::Short {
            got: src.len(),
            need,
        });
    }
    dst.clear();
    if stride == row_bytes {
        dst.extend_from_slice(&src[..need]);
    } else {
        for row in src.chunks(stride).take(rows) {
            dst.extend_from_slice(&row[..row_bytes]);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_rows_are_packed() {
        // 3 rows of 2 pixel bytes, padded to 4.
        let src = [1, 2, 0, 0, 3, 4, 0, 0, 5, 6];
        let mut dst = Vec::with_capacity(6);
        let layout = RowLayout {
            row_bytes: 2,
            stride: 4,
            rows: 3,
        };
        pack_rows(&src, layout, &mut dst).unwrap();
        assert_eq!(dst, [1, 2, 3, 4, 5, 6]);
        assert_eq!(layout.packed_len(), 6);
    }

    #[test]
    fn packed_input_is_copied_whole_and_capacity_reused() {
        let src: Vec<u8> = (0..12).collect();
        let mut dst = Vec::with_capacity(12);
        let ptr = dst.as_ptr();
        pack_rows(
            &src,
            RowLayout {
                row_bytes: 4,
                stride: 4,
                rows: 3,
            },
            &mut dst,
        )
        .unwrap();
        assert_eq!(dst, src);
        assert_eq!(dst.as_ptr(), ptr, "no reallocation in steady state");
    }

    #[test]
    fn short_buffers_and_bad_strides_are_errors() {
        let mut dst = Vec::new();
        assert_eq!(
            pack_rows(
                &[0; 9],
                RowLayout {
                    row_bytes: 2,
                    stride: 4,
                    rows: 3
                },
                &mut dst
            ),
            Err(CopyError::Short { got: 9, need: 10 })
        );
        assert!(matches!(
            pack_rows(
                &[0; 9],
                RowLayout {
                    row_bytes: 4,
                    stride: 2,
                    rows: 1
                },
                &mut dst
            ),
            Err(CopyError::BadStride { .. })
        ));
    }
}
