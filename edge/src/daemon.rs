//! The daemon's lifetime: start every camera, reload on request, shut down cleanly.
//! `run(config, clock, shutdown)` takes time and shutdown from its caller.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use venue_drivers::Clock;
use venue_proto::{CameraState, Health, Id, StreamKind};

use crate::camera::{CameraHandle, Shared};
use crate::config::{self, Config};
use crate::delivery::Delivery;
use crate::inference::{self, Inference, InferenceConfig};
use crate::metrics::{self, Metrics};
use crate::mqtt::Mqtt;
use crate::spool::Spool;
use crate::uplink;

/// Cameras get this long to flush on shutdown before the daemon exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Where a reload reads its configuration from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    Embedded,
    File(PathBuf),
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, config::ConfigErrors> {
        match self {
            Self::Embedded => config::embedded_default(),
            Self::File(p) => config::load(p),
        }
    }
}

/// Runs the box until `shutdown` is cancelled. Each message on `reload` re-reads the
/// configuration from `source` through the same validation as start-up.
pub async fn run(
    config: Config,
    source: ConfigSource,
    clock: Arc<dyn Clock>,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = config.metrics.listen {
        let bound = metrics::serve(Arc::clone(&metrics), addr, shutdown.clone()).await?;
        info!(%bound, "metrics at http://{bound}/metrics");
    }
    let incarnation = clock.unix_ns();
    let (spool, recovery) = Spool::open(config.spool.clone(), incarnation).with_context(|| {
        format!(
            "cannot open the spool (change [spool] dir, now {})",
            config.spool.dir.display()
        )
    })?;
    let damaged =
        recovery.torn_bytes > 0 || recovery.lost_records > 0 || recovery.unreadable_files > 0;
    if damaged {
        warn!(
            ?recovery,
            "spool recovered with damage: intact records kept, losses counted in health"
        );
    } else {
        info!(records = recovery.records, streams = recovery.streams, elapsed_ms = recovery.elapsed.as_millis() as u64,
              dir = %config.spool.dir.display(), "spool opened");
    }
    metrics.spool_max_bytes.set(config.spool.max_bytes as i64);
    let committer_stop = CancellationToken::new();
    let committer = spool
        .spawn_committer(committer_stop.clone())
        .context("cannot start the spool committer")?;

    // The segmentation model, when a camera asks for inference: a model that cannot
    // be loaded stops the start-up with the reason, before anything is published.
    let inference = if config.cameras.iter().any(|c| c.inference_fps > 0) {
        Some(start_inference(&config.inference).await?)
    } else {
        None
    };

    let session = uplink::open(&config.zenoh).await?;
    info!(venue = %config.venue, r#box = %config.box_id, listen = ?config.zenoh.listen,
          connect = ?config.zenoh.connect, "zenoh session open");
    let mqtt = match &config.mqtt {
        Some(m) => Some(Arc::new(
            Mqtt::start(
                m,
                config.venue.clone(),
                config.box_id.clone(),
                Arc::clone(&metrics),
                spool.clone(),
                config.uplink.clone(),
                Arc::clone(&clock),
            )
            .map_err(|e| anyhow::anyhow!("cannot start the MQTT uplink: {e} (check [mqtt])"))?,
        )),
        None => None,
    };
    let delivery = Delivery::start(
        session.clone(),
        spool.clone(),
        config.venue.clone(),
        config.box_id.clone(),
        config.uplink.clone(),
        Arc::clone(&clock),
        Arc::clone(&metrics),
        mqtt.clone(),
    )
    .await?;

    let shared = Arc::new(Shared {
        venue: config.venue.clone(),
        box_id: config.box_id.clone(),
        session: session.clone(),
        metrics: Arc::clone(&metrics),
        clock: Arc::clone(&clock),
        health: config.health.clone(),
        pipeline: config.pipeline.clone(),
        incarnation: spool.incarnation(),
        spool: spool.clone(),
        delivery: Arc::clone(&delivery),
        mqtt: mqtt.clone(),
        inference: std::sync::Mutex::new(inference),
        tagging: config.tagging.clone(),
        video: config.video.clone(),
    });
    let cameras_cancel = CancellationToken::new();
    let mut cameras: BTreeMap<Id, CameraHandle> = BTreeMap::new();
    for cam in &config.cameras {
        cameras.insert(
            cam.id.clone(),
            CameraHandle::spawn(Arc::clone(&shared), cam.clone(), &cameras_cancel),
        );
    }
    let box_health = tokio::spawn(report_box_health(
        Arc::clone(&shared),
        cameras_cancel.clone(),
    ));
    let trimmer = config.allocator_trim.map(|every| {
        tokio::spawn(trim_allocator(
            every,
            Arc::clone(&shared.metrics),
            cameras_cancel.clone(),
        ))
    });
    info!(cameras = cameras.len(), "venue-edge running");

    let mut current = config;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = reload.recv() => {
                match source.load() {
                    Ok(next) => match reload_model(&shared, &current, &next).await {
                        Ok(()) => apply_reload(&shared, &mut current, next, &mut cameras, &cameras_cancel).await,
                        Err(error) => error!(error = %format!("{error:#}"), "config reload rejected: the segmentation model cannot be used; keeping the running configuration and model"),
                    },
                    Err(errors) => error!(errors = %errors, "config reload rejected; keeping the running configuration"),
                }
            }
        }
    }

    info!("shutting down: flushing camera pipelines");
    let stopping = async {
        let stops: Vec<_> = std::mem::take(&mut cameras)
            .into_values()
            .map(CameraHandle::stop)
            .collect();
        for stop in stops {
            stop.await;
        }
    };
    cameras_cancel.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, stopping)
        .await
        .is_err()
    {
        warn!(
            "cameras did not stop within {} ms; exiting anyway",
            SHUTDOWN_GRACE.as_millis()
        );
    }
    let _ = box_health.await;
    if let Some(trimmer) = trimmer {
        let _ = trimmer.await;
    }
    // Everything captured is in the spool now: make it durable, give the senders a
    // moment to publish the newest records, then stop. What the cloud has not
    // acknowledged is sent again at the next start.
    spool.commit();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mqtt_stop = async {
        if let Some(mqtt) = &mqtt {
            mqtt.shutdown(Duration::from_millis(200)).await;
        }
    };
    tokio::join!(delivery.stop(Duration::from_millis(200)), mqtt_stop);
    committer_stop.cancel();
    let _ = tokio::task::spawn_blocking(move || committer.join()).await;
    if let Err(error) = tokio::time::timeout(Duration::from_millis(300), session.close()).await {
        warn!(%error, "zenoh session did not close in time");
    }
    info!("venue-edge stopped");
    Ok(())
}

