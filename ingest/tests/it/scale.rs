//! Scale-out: two ingest instances share the venues by key-expression partition,
//! through a zenoh router, into one PostgreSQL; one instance is killed and
//! restarted. Every record is stored once, none is missed.

use std::time::Duration;

use crate::common::*;
use crate::e2e::{FPS, check_stats, health_incarnations, spooled, stored_runs, wait_all_acked};

#[test]
fn two_instances_partitioned_restart_complete_and_duplicate_free() {
    let secs = e2e_secs();
    let dir = temp_dir("scale");
    let (_router, rport) = start_router(&dir);
    let pg = Postgres::start("scale");
    let router = format!("tcp/127.0.0.1:{rport}");
    let instance = |name: &str, key: &str| {
        Ingest::start(
            &[
                "--db".into(),
                pg.url.clone(),
                "--objects".into(),
                dir.join(format!("objects-{name}")).display().to_string(),
                "--connect".into(),
                router.clone(),
                "--key".into(),
                key.into(),
            ],
            dir.join(format!("ingest-{name}.log")),
        )
    };
    let mut a = instance("a", "venue/a$*/**");
    let b = instance("b", "venue/b$*/**");
    let cams = ["cam-1", "cam-2"];
    let boxes = [("alpha", "box-a"), ("bravo", "box-b")];
    let configs: Vec<_> = boxes
        .iter()
        .map(|(venue, box_id)| {
            let d = dir.join(venue);
            std::fs::create_dir_all(&d).unwrap();
            edge_config(
                &d,
                venue,
                box_id,
                &cams,
                FPS,
                &format!(
                    "listen = [\"tcp/127.0.0.1:{}\"]\nconnect = [\"{router}\"]",
                    free_port()
                ),
            )
        })
        .collect();
    let mut edges: Vec<Proc> = configs
        .iter()
        .zip(boxes)
        .map(|(c, (v, _))| start_edge(c, dir.join(format!("edge-{v}.log"))))
        .collect();
    std::thread::sleep(Duration::from_secs(secs / 2));
    a.crash_and_restart();
    std::thread::sleep(Duration::from_secs(secs - secs / 2));

    let mut before = Vec::new();
    for (venue, _) in boxes {
        before.push((spooled(&b, venue, &cams), health_incarnations(&b, venue)));
    }
    for e in &mut edges {
        assert!(e.stop().success(), "{}", e.log());
    }
    let mut edges: Vec<Proc> = configs
        .iter()
        .zip(boxes)
        .map(|(c, (v, _))| start_edge(c, dir.join(format!("edge-{v}.log"))))
        .collect();
    for ((venue, _), (_, first)) in boxes.iter().zip(&before) {
        wait_all_acked(&b, venue, &cams, first);
    }
    for e in &mut edges {
        assert!(e.stop().success(), "{}", e.log());
    }

    let mut bravo_stored = 0;
    for ((venue, box_id), (spooled, first)) in boxes.iter().zip(&before) {
        for cam in cams {
            let runs = stored_runs(&b, venue, box_id, cam);
            assert_eq!(runs.len(), 2, "{venue}/{cam}: {runs:?}");
            assert_eq!(Some(runs[0].0), first.get(cam).copied());
            assert!(
                runs[0].1 >= spooled[cam],
                "{venue}/{cam}: {runs:?} < {spooled:?}"
            );
            check_stats(&b, venue, cam, &runs);
            if *venue == "bravo" {
                bravo_stored += runs.iter().map(|r| r.1).sum::<u64>();
            }
        }
    }
    // Instance b (never restarted) stored exactly bravo's records: nothing of alpha.
    assert_eq!(b.counter("stored"), bravo_stored);
    assert!(a.counter("stored") > 0);
}
