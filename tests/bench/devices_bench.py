# SPDX-License-Identifier: MIT
"""Benchmark of the gateway with many BLE devices connected (prints figures;
not a test).

The stand-in for nRF Cloud lists N devices (default 100) in the shadow's
desiredConnections; the BlueZ mock of the integration tests has them all;
nrfcloud-gatewayd (MaxConnections=N) connects each, builds its GATT model and
sends its device_discover_result.  Measured:
  1. the time from the daemon's start to the last discovery result;
  2. the daemon's memory once every device is connected: VmRSS, its
     anonymous part (the daemon's own) and its file-backed part (library
     pages), and the proportional set size (Pss, shared pages divided among
     the processes that map them);
  3. the same after an idle period, and the daemon's CPU over it;
  4. one notification from every device: all N g2c messages arrive;
  5. the publish budget: 20 of the devices (or N if fewer) notify at 20 Hz for
     5 s, and the most messages the stand-in for nRF Cloud received in any
     one-second window, against [Cloud] MaxPublishRate= (default 90) and the
     cloud's limit of 100.
PROTOCOL_TLS=modem runs it with TLS in nrf91-sim (see tests/protocol/).

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/devices_bench.py [--devices N] [--idle-seconds S]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import prototest as pt  # noqa: E402
import test_publish_budget as tb  # noqa: E402

VALUE_CHANGED = "device_characteristic_value_changed"


def proc_fields(pid, path, names):
    out = {}
    with open("/proc/%d/%s" % (pid, path)) as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in names:
                out[key] = int(line.split()[1])
    return out


def memory(pid):
    m = proc_fields(pid, "status", ("VmRSS", "RssAnon", "RssFile"))
    m.update(proc_fields(pid, "smaps_rollup", ("Pss",)))
    return m


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def show(label, m):
    print("%-34s VmRSS %6.2f MiB (anonymous %5.2f MiB, file-backed %5.2f MiB), Pss %5.2f MiB"
          % (label, m["VmRSS"] / 1024, m["RssAnon"] / 1024, m["RssFile"] / 1024, m["Pss"] / 1024))


def budget(world, addresses, hz=20, seconds=5):
    """len(addresses) devices at hz for seconds: the most publishes in any one-second window."""
    tb.subscribe_nus(world, addresses)
    arrivals = tb.Arrivals(world)
    sent = tb.notify_at(world, addresses, hz, seconds)
    pt.st.wait_until(lambda: len(arrivals.t) >= sent, sent / 50 + 30, 0.2)
    arrivals.close()
    span = arrivals.t[-1] - arrivals.t[0] if len(arrivals.t) > 1 else 0
    print("publish budget: %d devices at %d Hz for %d s, %d notifications; %d messages arrived over %.1f s "
          "(%.1f/s); the most in any one-second window at the stand-in for nRF Cloud: %d (cloud's limit 100)"
          % (len(addresses), hz, seconds, sent, len(arrivals.t), span, len(arrivals.t) / span if span else 0,
             tb.max_in_window(arrivals.t)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--idle-seconds", type=float, default=30)
    a = ap.parse_args()

    addresses = ["C0:FF:EE:00:%02X:%02X" % (i // 256, i % 256) for i in range(a.devices)]
    tmp, pki, cert = pt.make_pki()
    world = None
    try:
        world = pt.World(pki, cert, pt.subdir(tmp, "devices"), desired=addresses, devices=False, log_level="info",
                         extra_conf="[Bluetooth]\nMaxConnections=%d\n[Cloud]\nC2gRateMax=1000\n" % a.devices)
        for i, addr in enumerate(addresses):
            world.mock.add_device(addr, name="bench-%03d" % i)
        start = time.monotonic()
        pid = world.daemon.proc.pid
        print("TLS=%s, %d devices in desiredConnections" % (pt.TLS, a.devices))
        show("daemon started:", memory(pid))
        for addr in addresses:
            world.wait_events(lambda e, addr=addr: e["event"]["type"] == "device_discover_result"
                              and e["event"]["device"]["address"]["address"] == addr, 1, timeout=300)
        print("all %d connected and discovered after %.1f s" % (a.devices, time.monotonic() - start))
        show("all connected:", memory(pid))

        c0 = cpu_seconds(pid)
        time.sleep(a.idle_seconds)
        c1 = cpu_seconds(pid)
        show("after %.0f s idle:" % a.idle_seconds, memory(pid))
        print("daemon CPU while idle: %.3f %% of one core" % (100.0 * (c1 - c0) / a.idle_seconds))

        # One notification from each device (the mock's default GATT: battery level 2A19
        # notifies once subscribed through a 2902 write).
        for addr in addresses:
            world.c2g({"type": "device_descriptor_value_write", "deviceAddress": addr,
                       "serviceUUID": "180F", "characteristicUUID": "2A19", "descriptorUUID": "2902",
                       "descriptorValue": [1, 0]})
        world.wait_events(lambda e: e["event"]["type"] == "device_descriptor_value_write_result", a.devices, 120)
        before = len(world.events(VALUE_CHANGED))
        for addr in addresses:
            world.mock.notify_value(addr, "180f", "2a19", "2a")
        world.wait_events(lambda e: e["event"]["type"] == VALUE_CHANGED, before + a.devices, 120)
        print("one notification from each of the %d devices: %d g2c messages"
              % (a.devices, len(world.events(VALUE_CHANGED)) - before))
        show("after the notifications:", memory(pid))
        budget(world, addresses[:20])
    finally:
        if world:
            world.close()
        tmp.cleanup()


if __name__ == "__main__":
    main()
