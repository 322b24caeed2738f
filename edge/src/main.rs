//! The `venue-edge` command line: run the daemon, check a config, print the default
//! config, tail the wire, render synthetic venue scenes with ground truth.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use venue_drivers::{Scene, SystemClock};
use venue_edge::config;
use venue_edge::daemon::{self, ConfigSource};

#[derive(Debug, Parser)]
#[command(name = "venue-edge", version, about = "Venue Edge box daemon")]
struct Cli {
    /// Log filter when RUST_LOG is unset (e.g. "info", "debug,zenoh=info").
    #[arg(long, global = true, default_value = "info,zenoh=warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the box. Without --config, runs the embedded default: two synthetic
    /// cameras publishing on zenoh at tcp/127.0.0.1:7447.
    Run {
        /// Configuration file (TOML); see `venue-edge default-config`.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and explain every error (file:line:column).
    CheckConfig {
        /// Configuration file to check.
        file: PathBuf,
    },
    /// Print the embedded default configuration, every key commented.
    DefaultConfig,
    /// List the V4L2 cameras on this box with their formats, sizes and frame rates.
    Cameras,
    /// Subscribe and print each message as one JSON line.
    Tail {
        /// Key expression to subscribe to.
        #[arg(long, short, default_value = venue_proto::key::ALL)]
        key: String,
        /// Zenoh endpoint of the box (or a router) to connect to.
        #[arg(long, default_value = "tcp/127.0.0.1:7447")]
        connect: Vec<String>,
        /// Stop after this many messages.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Also print copies the box resends while no one acknowledges them.
        #[arg(long)]
        resends: bool,
    },
    /// Render a synthetic venue scene to DIR: frame_NNNNNN.png (RGB),
    /// mask_NNNNNN.png (athlete mask, 0/255) and truth.json (boxes, ids, key moments).
    Synth {
        /// Which venue to render.
        #[arg(long, value_enum)]
        scene: SceneArg,
        /// Same seed, same frames and truth.
        #[arg(long)]
        seed: u64,
        /// Number of frames to render.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        frames: u64,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Frame width in pixels (even, 16-8192).
        #[arg(long, default_value_t = 1280, value_parser = even_size)]
        width: u32,
        /// Frame height in pixels (even, 16-8192).
        #[arg(long, default_value_t = 720, value_parser = even_size)]
        height: u32,
        /// Frames per second of the scene's clock.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=240))]
        fps: u32,
        /// Athletes in the scene at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=64))]
        athletes: u32,
    },
    /// Segment one still image (PNG or JPEG): write a 0/255 athlete mask of the same size.
    Segment {
        /// The image to segment.
        image: PathBuf,
        /// Where to write the mask (PNG).
        #[arg(long)]
        out: PathBuf,
        /// A model directory (manifest.toml + model.onnx); default: the embedded reference model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Score tagging against the synthetic camera's ground truth: capture →
    /// segmentation → tagging, then tracking (MOTA, IDF1) and key-moment
    /// precision/recall with timing errors, one labelled figure per line.
    Eval {
        /// Which venue to render.
        #[arg(long, value_enum)]
        scene: SceneArg,
        /// Seeds: a list (1,2,3), a range (1..10, inclusive) or both.
        #[arg(long, value_parser = parse_seeds)]
        seeds: SeedList,
        /// Frames per seed.
        #[arg(long, default_value_t = 450, value_parser = clap::value_parser!(u64).range(10..=100_000))]
        frames: u64,
        /// Frame width in pixels (even, 16-8192).
        #[arg(long, default_value_t = 256, value_parser = even_size)]
        width: u32,
        /// Frame height in pixels (even, 16-8192).
        #[arg(long, default_value_t = 144, value_parser = even_size)]
        height: u32,
        /// Frames per second of the camera (the scene moves in seconds: fewer frames
        /// per second, more motion between them).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=120))]
        fps: u32,
        /// Athletes in the scene at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        athletes: u32,
        /// Tag the true masks instead of the model's (scores the tagger alone).
        #[arg(long)]
        truth_masks: bool,
        /// With --truth-masks: clear the pixels where two athletes touch, each
        /// athlete a blob of its own (what telling touching athletes apart in
        /// segmentation would be worth to the tagger).
        #[arg(long, requires = "truth_masks")]
        truth_seams: bool,
        /// Keep the model's masks in this directory and reuse them when the same
        /// sequence is evaluated again (tuning the tagger without re-running the model).
        #[arg(long, conflicts_with = "truth_masks")]
        mask_cache: Option<PathBuf>,
        /// Largest timing error (frames) for a moment to count as found.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=300))]
        window: u64,
        /// Where the model runs: `tract` (built in) or `onnxruntime` (TensorRT → CUDA
        /// → CPU; the library from --ort-library or $ORT_DYLIB_PATH).
        #[arg(long, value_enum, default_value_t = BackendArg::Tract)]
        backend: BackendArg,
        /// The ONNX Runtime shared library, for --backend onnxruntime.
        #[arg(long)]
        ort_library: Option<PathBuf>,
    },
    /// Receive a camera's video chunks and write a playable MP4 (from the first
    /// keyframe received), optionally the Annex-B stream and a per-frame index
    /// (frame, frame_seq, capture_ns, keyframe) that lines the file up with metadata.
    VideoFile {
        #[command(flatten)]
        camera: CameraArgs,
        /// Stop after this many frames.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        frames: Option<u64>,
        /// Stop after this many seconds (default 10, or unlimited with --frames).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        seconds: Option<u64>,
        /// The MP4 to write.
        #[arg(long)]
        out: PathBuf,
        /// Also write the access units as an Annex-B elementary stream.
        #[arg(long)]
        annexb: Option<PathBuf>,
        /// Also write a tab-separated index: frame, frame_seq, capture_ns, keyframe.
        #[arg(long)]
        index: Option<PathBuf>,
    },
    /// Ask a box for an MP4 clip: a key-moment event's (--event) or any time range
    /// still in its pre-roll ring (--start-ns/--end-ns, Unix ns).
    Clip {
        #[command(flatten)]
        camera: CameraArgs,
        /// The event id.
        #[arg(long, conflicts_with_all = ["start_ns", "end_ns"], required_unless_present = "start_ns")]
        event: Option<u64>,
        #[arg(long, requires = "end_ns")]
        start_ns: Option<u64>,
        #[arg(long, requires = "start_ns")]
        end_ns: Option<u64>,
        /// The MP4 to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Ask a box for a strobe composite of a track over a time span (Unix ns) still
    /// held by the camera's tagger (about the longest jump airtime plus a second).
    Composite {
        #[command(flatten)]
        camera: CameraArgs,
        /// The athlete's track id (from the events or the metadata).
        #[arg(long)]
        track: u64,
        #[arg(long)]
        start_ns: u64,
        #[arg(long)]
        end_ns: u64,
        /// The PNG to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Ask a box for a camera's next frame as a full-size JPEG.
    Snapshot {
        #[command(flatten)]
        camera: CameraArgs,
        /// The JPEG to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Which camera of which box, and where to reach it.
#[derive(Debug, clap::Args)]
struct CameraArgs {
    /// Camera id.
    #[arg(long)]
    camera: String,
    /// Venue id (default: any).
    #[arg(long, default_value = "*")]
    venue: String,
    /// Box id (default: any).
    #[arg(long = "box", default_value = "*")]
    box_id: String,
    /// Zenoh endpoint of the box (or a router) to connect to.
    #[arg(long, default_value = "tcp/127.0.0.1:7447")]
    connect: Vec<String>,
}

#[cfg_attr(not(feature = "gstreamer"), allow(dead_code))]
impl CameraArgs {
    /// The camera's key for `what`, after checking each id names one chunk.
    fn key(&self, what: &str) -> anyhow::Result<String> {
        for (name, v) in [
            ("camera", &self.camera),
            ("venue", &self.venue),
            ("box", &self.box_id),
        ] {
            if v != "*" && venue_proto::Id::new(v.as_str()).is_err() {
                anyhow::bail!("--{name} {v:?} is not a valid id");
            }
        }
        Ok(format!(
            "venue/{}/{}/{}/{what}",
            self.venue, self.box_id, self.camera
        ))
    }

    /// Runs a client command against the camera's `what` queryable: `ask` gets the
    /// endpoints to connect to and the key; its error is reported.
    fn ask<T, F>(&self, what: &str, ask: impl FnOnce(Vec<String>, String) -> F) -> ExitCode
    where
        F: Future<Output = anyhow::Result<T>>,
    {
        init_logging("warn", true);
        let result = self.key(what).and_then(|key| {
            runtime()?
                .block_on(ask(self.connect.clone(), key))
                .map(|_| ())
        });
        report(result)
    }
}

/// Parsed `--seeds`.
#[derive(Debug, Clone)]
struct SeedList(Vec<u64>);

fn parse_seeds(s: &str) -> Result<SeedList, String> {
    venue_edge::eval::parse_seeds(s).map(SeedList)
}

/// Inference backends `eval` can run the model on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BackendArg {
    Tract,
    Onnxruntime,
}

impl BackendArg {
    fn choice(self, ort_library: Option<PathBuf>) -> anyhow::Result<venue_models::BackendChoice> {
        match self {
            BackendArg::Tract if ort_library.is_some() => {
                anyhow::bail!("--ort-library is for --backend onnxruntime")
            }
            BackendArg::Tract => Ok(venue_models::BackendChoice::default()),
            #[cfg(feature = "onnxruntime")]
            BackendArg::Onnxruntime => Ok(venue_models::BackendChoice::OnnxRuntime(
                venue_models::OrtOptions {
                    library: ort_library,
                    ..venue_models::OrtOptions::default()
                },
            )),
            #[cfg(not(feature = "onnxruntime"))]
            BackendArg::Onnxruntime => {
                anyhow::bail!("this build has no ONNX Runtime backend (feature `onnxruntime`)")
            }
        }
    }
}

/// Scenes the synthetic venue camera can render.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SceneArg {
    Rink,
    Slope,
}

impl From<SceneArg> for Scene {
    fn from(s: SceneArg) -> Self {
        match s {
            SceneArg::Rink => Scene::Rink,
            SceneArg::Slope => Scene::Slope,
        }
    }
}

/// A frame dimension: NV12 needs it even.
fn even_size(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number of pixels"))?;
    if !(16..=8192).contains(&v) || !v.is_multiple_of(2) {
        return Err(format!("{v} must be an even number from 16 to 8192"));
    }
    Ok(v)
}

/// The daemon logs to stdout (or journald); tools that print data on stdout, such
/// as `tail`, log to stderr so the two never mix.
fn init_logging(default_filter: &str, to_stderr: bool) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // systemd sets JOURNAL_STREAM when stdout/stderr go to the journal: log natively
    // there (structured fields survive), otherwise to stdout.
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .init();
        return;
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if to_stderr {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        builder.with_ansi(ansi).with_writer(std::io::stderr).init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        builder.with_ansi(ansi).with_writer(std::io::stdout).init();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("venue-edge")
        .build()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_TOML);
            ExitCode::SUCCESS
        }
        Command::Cameras => report(venue_edge::cameras::run(&mut std::io::stdout().lock())),
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} cameras, venue {}, box {})",
                    file.display(),
                    cfg.cameras.len(),
                    cfg.venue,
                    cfg.box_id
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                eprintln!("{}: {} error(s)", file.display(), errors.0.len());
                ExitCode::from(1)
            }
        },
        Command::Tail {
            key,
            connect,
            count,
            resends,
        } => {
            init_logging("warn", true);
            let result = runtime()
                .and_then(|rt| rt.block_on(venue_edge::tail::tail(connect, &key, count, resends)));
            report(result)
        }
        #[cfg(feature = "gstreamer")]
        Command::VideoFile {
            camera,
            frames,
            seconds,
            out,
            annexb,
            index,
        } => {
            init_logging("warn", true);
            let result = camera.key("video").and_then(|key| {
                let args = venue_edge::video::client::VideoFileArgs {
                    connect: camera.connect.clone(),
                    key,
                    frames,
                    duration: Duration::from_secs(seconds.unwrap_or(if frames.is_some() {
                        86_400
                    } else {
                        10
                    })),
                    out,
                    annexb,
                    index,
                };
                runtime()?.block_on(venue_edge::video::client::video_file(args))
            });
            report(result)
        }
        #[cfg(feature = "gstreamer")]
        Command::Clip {
            camera,
            event,
            start_ns,
            end_ns,
            out,
        } => {
            let params = match (event, start_ns, end_ns) {
                (Some(id), _, _) => format!("event={id}"),
                (None, Some(a), Some(b)) => format!("start_ns={a};end_ns={b}"),
                _ => String::new(),
            };
            camera.ask("clip", |connect, key| async move {
                venue_edge::video::client::clip(connect, &key, &params, &out).await
            })
        }
        #[cfg(feature = "gstreamer")]
        Command::Snapshot { camera, out } => camera.ask("snapshot", |connect, key| async move {
            venue_edge::video::client::snapshot(connect, &key, &out).await
        }),
        Command::Composite {
            camera,
            track,
            start_ns,
            end_ns,
            out,
        } => {
            let params = format!("track={track};start_ns={start_ns};end_ns={end_ns}");
            camera.ask("composite", |connect, key| async move {
                venue_edge::ask::composite(connect, &key, &params, &out).await
            })
        }
        #[cfg(not(feature = "gstreamer"))]
        Command::VideoFile { .. } | Command::Clip { .. } | Command::Snapshot { .. } => {
            eprintln!(
                "error: this build has no GStreamer support (feature \"gstreamer\"), which video needs"
            );
            ExitCode::from(1)
        }
        Command::Synth {
            scene,
            seed,
            frames,
            out,
            width,
            height,
            fps,
            athletes,
        } => report(venue_edge::synth::run(&venue_edge::synth::SynthArgs {
            scene: scene.into(),
            seed,
            frames,
            out,
            width,
            height,
            fps,
            athletes,
        })),
        Command::Segment { image, out, model } => report(venue_edge::segment::run(
            &venue_edge::segment::SegmentArgs { image, out, model },
        )),
        Command::Eval {
            scene,
            seeds,
            frames,
            width,
            height,
            athletes,
            fps,
            truth_masks,
            truth_seams,
            mask_cache,
            window,
            backend,
            ort_library,
        } => {
            // Logs (a mask cache that cannot be written, the per-moment misses at
            // debug) go to stderr: stdout is the report.
            init_logging(&cli.log, true);
            let backend = match backend.choice(ort_library) {
                Ok(b) => b,
                Err(e) => return report(Err(e)),
            };
            let args = venue_edge::eval::EvalArgs {
                scene: scene.into(),
                seeds: seeds.0,
                frames,
                width,
                height,
                fps,
                athletes,
                truth_masks,
                truth_seams,
                mask_cache,
                window,
                backend,
                ..venue_edge::eval::EvalArgs::default()
            };
            report(venue_edge::eval::run(&args).map(|r| print!("{r}")))
        }
        Command::Run { config: path } => {
            init_logging(&cli.log, false);
            // Before any thread starts: large blocks in their own mappings keep
            // the resident size flat over days of clips.
            match venue_edge::allocator::tune() {
                venue_edge::allocator::Tuned::Refused => {
                    tracing::warn!("the allocator refused a fixed mmap threshold")
                }
                tuned => tracing::debug!(?tuned, "allocator"),
            }
            let source = path.map_or(ConfigSource::Embedded, ConfigSource::File);
            let cfg = match source.load() {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("{errors}");
                    eprintln!(
                        "venue-edge: the configuration has {} error(s); not starting",
                        errors.0.len()
                    );
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => return report(Err(e)),
            };
            let result = rt.block_on(async {
                let shutdown = CancellationToken::new();
                let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
                listen_for_signals(shutdown.clone(), reload_tx)?;
                daemon::run(
                    cfg,
                    source,
                    Arc::new(SystemClock::new()),
                    shutdown,
                    reload_rx,
                )
                .await
            });
            // Do not wait on background work of libraries once we are done.
            rt.shutdown_timeout(Duration::from_millis(200));
            report(result)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("venue-edge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM/SIGINT cancel `shutdown`; SIGHUP asks for a reload.
fn listen_for_signals(
    shutdown: CancellationToken,
    reload: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received"); shutdown.cancel(); }
                _ = int.recv() => { tracing::info!("SIGINT received"); shutdown.cancel(); }
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the configuration");
                    // A reload already pending covers this one too.
                    let _ = reload.try_send(());
                }
            }
        }
    });
    Ok(())
}
