//! The `tag` stage of a camera pipeline (its own thread, between `analyze` and
//! `spool`): waits for each frame's mask in capture order, runs the camera's
//! [`Tagger`] on segmented frames, and hands the frame with its detections, events
//! and thumbnail to `spool`. Strobe composites (tens of milliseconds each) are
//! rendered by a `strobe` thread of their own ([`compose_loop`]), so a jump's
//! picture never holds up the events of the frame it ended on; that thread also
//! answers composite requests ([`StrobeRequests`]). Also turns all of it into wire
//! records.

use std::sync::mpsc::{Receiver, SyncSender};

use tokio::sync::{mpsc, oneshot};
use venue_proto::{Detection, FrameStats, ImageFormat, MaskRle};

use crate::config::CameraConfig;
use crate::inference::{Outcome, Segmented, preview_size};
use crate::tagging::{
    CameraInfo, Composite, CompositeJob, EventUpdate, Pixels, TagInput, TagOutput, Tagger,
    TaggingConfig, TaggingError, Thumbnail,
};

/// What `analyze` knows of a frame.
#[derive(Debug)]
pub struct FrameInfo {
    pub frame_seq: u64,
    pub capture_ns: u64,
    /// The capture's SMPTE timecode, as the source stamped it.
    pub timecode: venue_proto::Timecode,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub stats: FrameStats,
}

/// A frame leaving `tag`: its mask and what the tagger made of it. Items without
/// a frame carry composites rendered after their frame, or (last of a pipeline
/// run) the events of the tracks it ended.
#[derive(Debug, Default)]
pub struct Tagged {
    pub frame: Option<FrameInfo>,
    /// Capture time (Unix ns) and rate to stamp the records of an item without a
    /// frame: those of the frame its composites belong to. `None`: now.
    pub stamp: Option<(u64, u32)>,
    pub mask: Option<MaskRle>,
    pub detections: Vec<Detection>,
    pub events: Vec<EventUpdate>,
    pub composites: Vec<Composite>,
    pub thumbnail: Option<Thumbnail>,
}

/// A strobe composite asked for over the wire: `track` from `start_ns` to `end_ns`.
#[derive(Debug)]
pub struct StrobeRequest {
    pub track: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub reply: oneshot::Sender<Result<Composite, String>>,
}

/// Composite requests waiting for a camera's `tag` thread (which owns the frames a
/// composite is cut from); alive across pipeline runs. After each frame it tags,
/// that thread picks the requests' frames, and the `strobe` thread renders them.
#[derive(Debug, Default)]
pub struct StrobeRequests {
    waiting: std::sync::Mutex<Vec<StrobeRequest>>,
}

impl StrobeRequests {
    /// Queues a request; the answer comes with the camera's next tagged frame.
    pub fn ask(
        &self,
        track: u64,
        start_ns: u64,
        end_ns: u64,
    ) -> oneshot::Receiver<Result<Composite, String>> {
        let (reply, rx) = oneshot::channel();
        self.lock().push(StrobeRequest {
            track,
            start_ns,
            end_ns,
            reply,
        });
        rx
    }

