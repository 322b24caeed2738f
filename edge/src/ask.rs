//! Asking a box over zenoh from the command line: a client session, one query
//! answered by one of the box's queryables (`clip`, `snapshot`, `composite`), and
//! writing what came back to a file.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use venue_proto::Composite;

use crate::config::{ZenohConfig, ZenohMode};
use crate::uplink;

/// A client session connected to `connect` (or finding peers on loopback).
pub async fn open(connect: Vec<String>) -> anyhow::Result<zenoh::Session> {
    let z = ZenohConfig {
        mode: ZenohMode::Peer,
        listen: Vec::new(),
        connect,
        multicast_scouting: false,
    };
    zenoh::open(uplink::zenoh_config(&z)?)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot open a zenoh session")
}

pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Sends one query and returns the first reply's payload, or the box's reason.
pub async fn query(
    connect: Vec<String>,
    selector: &str,
    wait: Duration,
) -> anyhow::Result<Vec<u8>> {
    let session = open(connect).await?;
    let replies = session
        .get(selector)
        .timeout(wait)
        .await
        .map_err(|e| anyhow::anyhow!("invalid selector {selector:?}: {e}"))?;
    let result = match replies.recv_async().await {
        Ok(reply) => match reply.into_result() {
            Ok(sample) => Ok(sample.payload().to_bytes().to_vec()),
            Err(e) => Err(anyhow::anyhow!(
                "the box refused: {}",
                String::from_utf8_lossy(&e.payload().to_bytes())
            )),
        },
        Err(_) => Err(anyhow::anyhow!(
            "no reply to {selector} within {} s (is the box reachable, the camera running?)",
            wait.as_secs()
        )),
    };
    let _ = session.close().await;
    result
}

/// `venue-edge composite`: asks for a strobe composite of a track over a time span
/// (from the frames the box still holds) and writes the PNG.
pub async fn composite(
    connect: Vec<String>,
    key: &str,
    params: &str,
    out: &Path,
) -> anyhow::Result<Composite> {
    let bytes = query(connect, &format!("{key}?{params}"), Duration::from_secs(10)).await?;
    let c: Composite =
        venue_proto::decode(&bytes).context("the reply is not a composite message")?;
    write(out, &c.image)?;
    println!(
        "wrote {}: {}x{} PNG with {} cut-outs",
        out.display(),
        c.width,
        c.height,
        c.cutouts
    );
    Ok(c)
}
