//! A free loopback port for tests and benches that start servers of their own:
//! one file, included with `#[path]` by each crate's tests and benches.

/// A loopback port nothing listens on now, never one this process handed out
/// before: the kernel may give the same ephemeral port to two binds in a row,
/// and two ports of one daemon (zenoh, metrics) must differ.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
