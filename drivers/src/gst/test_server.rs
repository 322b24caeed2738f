//! An RTSP server on loopback serving an H.264 (or H.265) test pattern, for tests and demos
//! (feature `rtsp-test-server`; never part of the daemon). It can be stopped
//! abruptly (clients dropped, listening socket closed) and started again on the same
//! port, and its frames can be held back while connections stay up (a stall).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// Mount path of the test pattern.
pub const PATH: &str = "/test";

/// A running test server; dropping it stops it.
#[derive(Debug)]
pub struct RtspTestServer {
    port: u16,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    flowing: Arc<AtomicBool>,
    valves: Arc<Mutex<Vec<gst::Element>>>,
    sent: Sent,
}

/// Access units handed to the RTP payloader (what clients are sent), in order.
type Sent = Arc<Mutex<Vec<Vec<u8>>>>;

/// What the pattern looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// H.265 (x265) instead of H.264 (x264).
    pub h265: bool,
}

impl Default for Pattern {
    fn default() -> Self {
        Self {
            width: 320,
            height: 240,
            fps: 25,
            h265: false,
        }
    }
}

impl RtspTestServer {
    /// Starts serving on 127.0.0.1:`port` (0: a free port).
    pub fn start(port: u16, pattern: Pattern) -> Result<Self, String> {
        gst::init().map_err(|e| e.to_string())?;
        let flowing = Arc::new(AtomicBool::new(true));
        let valves: Arc<Mutex<Vec<gst::Element>>> = Arc::default();
        let sent: Sent = Arc::default();
        let context = glib::MainContext::new();
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        let thread = {
            let main_loop = main_loop.clone();
            let flowing = Arc::clone(&flowing);
            let valves = Arc::clone(&valves);
            let sent = Arc::clone(&sent);
            std::thread::Builder::new()
                .name("rtsp-test-server".into())
                .spawn(move || {
                    serve(
                        port,
                        pattern,
                        &context,
                        &main_loop,
                        (&flowing, &valves, &sent),
                        &ready_tx,
                    );
                })
                .map_err(|e| e.to_string())?
        };
        let port = ready_rx
            .recv()
            .map_err(|_| "the server thread ended before it was ready".to_string())??;
        Ok(Self {
            port,
            main_loop,
            thread: Some(thread),
            flowing,
            valves,
            sent,
        })
    }

    /// Every H.264 access unit sent so far (Annex-B, as the encoder made it), in
    /// order: what a passthrough must deliver unchanged.
    pub fn sent_units(&self) -> Vec<Vec<u8>> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:{port}/test`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{PATH}", self.port)
    }

    /// Holds frames back (false) or lets them through (true), for current and future
    /// clients; connections stay up either way.
    pub fn set_flowing(&self, flowing: bool) {
        self.flowing.store(flowing, Ordering::SeqCst);
        if let Ok(valves) = self.valves.lock() {
            for v in valves.iter() {
                v.set_property("drop", !flowing);
            }
        }
    }

    /// Stops at once: clients are disconnected and the port is closed.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.main_loop.quit();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RtspTestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(
    port: u16,
    pattern: Pattern,
    context: &glib::MainContext,
    main_loop: &glib::MainLoop,
    (flowing, valves, sent): (&Arc<AtomicBool>, &Arc<Mutex<Vec<gst::Element>>>, &Sent),
    ready: &std::sync::mpsc::Sender<Result<u16, String>>,
) {
    let result = context.with_thread_default(|| {
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&port.to_string());
        let Some(mounts) = server.mount_points() else {
            return Err("the server has no mount points".to_string());
        };
        let factory = rtsp::RTSPMediaFactory::new();
        let Pattern {
            width,
            height,
            fps,
            h265,
        } = pattern;
        let (encoder, pay) = if h265 {
            (
                format!(
                    "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} option-string=repeat-headers=1"
                ),
                "rtph265pay",
            )
        } else {
            (
                format!("x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps}"),
                "rtph264pay",
            )
        };
        // One keyframe a second; SPS/PPS in band so late joiners decode at once. The
        // valve sits after the encoder so a held-back stream still has caps (and an
        // SDP) for new clients: they connect and receive nothing.
        factory.set_launch(&format!(
            "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},framerate={fps}/1 \
             ! {encoder} ! valve name=gate drop-mode=forward-sticky-events ! {pay} name=pay0 pt=96 config-interval=-1 )"
        ));
        // One media per client, so a reconnecting client gets a fresh stream.
        factory.set_shared(false);
        let medias: Arc<Mutex<Vec<rtsp::RTSPMedia>>> = Arc::default();
        {
            let flowing = Arc::clone(flowing);
            let valves = Arc::clone(valves);
            let medias = Arc::clone(&medias);
            let sent = Arc::clone(sent);
            factory.connect_media_configure(move |_, media| {
                let element = media.element();
                if let Some(pad) = element
                    .downcast_ref::<gst::Bin>()
                    .and_then(|b| b.by_name("pay0"))
                    .and_then(|p| p.static_pad("sink"))
                {
                    let sent = Arc::clone(&sent);
                    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                        if let Some(map) = info.buffer().and_then(|b| b.map_readable().ok())
                            && let Ok(mut s) = sent.lock()
                        {
                            s.push(map.as_slice().to_vec());
                        }
                        gst::PadProbeReturn::Ok
                    });
                }
                if let Some(gate) = element
                    .downcast_ref::<gst::Bin>()
                    .and_then(|b| b.by_name("gate"))
                {
                    gate.set_property("drop", !flowing.load(Ordering::SeqCst));
                    if let Ok(mut v) = valves.lock() {
                        v.push(gate);
                    }
                }
                if let Ok(mut m) = medias.lock() {
                    m.push(media.clone());
                }
            });
        }
        mounts.add_factory(PATH, factory);
        let source = server
            .attach(Some(context))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
        let _ = ready.send(Ok(server.bound_port().max(0) as u16));
        main_loop.run();
        // Abrupt stop: drop every client, stop every stream, close the listener.
        server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
        if let Ok(mut m) = medias.lock() {
            for media in m.drain(..) {
                let _ = media.unprepare();
            }
        }
        if let Ok(mut v) = valves.lock() {
            v.clear();
        }
        mounts.remove_factory(PATH);
        // The listener's source lives in this thread's context, not the default one.
        if let Some(listener) = context.find_source_by_id(&source) {
            listener.destroy();
        }
        while context.iteration(false) {}
        Ok(())
    });
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = ready.send(Err(e));
        }
        Err(e) => {
            let _ = ready.send(Err(format!("main context busy: {e}")));
        }
    }
}
