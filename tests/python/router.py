#!/usr/bin/env python3
"""A zenoh router on loopback for the fault tests: router.py PORT.

Runs the zenoh router from the eclipse-zenoh package (the same Rust core as
zenohd, without the plugin loader) until killed.
"""

import sys
import time

import zenoh


def main():
    port = int(sys.argv[1])
    conf = zenoh.Config()
    conf.insert_json5("mode", '"router"')
    conf.insert_json5("listen/endpoints", f'["tcp/127.0.0.1:{port}"]')
    conf.insert_json5("scouting/multicast/enabled", "false")
    with zenoh.open(conf):
        print(f"router listening on tcp/127.0.0.1:{port}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