    /// Picks the frames for every waiting request from `tagger` and queues them
    /// for the `strobe` thread (or says why it cannot).
    pub fn answer(&self, tagger: Option<&CameraTagger>, compose: &SyncSender<Compose>) {
        let waiting = std::mem::take(&mut *self.lock());
        for r in waiting {
            let job = match tagger {
                Some(t) => t
                    .strobe(r.track, r.start_ns, r.end_ns)
                    .map_err(|e| e.to_string()),
                None => {
                    Err("this camera is not tagged (inference_fps = 0 or [tagging] off)".into())
                }
            };
            match job {
                // A `strobe` thread gone drops the reply: the asker hears no answer.
                Ok(job) => {
                    let _ = compose.send(Compose::Asked {
                        job,
                        reply: r.reply,
                    });
                }
                Err(why) => {
                    let _ = r.reply.send(Err(why));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<StrobeRequest>> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a frame's mask arrives at `tag`.
pub type PendingMask = oneshot::Receiver<Outcome>;

/// A camera's tagger, fed segmented frames at the preview's size and reporting in
/// the frame's pixels. It is built for the configured frame size and rebuilt when
/// frames arrive at another size (a network feed sends its stream's own size).
#[derive(Debug)]
pub struct CameraTagger {
    tagger: Tagger,
    config: TaggingConfig,
    fps: u32,
    /// First event id of the current tagger; a rebuild moves past its ids.
    first_event_id: u64,
    preview: (u32, u32),
    /// The frame size the tagger is built for, and frame pixels per preview pixel.
    frame: (u32, u32),
    scale: (f32, f32),
}

/// Event ids one tagger may hand out before a rebuild starts past them.
const IDS_PER_TAGGER: u64 = 1 << 16;

impl CameraTagger {
    /// A tagger for `cam`, which segments `cam.inference_fps` frames a second.
    /// `first_event_id` must grow between runs (event ids are unique per camera).
    pub fn new(
        config: &TaggingConfig,
        cam: &CameraConfig,
        first_event_id: u64,
    ) -> Result<CameraTagger, TaggingError> {
        Self::build(
            config,
            cam.inference_fps.max(1),
            (cam.width, cam.height),
            first_event_id,
        )
    }

    fn build(
        config: &TaggingConfig,
        fps: u32,
        frame: (u32, u32),
        first_event_id: u64,
    ) -> Result<CameraTagger, TaggingError> {
        let preview = preview_size(frame.0, frame.1, Self::preview_width_for(config));
        let tagger = Tagger::new(
            config,
            CameraInfo {
                width: preview.0,
                height: preview.1,
                fps,
                first_event_id,
            },
        )?;
        Ok(CameraTagger {
            tagger,
            config: config.clone(),
            fps,
            first_event_id,
            preview,
            frame,
            scale: (
                frame.0 as f32 / preview.0 as f32,
                frame.1 as f32 / preview.1 as f32,
            ),
        })
    }

    /// Width of the frame copy the tagger needs: the larger of the composite and
    /// the thumbnail.
    pub fn preview_width_for(config: &TaggingConfig) -> u32 {
        config.strobe_width.max(config.thumbnail_width)
    }

    /// The preview width to ask the inference workers for.
    pub fn preview_width(&self) -> u32 {
        Self::preview_width_for(&self.config)
    }

    /// Frames of `width`×`height` from now on: a new tagger when the size changed
    /// (open tracks end; their events are returned).
    pub fn resize(&mut self, width: u32, height: u32) -> Result<Vec<EventUpdate>, TaggingError> {
        if (width, height) == self.frame {
            return Ok(Vec::new());
        }
        let ended = self.tagger.finish();
        *self = Self::build(
            &self.config,
            self.fps,
            (width, height),
            self.first_event_id + IDS_PER_TAGGER,
        )?;
        Ok(ended)
    }

    /// Tags one segmented frame.
    pub fn push(&mut self, capture_ns: u64, s: &Segmented) -> Result<TagOutput, TaggingError> {
        let pixels = s
            .preview
            .as_ref()
            .filter(|p| (p.width, p.height) == self.preview)
            .map(|p| Pixels::Rgb(&p.rgb));
        let mut out = self.tagger.push(TagInput {
            capture_ns,
            mask: &s.mask,
            mask_width: s.rle.width as usize,
            mask_height: s.rle.height as usize,
            pixels,
        })?;
        let (sx, sy) = self.scale;
        let (fw, fh) = self.frame;
        // Scale both corners, so rounding never pushes a box past the frame.
        let scale = |v: u32, k: f32, max: u32| ((v as f32 * k).round() as u32).min(max);
        for d in &mut out.detections {
            let (x0, y0) = (scale(d.bbox.x, sx, fw), scale(d.bbox.y, sy, fh));
            let x1 = scale(d.bbox.x + d.bbox.w, sx, fw);
            let y1 = scale(d.bbox.y + d.bbox.h, sy, fh);
            d.bbox.x = x0;
            d.bbox.y = y0;
            d.bbox.w = x1 - x0;
            d.bbox.h = y1 - y0;
            d.area_px = (d.area_px as f32 * sx * sy).round() as u32;
        }
        Ok(out)
    }

    /// Ends every track (the pipeline stops): the events that closes.
    pub fn finish(&mut self) -> Vec<EventUpdate> {
        self.tagger.finish()
    }

    /// A strobe composite of `track` over a span of the frames still held (see
    /// [`Tagger::strobe`]), in the preview's pixels like automatic ones.
    pub fn strobe(
        &self,
        track: u64,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<CompositeJob, TaggingError> {
        self.tagger.strobe(track, start_ns, end_ns)
    }
}

/// Counters the stage reports into (the camera's `infer` and `tag` stages).
#[derive(Debug)]
pub struct TagCounters<'a> {
    pub infer_out: &'a prometheus_client::metrics::counter::Counter,
    pub infer_errors: &'a prometheus_client::metrics::counter::Counter,
    pub tag_in: &'a prometheus_client::metrics::counter::Counter,
    pub tag_out: &'a prometheus_client::metrics::counter::Counter,
    pub tag_errors: &'a prometheus_client::metrics::counter::Counter,
}

/// Resolves a frame's mask and tags it: the frame for `spool`, and the composites
/// of jumps it ended, to render.
pub fn tag_frame(
    frame: FrameInfo,
    pending: Option<PendingMask>,
    tagger: Option<&mut CameraTagger>,
    counters: &TagCounters<'_>,
    last_error: &mut String,
) -> (Tagged, Vec<CompositeJob>) {
    let segmented = match pending.map(oneshot::Receiver::blocking_recv) {
        None => None,
        Some(Ok(Outcome::Mask(s))) => {
            counters.infer_out.inc();
            Some(s)
        }
        // Counted as dropped by `analyze` when a newer frame replaced it.
        Some(Ok(Outcome::Busy)) => None,
        Some(Ok(Outcome::Failed(_)) | Err(_)) => {
            counters.infer_errors.inc();
            None
        }
    };
    let mut tagged = Tagged::default();
    let mut jobs = Vec::new();
    if let (Some(tagger), Some(s)) = (tagger, segmented.as_ref()) {
        counters.tag_in.inc();
        let resized = tagger.resize(frame.width, frame.height);
        match resized.and_then(|ended| tagger.push(frame.capture_ns, s).map(|out| (ended, out))) {
            Ok((mut ended, out)) => {
                counters.tag_out.inc();
                tagged.detections = out.detections;
                ended.extend(out.events);
                tagged.events = ended;
                jobs = out.composites;
                tagged.thumbnail = out.thumbnail;
            }
            Err(e) => {
                counters.tag_errors.inc();
                let e = e.to_string();
                if e != *last_error {
                    tracing::warn!(error = %e, "tagging failed for a frame");
                    *last_error = e;
                }
            }
        }
    }
    tagged.mask = segmented.map(|s| s.rle);
    tagged.frame = Some(frame);
    (tagged, jobs)
}

/// Work for a camera's `strobe` thread.
#[derive(Debug)]
pub enum Compose {
    /// The composite of a jump that ended on the frame captured at `capture_ns`:
    /// stored like that frame's records.
    Jump {
        job: CompositeJob,
        capture_ns: u64,
        fps: u32,
    },
    /// A composite asked for over the wire.
    Asked {
        job: CompositeJob,
        reply: oneshot::Sender<Result<Composite, String>>,
    },
}

/// Composites waiting for the `strobe` thread, at most. A thread this far behind
/// holds up tagging (back-pressure, as between the other stages) instead of
/// holding ever more frames.
pub const COMPOSE_QUEUE: usize = 8;

/// The `strobe` thread: renders composites in the order they were asked for and
/// hands jumps' to `spool` (after their frame, which `tag` sent first). Ends when
/// `tag` hangs up, or when `spool` has.
pub fn compose_loop(
    rx: &Receiver<Compose>,
    tx: &mpsc::Sender<Tagged>,
    errors: &prometheus_client::metrics::counter::Counter,
) {
    while let Ok(work) = rx.recv() {
        match work {
            Compose::Jump {
                job,
                capture_ns,
                fps,
            } => match job.render() {
                Ok(c) => {
                    let item = Tagged {
                        stamp: Some((capture_ns, fps)),
                        composites: vec![c],
                        ..Tagged::default()
                    };
                    if tx.blocking_send(item).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    errors.inc();
                    tracing::warn!(event_id = job.event_id(), %error, "strobe composite not made");
                }
            },
            Compose::Asked { job, reply } => {
                let _ = reply.send(job.render().map_err(|e| e.to_string()));
            }
        }
    }
}

/// The wire form of a composite.
pub fn composite_record(header: venue_proto::Header, c: &Composite) -> venue_proto::Composite {
    venue_proto::Composite {
        header,
        event_id: c.event_id,
        width: c.width,
        height: c.height,
        format: ImageFormat::Png,
        cutouts: c.cutouts.len() as u32,
        image: c.png.clone(),
    }
}

/// The wire form of a thumbnail.
pub fn thumbnail_record(
    header: venue_proto::Header,
    frame_seq: u64,
    t: &Thumbnail,
) -> venue_proto::Thumbnail {
    venue_proto::Thumbnail {
        header,
        frame_seq,
        width: t.width,
        height: t.height,
        format: ImageFormat::Jpeg,
        image: t.jpeg.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;
    use crate::config::SourceConfig;
    use crate::inference::Preview;
    use venue_proto::Id;

    fn camera(width: u32, height: u32) -> CameraConfig {
        CameraConfig {
            id: Id::new("c").unwrap(),
            width,
            height,
            fps: 10,
            inference_fps: 10,
            source: SourceConfig::Synthetic {
                scene: venue_drivers::Scene::Rink,
                seed: 1,
                athletes: 1,
                fail_after_frames: None,
            },
        }
    }

    /// A 256x144 mask with one athlete-sized blob, and a preview of `w`x`h`.
    fn segmented(w: u32, h: u32) -> Segmented {
        let (mw, mh) = (256usize, 144usize);
        let mut mask = vec![0u8; mw * mh];
        for y in 60..100 {
            for x in 200..215 {
                mask[y * mw + x] = 255;
            }
        }
        let (pw, ph) = preview_size(w, h, 512);
        Segmented {
            rle: MaskRle {
                width: mw as u32,
                height: mh as u32,
                runs: venue_models::rle::rle_encode(&mask),
            },
            mask,
            preview: Some(Preview {
                width: pw,
                height: ph,
                rgb: vec![90; (pw * ph * 3) as usize],
            }),
        }
    }

    #[test]
    fn the_strobe_thread_stamps_a_jumps_composite_with_its_frame_and_answers_requests() {
        let mut t = CameraTagger::new(&TaggingConfig::default(), &camera(1280, 720), 1).unwrap();
        let mut track = None;
        for i in 0..12u64 {
            let out = t.push(i * 100_000_000, &segmented(1280, 720)).unwrap();
            track = out.detections.iter().find_map(|d| d.track).or(track);
        }
        let track = track.expect("a confirmed track");
        let job = |t: &CameraTagger| t.strobe(track, 0, 1_100_000_000).expect("frames to cut");
        let (compose, jobs) = std::sync::mpsc::sync_channel(COMPOSE_QUEUE);
        let (reply, mut answer) = oneshot::channel();
        compose
            .send(Compose::Jump {
                job: job(&t),
                capture_ns: 1_234,
                fps: 10,
            })
            .unwrap();
        compose
            .send(Compose::Asked {
                job: job(&t),
                reply,
            })
            .unwrap();
        drop(compose);
        let (tx, mut rx) = mpsc::channel(4);
        let errors = prometheus_client::metrics::counter::Counter::default();
        // Ends once the queue is drained and the sender gone.
        compose_loop(&jobs, &tx, &errors);
        let item = rx.try_recv().expect("the jump's composite went to spool");
        assert!(item.frame.is_none() && item.events.is_empty());
        assert_eq!(item.stamp, Some((1_234, 10)));
        assert_eq!(item.composites.len(), 1);
        assert!(item.composites[0].png.starts_with(b"\x89PNG"));
        assert!(
            rx.try_recv().is_err(),
            "an asked-for composite is not spooled"
        );
        let asked = answer.try_recv().expect("answered").expect("a composite");
        assert_eq!(asked.cutouts.len(), 5);
        assert_eq!(errors.get(), 0);
    }

    #[test]
    fn detections_are_in_frame_pixels_and_follow_a_size_change() {
        let config = TaggingConfig::default();
        let mut t = CameraTagger::new(&config, &camera(1280, 720), 1 << 20).unwrap();
        let mut last = None;
        for i in 0..5u64 {
            let out = t
                .push(1_000 + i * 100_000_000, &segmented(1280, 720))
                .unwrap();
            last = out.detections.last().cloned().or(last);
        }
        // The blob spans mask x 200..215 of 256, y 60..100 of 144: in 1280x720 pixels.
        let d = last.expect("a detection");
        assert!((995..=1005).contains(&d.bbox.x), "{d:?}");
        assert!((295..=305).contains(&d.bbox.y), "{d:?}");
        assert!(d.bbox.x + d.bbox.w <= 1280 && d.bbox.y + d.bbox.h <= 720);
        // The feed switches to 640x360: a new tagger, boxes in the new size.
        assert!(t.resize(640, 360).is_ok());
        let mut last = None;
        for i in 5..10u64 {
            let out = t
                .push(1_000 + i * 100_000_000, &segmented(640, 360))
                .unwrap();
            last = out.detections.last().cloned().or(last);
        }
        let d = last.expect("a detection after the resize");
        assert!((495..=505).contains(&d.bbox.x), "{d:?}");
        assert!(d.bbox.x + d.bbox.w <= 640 && d.bbox.y + d.bbox.h <= 360);
    }
}
