//! Metadata throughput through the box's delivery path (spool → sender → zenoh)
//! against a plain zenoh publisher loop in the style of zenoh's `z_pub_thr` example,
//! with the same payload size, side by side in one run (target: ≥ 0.8× its rate).
//! `cargo bench -p venue-edge --bench uplink` (`UPLINK_BENCH_RECORDS`, default 1000000; `UPLINK_BENCH_ROUNDS`, default 5).

// A bench's way to fail is to panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use venue_drivers::SystemClock;
use venue_edge::config::UplinkConfig;
use venue_edge::delivery::Delivery;
use venue_edge::metrics::Metrics;
use venue_edge::spool::{Spool, SpoolConfig};
use venue_proto::{Id, StreamKind};
use zenoh::qos::CongestionControl;

#[path = "support/daemon.rs"]
mod daemon;
use daemon::{free_port, smoke};

async fn session(listen: Option<u16>, connect: Option<u16>) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", r#""peer""#).unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let l = listen
        .map(|p| format!(r#"["tcp/127.0.0.1:{p}"]"#))
        .unwrap_or("[]".into());
    let k = connect
        .map(|p| format!(r#"["tcp/127.0.0.1:{p}"]"#))
        .unwrap_or("[]".into());
    c.insert_json5("listen/endpoints", &l).unwrap();
    c.insert_json5("connect/endpoints", &k).unwrap();
    zenoh::open(c).await.unwrap()
}

/// Counts samples on `key` until `n` arrived. Returns the rate between the first
/// and the last sample (as zenoh's z_sub_thr measures: steady-state throughput,
/// without either side's set-up) and the time from `start` to the first sample.
async fn count(sub: &zenoh::Session, key: &str, n: u64, start: impl FnOnce()) -> (f64, Duration) {
    let got = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::<Instant>::new());
    let last = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (g, f, l) = (Arc::clone(&got), Arc::clone(&first), Arc::clone(&last));
    let _s = sub
        .declare_subscriber(key.to_string())
        .callback(move |_| {
            let now = Instant::now();
            let _ = f.set(now);
            if g.fetch_add(1, Ordering::Relaxed) + 1 == n
                && let Ok(mut slot) = l.lock()
            {
                *slot = Some(now);
            }
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // routes settle
    let t = Instant::now();
    start();
    while got.load(Ordering::Relaxed) < n && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = *first.get().expect("no sample arrived");
    let last = last.lock().unwrap().unwrap_or_else(Instant::now);
    let received = got.load(Ordering::Relaxed);
    let rate = received.saturating_sub(1) as f64 / last.duration_since(first).as_secs_f64();
    (rate, first.duration_since(t))
}

/// A publisher loop like zenoh's z_pub_thr (blocking congestion control).
async fn baseline(n: u64, payload_len: usize) -> (f64, Duration) {
    let p = free_port();
    let publisher_side = session(Some(p), None).await;
    let subscriber_side = session(None, Some(p)).await;
    let key = "bench/thr";
    let publisher = publisher_side
        .declare_publisher(key)
        .congestion_control(CongestionControl::Block)
        .await
        .unwrap();
    let payload = vec![7u8; payload_len];
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let pubtask = tokio::spawn(async move {
        let _ = rx.await;
        for _ in 0..n {
            publisher.put(payload.clone()).await.unwrap();
        }
    });
    let measured = count(&subscriber_side, key, n, move || {
        let _ = tx.send(());
    })
    .await;
    let _ = pubtask.await;
    let _ = publisher_side.close().await;
    let _ = subscriber_side.close().await;
    measured
}

/// Ours: the same number of records appended to a spool stream, delivered by the
/// box's sender (window large enough that acks are not the limit).
async fn delivery(n: u64, payload_len: usize, round: u32) -> (f64, Duration) {
    let dir =
        std::env::temp_dir().join(format!("venue-uplink-bench-{}-{round}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (spool, _) = Spool::open(
        SpoolConfig {
            dir: dir.clone(),
            max_bytes: 4 << 30,
            segment_bytes: 64 << 20,
            fsync_interval: Duration::from_millis(10),
            cache_bytes: 256 << 20,
            mqtt_streams: Vec::new(),
        },
        1,
    )
    .unwrap();
    let cam = Id::new("cam-1").unwrap();
    let stream = spool.stream(&cam, StreamKind::Meta);
    for _ in 0..n {
        stream.append_with(|_, _| vec![7u8; payload_len]).unwrap();
    }
    spool.commit();
    let p2 = free_port();
    let box_side = session(Some(p2), None).await;
    let cloud_side = session(None, Some(p2)).await;
    let box_session = box_side.clone();
    let spool2 = spool.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let measured = count(&cloud_side, "venue/v/b/cam-1/meta", n, move || {
        tokio::spawn(async move {
            let d = Delivery::start(
                box_session,
                spool2.clone(),
                Id::new("v").unwrap(),
                Id::new("b").unwrap(),
                UplinkConfig {
                    window: 1_000_000,
                    resend_after: Duration::from_secs(600),
                },
                Arc::new(SystemClock::new()),
                Arc::new(Metrics::new()),
                None,
            )
            .await
            .unwrap();
            d.ensure_sender(spool2.stream(&Id::new("cam-1").unwrap(), StreamKind::Meta));
            let _ = stop_rx.await;
            d.stop(Duration::from_secs(1)).await;
        });
    })
    .await;
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = box_side.close().await;
    let _ = cloud_side.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: u64 = std::env::var("UPLINK_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 5_000 } else { 1_000_000 });
    // Rounds alternate the two sides, so neither always runs first on a warm or a
    // cold machine; the figures are the medians.
    let rounds: u32 = std::env::var("UPLINK_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if smoke() { 1 } else { 5 });
    let payload_len = 160; // a frame-metadata record without detections is ~150 bytes
    println!("payload_bytes={payload_len} messages={n} rounds={rounds}");
    let (mut zenoh_rates, mut our_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let ((zenoh_rate, zenoh_first), (ours, ours_first)) = if round % 2 == 0 {
            let z = baseline(n, payload_len).await;
            (z, delivery(n, payload_len, round).await)
        } else {
            let o = delivery(n, payload_len, round).await;
            (baseline(n, payload_len).await, o)
        };
        // Set-up until the first message is not in the rates: the delivery side
        // declares its publisher and waits for a matching subscriber first.
        println!(
            "round={round} zenoh_publisher_loop_msgs_per_s={zenoh_rate:.0} venue_edge_delivery_msgs_per_s={ours:.0} ratio={:.2} first_message_ms zenoh={:.1} ours={:.1}",
            ours / zenoh_rate,
            zenoh_first.as_secs_f64() * 1e3,
            ours_first.as_secs_f64() * 1e3
        );
        zenoh_rates.push(zenoh_rate);
        our_rates.push(ours);
        ratios.push(ours / zenoh_rate);
    }
    println!("zenoh_publisher_loop_msgs_per_s={:.0}", median(zenoh_rates));
    println!("venue_edge_delivery_msgs_per_s={:.0}", median(our_rates));
    println!(
        "ratio={:.2} (median of rounds; target >= 0.8)",
        median(ratios)
    );
    std::process::exit(0);
}
