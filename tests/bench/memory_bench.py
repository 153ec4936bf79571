# SPDX-License-Identifier: MIT
"""The daemon's own memory, connected and idle (prints figures; not a test).

The world of the protocol tests (nrfcloud-gatewayd against mosquitto with
mutual TLS, the stand-in for nRF Cloud, the BlueZ mock on a private system
bus; in TLS=modem nrf91-sim provisioned by nrfcloud-gatewayctl) with N
devices in the shadow's desiredConnections (MaxConnections=N, log level
info).  Once every device has sent its device_discover_result and the daemon
has been idle for a while, it prints, per run:

  * VmRSS (/proc/PID/status), Pss and USS (Private_Clean + Private_Dirty,
    from /proc/PID/smaps_rollup): USS is the memory that goes away with the
    process, the daemon's own; VmRSS and Pss count library pages shared
    with other processes;
  * with --maps, the private pages by mapping from /proc/PID/smaps: the
    main heap, each malloc arena (glibc reserves 64 MiB of address space
    per arena and maps it in as it grows), each thread's stack (named after
    its thread, found by the stack pointer in /proc/PID/task/TID/syscall),
    other anonymous mappings, and each library's or the program's written
    data (.data, .bss, relocations).

Runs in both TLS modes with 1 and 100 devices by default.  The figures move
by tens of KiB from run to run (what the threads happened to allocate and
free, and which library and program pages another process maps at the
moment: USS counts a page that only this process maps, so the program's own
code counts while no other copy of it runs); --runs N prints the median of
N runs.  Private_Dirty leaves out the clean file pages and moves less.
main() prints a compact table and returns 0; measure() is for other
benchmarks.

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/memory_bench.py
           [--tls host,modem] [--devices 1,100] [--idle-seconds 10] [--runs N] [--maps]
           [--daemon PATH]   (another nrfcloud-gatewayd, e.g. an older build, with this build's tools)
Extra environment for the daemon (GLIBC_TUNABLES=..., to try a setting
without rebuilding) is passed through.
"""

import argparse
import glob
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol"))
import prototest as pt  # noqa: E402

ARENA = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: arenas are aligned to it


class Sim(pt.sf.Sim):
    """nrf91-sim whose pty link has a name of its own: the port's UUCP lock (/run/lock/LCK..NAME) is
    named after it, and every test world's is ttyNRF91, so runs at the same time refuse each other."""

    def __init__(self, workdir, uuid, *args, **kw):
        super().__init__(workdir, uuid, *args, **kw)
        self.link = os.path.join(workdir, "ttyNRF91-%d" % os.getpid())


pt.sf.Sim = Sim


