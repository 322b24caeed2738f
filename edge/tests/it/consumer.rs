//! A cloud consumer for the tests: stores metadata records in order, drops copies,
//! honours gap notices, and acknowledges what it stored — the contract an ingest
//! service follows (docs/wire.md). Its store survives disconnects, like a database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use venue_proto::{
    Ack, Gap, Header, Id, SCHEMA_VERSION, StreamKey, StreamKind, Timecode, decode, peek_header,
};

/// Per (camera, stream, incarnation): what has been stored.
#[derive(Debug, Default, Clone)]
pub struct StreamStore {
    /// Next sequence expected; everything below is stored (or declared lost).
    pub next: u64,
    pub stored: u64,
    pub lost: u64,
    acked: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Store {
    pub streams: BTreeMap<(String, StreamKind, u64), StreamStore>,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub gaps: u64,
    pub undecodable: u64,
}

impl Store {
    fn record(&mut self, camera: &str, kind: StreamKind, h: &Header) {
        let s = self
            .streams
            .entry((camera.to_string(), kind, h.incarnation))
            .or_default();
        if h.seq < s.next {
            self.duplicates += 1;
        } else if h.seq > s.next {
            // Missing predecessors: wait for the box to resend them.
            self.out_of_order += 1;
        } else {
            s.next += 1;
            s.stored += 1;
        }
    }

    fn gap(&mut self, camera: &str, g: &Gap) {
        self.gaps += 1;
        let s = self
            .streams
            .entry((camera.to_string(), g.stream, g.incarnation))
            .or_default();
        if g.first_seq <= s.next && s.next < g.end_seq {
            s.lost += g.end_seq - s.next;
            s.next = g.end_seq;
        }
    }

    /// Stored records of a camera's metadata, per incarnation (ascending).
    pub fn meta(&self, camera: &str) -> Vec<(u64, StreamStore)> {
        self.streams
            .iter()
            .filter(|((c, k, _), _)| c == camera && *k == StreamKind::Meta)
            .map(|((_, _, inc), s)| (*inc, s.clone()))
            .collect()
    }
}

pub struct Consumer {
    pub store: Arc<Mutex<Store>>,
    venue: Id,
    box_id: Id,
    rt: tokio::runtime::Runtime,
    session: Option<zenoh::Session>,
    acker: Option<tokio::task::JoinHandle<()>>,
}

impl Consumer {
    pub fn new(venue: &str, box_id: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            store: Arc::default(),
            venue: Id::new(venue).expect("venue"),
            box_id: Id::new(box_id).expect("box"),
            rt,
            session: None,
            acker: None,
        }
    }

    /// Connects to `endpoint` and starts storing and acknowledging.
    pub fn connect(&mut self, endpoint: &str) {
        let store = Arc::clone(&self.store);
        let (venue, box_id) = (self.venue.clone(), self.box_id.clone());
        let session = self.rt.block_on(async {
            let mut c = zenoh::Config::default();
            c.insert_json5("mode", r#""peer""#).expect("mode");
            c.insert_json5("connect/endpoints", &format!(r#"["{endpoint}"]"#))
                .expect("connect");
            c.insert_json5("listen/endpoints", "[]").expect("listen");
            c.insert_json5("scouting/multicast/enabled", "false")
                .expect("scouting");
            let session = zenoh::open(c).await.expect("zenoh open");
            let selector = format!("venue/{venue}/{box_id}/**");
            let st = Arc::clone(&store);
            session
                .declare_subscriber(selector)
                .callback(move |s| {
                    let Ok(key) = StreamKey::parse(s.key_expr().as_str()) else {
                        return;
                    };
                    let bytes = s.payload().to_bytes();
                    let mut st = st.lock().expect("store");
                    match key.stream {
                        StreamKind::Meta | StreamKind::Event => match peek_header(&bytes) {
                            Ok(h) => st.record(key.camera.as_str(), key.stream, &h),
                            Err(_) => st.undecodable += 1,
                        },
                        StreamKind::Gap => match decode::<Gap>(&bytes) {
                            Ok(g) => st.gap(key.camera.as_str(), &g),
                            Err(_) => st.undecodable += 1,
                        },
                        _ => {}
                    }
                })
                .background()
                .await
                .expect("subscribe");
            session
        });
        let acker_session = session.clone();
        let acker = self.rt.spawn(async move {
            let mut seq = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let due: Vec<(String, StreamKind, u64, u64)> = {
                    let mut st = store.lock().expect("store");
                    st.streams
                        .iter_mut()
                        .filter(|(_, s)| s.next > 0 && s.acked != Some(s.next - 1))
                        .map(|((c, k, inc), s)| {
                            s.acked = Some(s.next - 1);
                            (c.clone(), *k, *inc, s.next - 1)
                        })
                        .collect()
                };
                for (camera, stream, inc, acked) in due {
                    let camera = Id::new(&camera).expect("camera");
                    let ack = Ack {
                        header: Header {
                            schema: SCHEMA_VERSION,
                            venue: venue.clone(),
                            box_id: box_id.clone(),
                            camera: camera.clone(),
                            incarnation: 1,
                            seq,
                            capture_ns: 0,
                            timecode: Timecode::from_unix_ns(0, 30),
                        },
                        stream,
                        acked_incarnation: inc,
                        acked_seq: acked,
                    };
                    seq += 1;
                    let key =
                        StreamKey::new(venue.clone(), box_id.clone(), camera, StreamKind::Ack);
                    let bytes = venue_proto::encode(&ack).expect("encode");
                    let _ = acker_session.put(key.to_string(), bytes).await;
                }
            }
        });
        self.session = Some(session);
        self.acker = Some(acker);
    }

    /// Closes the session (the store is kept).
    pub fn disconnect(&mut self) {
        if let Some(a) = self.acker.take() {
            a.abort();
        }
        if let Some(s) = self.session.take() {
            let _ = self.rt.block_on(async move { s.close().await });
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.disconnect();
    }
}
