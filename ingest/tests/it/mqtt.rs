//! The MQTT input against a real broker (mosquitto on a free loopback port): the
//! real box daemon publishes health there, and an ingest that takes nothing from
//! zenoh (its key matches no box) stores it from MQTT alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn mosquitto_bin() -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("mosquitto is not installed: run scripts/setup.sh"))
}

/// A mosquitto on a free loopback port, up and accepting connections.
fn broker(dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let mut cmd = Command::new(mosquitto_bin());
    cmd.arg("-c").arg(&conf);
    let broker = Proc::spawn(cmd, dir.join("mosquitto.log"));
    wait_for(Duration::from_secs(10), "mosquitto", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (broker, port)
}

/// An ingest that takes nothing from zenoh (its key matches no venue): only what
/// MQTT brings from the broker on `mqtt_port` is stored. Its acks still go out over
/// zenoh to the box listening on `zport`.
fn mqtt_only_ingest(dir: &Path, zport: u16, mqtt_port: u16) -> Ingest {
    Ingest::start(
        &[
            "--db".into(),
            format!("sqlite:{}", dir.join("ingest.db").display()),
            "--objects".into(),
            dir.join("objects").display().to_string(),
            "--connect".into(),
            format!("tcp/127.0.0.1:{zport}"),
            "--key".into(),
            "venue/no-such-venue/**".into(),
            "--mqtt".into(),
            format!("mqtt://127.0.0.1:{mqtt_port}"),
        ],
        dir.join("ingest.log"),
    )
}

#[test]
fn health_from_mqtt_is_stored() {
    let dir = temp_dir("mqtt");
    let (_broker, port) = broker(&dir);

    let zport = free_port();
    let ingest = mqtt_only_ingest(&dir, zport, port);
    let config = edge_config(
        &dir,
        "mq",
        "box-1",
        &["cam-1"],
        10,
        &format!(
            "listen = [\"tcp/127.0.0.1:{zport}\"]\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\""
        ),
    );
    let _edge = start_edge(&config, dir.join("edge.log"));
    wait_for(Duration::from_secs(30), "health from MQTT", || {
        let s = ingest.get("/api/v1/stats?venue=mq");
        s["cameras"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["camera"] == "cam-1" && c["health"]["state"] == "running")
                && c.iter()
                    .any(|c| c["camera"] == "_box" && !c["health"].is_null())
        })
    });
    // Health only: no metadata came through MQTT or zenoh.
    let f = ingest.get("/api/v1/frames?venue=mq&box=box-1&camera=cam-1");
    assert_eq!(f["frames"].as_array().unwrap().len(), 0);
    assert!(ingest.counter("health") > 0);
    assert_eq!(ingest.counter("stored"), 0);
}

/// Events from a real box's spool over MQTT alone (the ingest's zenoh key matches
/// no box): stored once, acknowledged over MQTT after the commit. The box deletes
/// an event only when both its zenoh and its MQTT cursor have passed it, so its
/// event ack lag falling to 0 shows the MQTT acks arrived.
#[test]
fn events_from_mqtt_are_stored_once_and_acknowledged_over_mqtt() {
    let dir = temp_dir("mqtt-events");
    let (_broker, port) = broker(&dir);
    let zport = free_port();
    let ingest = mqtt_only_ingest(&dir, zport, port);
    // A ski slope, segmented and tagged: it makes events.
    let config = edge_config(
        &dir,
        "mqe",
        "box-1",
        &[],
        8,
        &format!(
            "listen = [\"tcp/127.0.0.1:{zport}\"]\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\
             streams = [\"health\", \"event\"]\n\n[[cameras]]\nid = \"slope\"\nwidth = 640\nheight = 360\nfps = 8\ninference_fps = 8\n\
             [cameras.source]\nkind = \"synthetic\"\nscene = \"slope\"\nseed = 9005\nathletes = 3\n"
        ),
    );
    let _edge = start_edge(&config, dir.join("edge.log"));
    let event_lag = || {
        let s = ingest.get("/api/v1/stats?venue=mqe");
        s["cameras"].as_array().and_then(|c| {
            c.iter().find(|c| c["camera"] == "slope")?["health"]["uplink"]
                .as_array()?
                .iter()
                .find(|u| u["stream"] == "event")?["ack_lag"]
                .as_u64()
        })
    };
    wait_for(
        Duration::from_secs(90),
        "events stored from MQTT and acknowledged over MQTT",
        || {
            let events = ingest.get("/api/v1/events?venue=mqe&limit=1000");
            let n = events["events"].as_array().map_or(0, Vec::len);
            n >= 2 && event_lag() == Some(0)
        },
    );
    assert!(
        ingest.counter("stored") >= 2,
        "{}",
        ingest.get("/api/v1/ingest")
    );
    // Nothing but events came: no metadata from zenoh or MQTT.
    let f = ingest.get("/api/v1/frames?venue=mqe&box=box-1&camera=slope");
    assert_eq!(f["frames"].as_array().unwrap().len(), 0);
}
