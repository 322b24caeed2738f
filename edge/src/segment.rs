//! `venue-edge segment IMAGE --out MASK.png [--model DIR]`: segments one still image
//! (PNG or JPEG) and writes a 0/255 athlete mask of the same size. Without `--model`,
//! the reference model embedded in the binary (`venue_models::reference`).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use venue_models::Model;

/// Largest image side accepted (pixels): bounds what a hostile header can make us
/// allocate.
pub const MAX_SIDE: usize = 16_384;

/// What to segment, where to write the mask, which model.
#[derive(Debug, Clone)]
pub struct SegmentArgs {
    pub image: PathBuf,
    pub out: PathBuf,
    /// A model directory (`manifest.toml` + `model.onnx`); `None` for the reference.
    pub model: Option<PathBuf>,
}

/// A decoded image as packed 8-bit RGB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

/// Segments `args.image` and writes the mask to `args.out`.
pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    // Check the image before loading the model: a typo fails fast.
    let image = read_image(&args.image)?;
    let mut model = match &args.model {
        Some(dir) => Model::load_dir(dir)
            .with_context(|| format!("cannot load the model in {}", dir.display()))?,
        None => Model::reference().context("cannot load the embedded reference model")?,
    };
    let mask = model
        .segment_rgb(&image.rgb, image.width, image.height)
        .with_context(|| format!("cannot segment {}", args.image.display()))?
        .resize(image.width, image.height);
    write_mask(&args.out, image.width, image.height, &mask.data)
}

/// Reads a PNG or JPEG file (told apart by its first bytes) as RGB.
pub fn read_image(path: &Path) -> anyhow::Result<RgbImage> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let image = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(&bytes)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        decode_jpeg(&bytes)
    } else {
        bail!("{} is not a PNG or JPEG image", path.display());
    };
    image.with_context(|| format!("cannot decode {}", path.display()))
}

fn check_size(width: usize, height: usize) -> anyhow::Result<()> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        bail!("image size {width}x{height} is outside 1 to {MAX_SIDE} pixels per side");
    }
    Ok(())
}

fn decode_png(bytes: &[u8]) -> anyhow::Result<RgbImage> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // Palette → RGB(A), low bit depths → 8 bits, 16 bits → 8 bits.
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let (w, h) = {
        let info = reader.info();
        (info.width as usize, info.height as usize)
    };
    check_size(w, h)?;
    let size = reader
        .output_buffer_size()
        .context("image too large to decode")?;
    let mut buf = vec![0u8; size];
    let frame = reader.next_frame(&mut buf)?;
    let data = buf.get(..frame.buffer_size()).context("short PNG frame")?;
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => bail!("palette PNG was not expanded"),
    };
    if frame.bit_depth != png::BitDepth::Eight {
        bail!("unsupported PNG bit depth {:?}", frame.bit_depth);
    }
    let line = frame.line_size;
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in data.chunks_exact(line).take(h) {
        for px in row.chunks_exact(channels).take(w) {
            match channels {
                1 | 2 => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    }
    if rgb.len() != w * h * 3 {
        bail!("PNG holds fewer pixels than its header says");
    }
    Ok(RgbImage {
        width: w,
        height: h,
        rgb,
    })
}

fn decode_jpeg(bytes: &[u8]) -> anyhow::Result<RgbImage> {
    use zune_jpeg::zune_core::colorspace::ColorSpace;
    use zune_jpeg::zune_core::options::DecoderOptions;
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(MAX_SIDE)
        .set_max_height(MAX_SIDE);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(bytes, options);
    let rgb = decoder
        .decode()
        .map_err(|e| anyhow::anyhow!("invalid JPEG: {e:?}"))?;
    let (w, h) = decoder.dimensions().context("JPEG without dimensions")?;
    check_size(w, h)?;
    if decoder.get_output_colorspace() != Some(ColorSpace::RGB) || rgb.len() != w * h * 3 {
        bail!("JPEG did not decode to {w}x{h} RGB");
    }
    Ok(RgbImage {
        width: w,
        height: h,
        rgb,
    })
}

/// Writes a 0/255 grayscale PNG.
pub fn write_mask(path: &Path, width: usize, height: usize, mask: &[u8]) -> anyhow::Result<()> {
    let (w, h) = (u32::try_from(width)?, u32::try_from(height)?);
    crate::synth::write_png(path, w, h, png::ColorType::Grayscale, mask)
}
