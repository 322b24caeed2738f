//! The client side of video, as `venue-edge` subcommands: `video-file` receives a
//! camera's `video` chunks over zenoh and writes a playable MP4 (plus, on request,
//! the Annex-B stream and a per-frame index of capture sequence and time); `clip`
//! and `snapshot` query a box for a clip or a JPEG.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use venue_drivers::PixelFormat;
use venue_drivers::gst::encode::mux::{MuxUnit, mp4};
use venue_proto::{AccessUnit, Clip, Thumbnail, VideoChunk, VideoCodec};

use crate::ask::{open, query, write};

/// What `video-file` writes.
#[derive(Debug, Clone)]
pub struct VideoFileArgs {
    pub connect: Vec<String>,
    /// `venue/{venue}/{box}/{camera}/video`, with `*` for unknown chunks.
    pub key: String,
    /// Stop after this many frames…
    pub frames: Option<u64>,
    /// …or after this long.
    pub duration: Duration,
    pub out: PathBuf,
    pub annexb: Option<PathBuf>,
    pub index: Option<PathBuf>,
}

/// A gap-free run of chunks from one incarnation, starting at a keyframe.
#[derive(Debug, Default)]
pub struct Assembler {
    /// (incarnation, next seq) once the first chunk is taken.
    next: Option<(u64, u64)>,
    pub codec: Option<VideoCodec>,
    pub size: (u32, u32),
    pub fps: u32,
    pub units: Vec<AccessUnit>,
}

impl Assembler {
    /// Takes `chunk` if it continues the run (copies and chunks ahead of a missing
    /// one are skipped: the box resends them in order). Returns whether it was taken.
    pub fn push(&mut self, chunk: VideoChunk) -> bool {
        let h = &chunk.header;
        match self.next {
            None => {
                if !chunk.units.first().is_some_and(|u| u.keyframe) {
                    return false;
                }
                self.codec = Some(chunk.codec);
                self.size = (chunk.width, chunk.height);
                self.fps = u32::from(h.timecode.rate).max(1);
            }
            Some((inc, next)) if inc == h.incarnation && h.seq == next => {
                if Some(chunk.codec) != self.codec || (chunk.width, chunk.height) != self.size {
                    return false;
                }
            }
            Some(_) => return false,
        }
        self.next = Some((h.incarnation, h.seq + 1));
        self.units.extend(chunk.units);
        true
    }

    /// The MP4 of the units received (times from the capture sequence at the
    /// nominal rate, so dropped frames leave gaps in time).
    pub fn mp4(&self, limit: usize) -> anyhow::Result<Vec<u8>> {
        let units = &self.units[..limit.min(self.units.len())];
        let first = units.first().map_or(0, |u| u.frame_seq);
        let period = 1_000_000_000u128 / u128::from(self.fps.max(1));
        let mux: Vec<MuxUnit<'_>> = units
            .iter()
            .map(|u| MuxUnit {
                pts_ns: (u128::from(u.frame_seq.saturating_sub(first)) * period) as u64,
                keyframe: u.keyframe,
                data: &u.data,
            })
            .collect();
        let codec = match self.codec {
            Some(VideoCodec::H265) => PixelFormat::H265,
            _ => PixelFormat::H264,
        };
        Ok(mp4(codec, self.fps, &mux)?)
    }
}

/// `venue-edge video-file`: receives chunks until enough frames (or time) and
/// writes the files.
pub async fn video_file(args: VideoFileArgs) -> anyhow::Result<()> {
    let session = open(args.connect.clone()).await?;
    let sub = session
        .declare_subscriber(&args.key)
        .await
        .map_err(|e| anyhow::anyhow!("invalid key expression {:?}: {e}", args.key))?;
    let mut asm = Assembler::default();
    let deadline = Instant::now() + args.duration;
    let mut rejected = 0u64;
    while args.frames.is_none_or(|n| (asm.units.len() as u64) < n) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(Ok(sample)) = tokio::time::timeout(left, sub.recv_async()).await else {
            break;
        };
        match venue_proto::decode::<VideoChunk>(&sample.payload().to_bytes()) {
            Ok(chunk) => {
                asm.push(chunk);
            }
            Err(_) => rejected += 1,
        }
    }
    let _ = session.close().await;
    if asm.units.is_empty() {
        bail!(
            "no video received on {} ({} undecodable messages); is the box encoding ([video] encoder) and reachable?",
            args.key,
            rejected
        );
    }
    let n = args
        .frames
        .map_or(asm.units.len(), |f| f as usize)
        .min(asm.units.len());
    let file = asm.mp4(n)?;
    write(&args.out, &file)?;
    let units = &asm.units[..n];
    if let Some(path) = &args.annexb {
        let bytes: Vec<u8> = units.iter().flat_map(|u| u.data.iter().copied()).collect();
        write(path, &bytes)?;
    }
    if let Some(path) = &args.index {
        let mut text = String::from("frame\tframe_seq\tcapture_ns\tkeyframe\n");
        for (i, u) in units.iter().enumerate() {
            text.push_str(&format!(
                "{i}\t{}\t{}\t{}\n",
                u.frame_seq, u.capture_ns, u.keyframe
            ));
        }
        write(path, text.as_bytes())?;
    }
    let (first, last) = (units[0].frame_seq, units[n - 1].frame_seq);
    println!(
        "wrote {}: {n} frames (frame_seq {first}..={last}), {}x{} at {} fps, {} bytes",
        args.out.display(),
        asm.size.0,
        asm.size.1,
        asm.fps,
        file.len()
    );
    Ok(())
}

/// `venue-edge clip`: asks for an event's clip or a time range and writes the MP4.
pub async fn clip(
    connect: Vec<String>,
    key: &str,
    params: &str,
    out: &Path,
) -> anyhow::Result<Clip> {
    let bytes = query(connect, &format!("{key}?{params}"), Duration::from_secs(30)).await?;
    let clip: Clip = venue_proto::decode(&bytes).context("the reply is not a clip message")?;
    write(out, &clip.mp4)?;
    println!(
        "wrote {}: {} frames from frame_seq {} ({}x{}), {} bytes",
        out.display(),
        clip.frames,
        clip.first_frame_seq,
        clip.width,
        clip.height,
        clip.mp4.len()
    );
    Ok(clip)
}

/// `venue-edge snapshot`: asks for a camera's next frame and writes the JPEG.
pub async fn snapshot(connect: Vec<String>, key: &str, out: &Path) -> anyhow::Result<Thumbnail> {
    let bytes = query(connect, key, Duration::from_secs(10)).await?;
    let t: Thumbnail =
        venue_proto::decode(&bytes).context("the reply is not a snapshot message")?;
    write(out, &t.image)?;
    println!(
        "wrote {}: frame_seq {}, {}x{} JPEG",
        out.display(),
        t.frame_seq,
        t.width,
        t.height
    );
    Ok(t)
}
