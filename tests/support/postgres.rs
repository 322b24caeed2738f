//! A PostgreSQL server of a test's or bench's own, in a directory it is given, on
//! loopback: one file, included with `#[path]` by the ingest's tests and bench.
//! As root it runs as the `postgres` system user (the server refuses root).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub url: String,
    /// `pg_ctl stop` for the data directory, as the server's user.
    stop: Command,
    child: Child,
}

impl Drop for Postgres {
    /// As root the server runs under `runuser`, which a kill does not pass on:
    /// the server is stopped on its own first, or it outlives its user.
    fn drop(&mut self) {
        let _ = self
            .stop
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Postgres {
    /// A fresh cluster with its data, socket and log (`postgres.log`) in `dir`,
    /// serving on `port`; returns once it accepts connections.
    pub fn start_in(dir: &Path, port: u16) -> Self {
        let bin = installed_bin();
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let as_pg = |program: &Path| {
            if root_user {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            } else {
                Command::new(program)
            }
        };
        if root_user {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .expect("chown");
            assert!(ok.success(), "cannot chown {} to postgres", dir.display());
        }
        let data = dir.join("data");
        let out = as_pg(&bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.join("postgres.log");
        let out = std::fs::File::create(&log).expect("postgres log");
        let err = out.try_clone().expect("postgres log");
        let child = as_pg(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-k",
            ])
            .arg(dir)
            .args(["-c", "fsync=off", "-c", "max_connections=50"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start postgres");
        let mut stop = as_pg(&bin.join("pg_ctl"));
        stop.args(["stop", "-m", "immediate", "-D"]).arg(&data);
        // Dropped on a failed start too: the server never outlives its user.
        let pg = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            stop,
            child,
        };
        let t = Instant::now();
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string()])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ready {
                return pg;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The newest installed server's `bin` directory (Debian's layout).
fn installed_bin() -> PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("initdb").exists())
                .max()
        })
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed (/usr/lib/postgresql/*/bin/initdb); run scripts/setup.sh"
            )
        })
}