/// Loads and checks the configured model off the async workers, then starts the
/// inference workers on it.
async fn start_inference(config: &InferenceConfig) -> anyhow::Result<Arc<Inference>> {
    let cfg = config.clone();
    let prepared = tokio::task::spawn_blocking(move || inference::prepare(&cfg))
        .await
        .context("the model loader panicked")?
        .context("cannot load the segmentation model (check [inference] model and backend)")?;
    let pool =
        Inference::start(prepared, config.workers).context("cannot start the inference workers")?;
    Ok(Arc::new(pool))
}

/// The model side of a reload, before anything else changes: a changed model or
/// backend (or new model files in the same directory) is loaded and checked in the
/// background while the cameras run on, then swapped in atomically. A model that
/// fails is an error and nothing is changed.
async fn reload_model(shared: &Arc<Shared>, current: &Config, next: &Config) -> anyhow::Result<()> {
    let wanted = next.cameras.iter().any(|c| c.inference_fps > 0);
    let running = shared.inference.lock().ok().and_then(|i| i.clone());
    match running {
        None if wanted => {
            let pool = start_inference(&next.inference).await?;
            if let Ok(mut slot) = shared.inference.lock() {
                *slot = Some(pool);
            }
        }
        None => {}
        Some(pool) => {
            if next.inference.workers != current.inference.workers {
                warn!("inference.workers changed; it takes effect at the next restart");
            }
            let (installed, cfg) = (pool.installed(), next.inference.clone());
            let prepared = tokio::task::spawn_blocking(move || match installed {
                Some(m) if inference::same_model(&m, &cfg)? => Ok(None),
                _ => inference::prepare(&cfg).map(Some),
            })
            .await
            .context("the model loader panicked")?
            .context("cannot load the new segmentation model")?;
            if let Some(model) = prepared {
                pool.install(model);
            }
        }
    }
    Ok(())
}