def rollup(pid):
    """kB figures of /proc/PID/smaps_rollup and VmRSS from /proc/PID/status."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["VmRSS"] = int(line.split()[1])
    out["USS"] = out["Private_Clean"] + out["Private_Dirty"]
    return out


def thread_stack_pointers(pid):
    """{tid: (thread name, stack pointer)} for the threads blocked in a system call."""
    out = {}
    for d in glob.glob("/proc/%d/task/*" % pid):
        try:
            with open(os.path.join(d, "comm")) as f:
                name = f.read().strip()
            with open(os.path.join(d, "syscall")) as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) >= 8:
            out[int(os.path.basename(d))] = (name, int(fields[-2], 16))
    return out


def mappings(pid):
    """The mappings of /proc/PID/smaps: dicts with start, end, perms, name and the kB fields."""
    maps = []
    cur = None
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$")
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            m = head.match(line)
            if m:
                cur = {"start": int(m.group(1), 16), "end": int(m.group(2), 16), "perms": m.group(3),
                       "name": m.group(4).strip()}
                maps.append(cur)
                continue
            parts = line.split()
            if cur is not None and len(parts) == 3 and parts[2] == "kB":
                cur[parts[0].rstrip(":")] = int(parts[1])
    return maps


def private_by_mapping(pid):
    """[(label, private kB)], largest first: what USS is made of."""
    maps = mappings(pid)
    stacks = thread_stack_pointers(pid)
    out = {}
    for i, m in enumerate(maps):
        private = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
        if not private:
            continue
        name = m["name"]
        if name == "[heap]":
            label = "[heap] (main arena)"
        elif name.startswith("["):
            label = name
        elif name:
            label = "%s %s" % (os.path.basename(name), "code" if "x" in m["perms"] else
                               "data" if "w" in m["perms"] else "read-only")
        else:
            owners = sorted("%s" % n for tid, (n, sp) in stacks.items()
                            if m["start"] <= sp < m["end"] and tid != pid)
            after = maps[i + 1] if i + 1 < len(maps) else None
            before = maps[i - 1] if i > 0 else None
            if owners:
                label = "stack of " + ",".join(owners)
            elif (m["start"] % ARENA == 0 and after and after["start"] == m["end"] and after["perms"] == "---p"
                  and not after["name"]):
                label = "malloc arena at %x" % m["start"]
            elif before and before["name"].startswith("/") and before["end"] == m["start"] and "w" in m["perms"]:
                label = "%s .bss" % os.path.basename(before["name"])
            else:
                label = "anonymous %d KiB" % ((m["end"] - m["start"]) >> 10)
        out[label] = out.get(label, 0) + private
    return sorted(out.items(), key=lambda kv: -kv[1])


def measure(tls="host", devices=1, idle_seconds=10.0, maps=False, hook=None, tries=5):
    """measure_once(), tried again if provisioning nrf91-sim fails (its port busy)."""
    for attempt in range(tries):
        try:
            return measure_once(tls, devices, idle_seconds, maps, hook)
        except RuntimeError as e:
            if "provisioning nrf91-sim failed" not in str(e) or attempt == tries - 1:
                raise
            time.sleep(5)


def measure_once(tls="host", devices=1, idle_seconds=10.0, maps=False, hook=None):
    """Runs the daemon connected with `devices` devices discovered, idle; returns
    {"tls", "devices", "VmRSS", "Pss", "USS", "Private_Dirty", "Anonymous", "maps"} (kB).
    hook(world), if given, runs after the idle time, before the figures are taken."""
    addresses = ["C0:FF:EE:00:%02X:%02X" % (i // 256, i % 256) for i in range(devices)]
    saved = pt.TLS
    pt.TLS = tls
    tmp, pki, cert = pt.make_pki()
    world = None
    try:
        # Made in two steps so that the parts already started are stopped if a later one fails.
        world = pt.World.__new__(pt.World)
        world.daemon = world.peer = world.broker = world.bus = world.mock = world.sim = None
        world.__init__(pki, cert, pt.subdir(tmp, "memory"), desired=addresses, devices=False, log_level="info",
                       extra_conf="[Bluetooth]\nMaxConnections=%d\n" % devices)
        for i, addr in enumerate(addresses):
            world.mock.add_device(addr, name="bench-%03d" % i)
        pid = world.daemon.proc.pid
        for addr in addresses:
            world.wait_events(lambda e, addr=addr: e["event"]["type"] == "device_discover_result"
                              and e["event"]["device"]["address"]["address"] == addr, 1, timeout=300)
        time.sleep(idle_seconds)
        if hook:
            hook(world)
        r = rollup(pid)
        out = {"tls": tls, "devices": devices}
        for k in ("VmRSS", "Pss", "USS", "Private_Dirty", "Private_Clean", "Anonymous"):
            out[k] = r.get(k, 0)
        out["maps"] = private_by_mapping(pid) if maps else []
        return out
    finally:
        pt.TLS = saved
        if world:
            world.close()
        tmp.cleanup()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--tls", default="host,modem")
    ap.add_argument("--devices", default="1,100")
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--maps", action="store_true", help="the private pages by mapping, after each run")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--runs", type=int, default=1, help="runs of each case; the median is printed")
    ap.add_argument("--daemon", help="the nrfcloud-gatewayd to measure (default: the build directory's)")
    a = ap.parse_args(argv)
    # SIGTERM: stop the world's processes (finally clauses) rather than leave them behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if a.daemon:
        pt.st.DAEMON = os.path.abspath(a.daemon)

    rows = []
    for tls in a.tls.split(","):
        for n in (int(x) for x in a.devices.split(",")):
            runs = [measure(tls, n, a.idle_seconds, a.maps) for _ in range(max(1, a.runs))]
            runs.sort(key=lambda r: r["USS"])
            m = runs[len(runs) // 2]
            if len(runs) > 1:
                m = dict(m, **{k: sorted(r[k] for r in runs)[len(runs) // 2]
                               for k in ("VmRSS", "Pss", "USS", "Private_Dirty")})
                m["range"] = (runs[0]["USS"], runs[-1]["USS"])
            rows.append(m)
            if a.maps:
                print("TLS=%s, %d device(s): private pages by mapping (kB)" % (tls, n))
                for label, kb in m["maps"][:a.top]:
                    print("  %6d  %s" % (kb, label))
                rest = sum(kb for _, kb in m["maps"][a.top:])
                print("  %6d  the other %d mappings" % (rest, max(0, len(m["maps"]) - a.top)))
    print("connected and idle %.0f s; MiB%s" % (a.idle_seconds, ", median of %d runs" % a.runs if a.runs > 1 else ""))
    print("%-6s %7s %7s %6s %6s %13s" % ("TLS", "devices", "VmRSS", "Pss", "USS", "Private_Dirty"))
    for m in rows:
        print("%-6s %7d %7.2f %6.2f %6.2f %13.2f%s" % (
            m["tls"], m["devices"], m["VmRSS"] / 1024, m["Pss"] / 1024, m["USS"] / 1024, m["Private_Dirty"] / 1024,
            "   (USS %.2f-%.2f)" % (m["range"][0] / 1024, m["range"][1] / 1024) if "range" in m else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
