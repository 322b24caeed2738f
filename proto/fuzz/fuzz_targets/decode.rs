//! Decoding arbitrary bytes as any message kind must return, never panic.
//! Run: `cargo fuzz run decode` from proto/ (see proto/fuzz/README.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use venue_proto::{StreamKind, decode_any};

fuzz_target!(|data: &[u8]| {
    for kind in StreamKind::ALL {
        let _ = decode_any(kind, data);
    }
});