/// Applies a reloaded configuration: cameras added, removed or changed start, stop
/// or restart alone; unchanged cameras keep running untouched. Settings that need a
/// new zenoh session or listener are reported and take effect at the next start.
async fn apply_reload(
    shared: &Arc<Shared>,
    current: &mut Config,
    next: Config,
    cameras: &mut BTreeMap<Id, CameraHandle>,
    parent: &CancellationToken,
) {
    let mut restart_needed = Vec::new();
    if next.venue != current.venue
        || next.box_id != current.box_id
        || next.allocator_trim != current.allocator_trim
    {
        restart_needed.push("box");
    }
    if next.zenoh != current.zenoh {
        restart_needed.push("zenoh");
    }
    if next.metrics != current.metrics {
        restart_needed.push("metrics");
    }
    if next.mqtt != current.mqtt {
        restart_needed.push("mqtt");
    }
    if next.spool != current.spool || next.uplink != current.uplink {
        restart_needed.push("spool/uplink");
    }
    if next.health != current.health || next.pipeline != current.pipeline {
        restart_needed.push("health/pipeline");
    }
    if next.tagging != current.tagging {
        restart_needed.push("tagging");
    }
    if !restart_needed.is_empty() {
        warn!(sections = ?restart_needed, "these settings changed and take effect at the next restart");
    }
    let (mut started, mut stopped, mut restarted) = (0, 0, 0);
    let wanted: BTreeMap<Id, _> = next
        .cameras
        .iter()
        .map(|c| (c.id.clone(), c.clone()))
        .collect();
    let ids: Vec<Id> = cameras.keys().cloned().collect();
    for id in ids {
        let keep = wanted
            .get(&id)
            .is_some_and(|c| cameras.get(&id).is_some_and(|h| &h.config == c));
        if !keep && let Some(handle) = cameras.remove(&id) {
            handle.stop().await;
            if wanted.contains_key(&id) {
                restarted += 1;
            } else {
                shared.metrics.forget_camera(id.as_str());
                stopped += 1;
            }
        }
    }
    for (id, cam) in wanted {
        if let std::collections::btree_map::Entry::Vacant(slot) = cameras.entry(id) {
            slot.insert(CameraHandle::spawn(Arc::clone(shared), cam, parent));
            started += 1;
        }
    }
    started -= restarted.min(started);
    info!(started, stopped, restarted, "configuration reloaded");
    current.cameras = next.cameras;
    current.inference = next.inference;
}

/// Every `every`, hands the memory the allocator holds free back to the system
/// (see [`allocator`](crate::allocator)) and counts it.
async fn trim_allocator(every: Duration, metrics: Arc<Metrics>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: nothing is worth trimming during start-up.
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => break,
        }
        match tokio::task::spawn_blocking(crate::allocator::trim).await {
            Ok(Some(released)) => {
                metrics.allocator_trim_released_bytes.inc_by(released);
                tracing::debug!(released, "allocator trimmed");
            }
            // No such call on this system: stop asking.
            Ok(None) => break,
            Err(error) => {
                warn!(%error, "allocator trim failed");
                break;
            }
        }
    }
}

async fn report_box_health(shared: Arc<Shared>, cancel: CancellationToken) {
    let camera = Id::box_camera();
    let publisher =
        match uplink::publisher(&shared.session, shared.key(&camera, StreamKind::Health)).await {
            Ok(p) => p,
            Err(error) => {
                error!(error = %format!("{error:#}"), "box health reporting disabled");
                return;
            }
        };
    let started = shared.clock.monotonic();
    let mut ticker = tokio::time::interval(shared.health.interval);
    let mut seq = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => break,
        }
        shared
            .metrics
            .spool_used_bytes
            .set(shared.spool.used_bytes() as i64);
        shared
            .metrics
            .spool_cache_bytes
            .set(shared.spool.cache_bytes() as i64);
        if let Some(bytes) = crate::allocator::resident_bytes() {
            shared.metrics.resident_bytes.set(bytes as i64);
        }
        let msg = Health {
            header: shared.header(&camera, shared.incarnation, seq, shared.clock.unix_ns(), 30),
            state: CameraState::Running,
            uptime_ms: shared.clock.monotonic().saturating_sub(started).as_millis() as u64,
            fps: 0.0,
            stages: Vec::new(),
            restarts: 0,
            detail: None,
            uplink: None,
            spool_used_bytes: Some(shared.spool.used_bytes()),
            spool_max_bytes: Some(shared.spool.config().max_bytes),
        };
        if let Ok(bytes) = venue_proto::encode(&msg) {
            let bytes = bytes::Bytes::from(bytes);
            if let Err(error) = publisher.put(bytes.clone()).await {
                warn!(%error, "box health publish failed");
            }
            if let Some(mqtt) = &shared.mqtt {
                mqtt.publish_health(&camera, bytes);
            }
        }
        seq += 1;
    }
}
