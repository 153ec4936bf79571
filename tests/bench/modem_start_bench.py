# SPDX-License-Identifier: MIT
"""Time from start to nRF Cloud session ready in TLS=modem mode, through
nrf91-sim, against mosquitto with mutual TLS and the stand-in for nRF Cloud
(prints figures; not a test).

Each round starts nrfcloud-gatewayd, follows its console log (polled every
2 ms) and prints when it opened the port, when the nRF91 reported its
network registration and when the session was ready.  Two kinds of round:
  clean:   the previous daemon was stopped with SIGTERM;
  pending: the previous daemon was killed (SIGKILL) while the sim held back
           the answer to its idle link check (`delay 1500`), which the new
           daemon then finds on the port.

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/modem_start_bench.py [--rounds 5]
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "session"))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import sessiontest as st  # noqa: E402
import simfixture as sf  # noqa: E402

DEVICE = "0b6d7f1e-93a4-4c2b-8e15-4a7c2d9f3e61"
MARKS = (("open", "waiting -> open"), ("registered", "nRF91 network registration"),
         ("ready", "nRF Cloud session ready"))


def follow(daemon, t0, timeout=30):
    """{mark: seconds after t0} as the lines appear in the daemon's log."""
    seen = {}
    end = time.monotonic() + timeout
    while len(seen) < len(MARKS) and time.monotonic() < end:
        log = daemon.log()
        now = time.monotonic()
        for name, text in MARKS:
            if name not in seen and text in log:
                seen[name] = now - t0
        time.sleep(0.002)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    tmp = st.TempDir("modem-start-")
    try:
        pki = st.Pki(os.path.join(tmp.path, "pki"))
        cert = pki.device(DEVICE)
        broker = st.Broker(os.path.join(tmp.path, "broker"), pki)
        broker.start()
        work = os.path.join(tmp.path, "modem")
        runtime = os.path.join(work, "run")
        os.makedirs(runtime)
        sim = sf.Sim(work, DEVICE)
        sim.start()
        peer = None
        daemon = None
        try:
            env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=runtime)
            r = subprocess.run([sf.CTL, "provision", "--port", sim.link, "--ca-cert", pki.device_ca[0], "--ca-key",
                                pki.device_ca[1], "--root-ca", pki.root[0]], env=env, capture_output=True, text=True,
                               timeout=120)
            if r.returncode != 0:
                raise SystemExit(r.stdout + r.stderr)
            peer = st.CloudPeer(broker, pki, DEVICE)
            peer.start()
            peer.connected.wait(10)
            results = {"clean": [], "pending": []}
            for i in range(args.rounds * 2):
                kind = "clean" if i % 2 == 0 else "pending"
                t0 = time.monotonic()
                daemon = st.Daemon(os.path.join(tmp.path, "d%d" % i), broker, pki, DEVICE, cert,
                                   extra_conf="[Modem]\nLinkCheckSec=3\n", modem=(sim.link, runtime))
                seen = follow(daemon, t0)
                results[kind].append(seen)
                if i % 2 == 0:
                    # Leave an answer pending for the next round.
                    sim.command("delay 1500")
                    sent = daemon.log().count("--> AT<CR>")
                    st.wait_until(lambda: daemon.log().count("--> AT<CR>") > sent, 10)
                    daemon.proc.send_signal(signal.SIGKILL)
                    daemon.stop()
                    sim.command("delay 0")
                else:
                    daemon.stop()
                daemon = None
            for kind, rounds in results.items():
                ok = [s for s in rounds if len(s) == len(MARKS)]
                if not ok:
                    print("%s: no round reached cloud ready" % kind)
                    continue
                total = [s["ready"] for s in ok]
                after = [(s["ready"] - s["registered"]) * 1000 for s in ok]
                print("%-8s %d rounds: start -> cloud ready median %.2f s (min %.2f, max %.2f); registration -> "
                      "cloud ready median %.0f ms (max %.0f); start -> port open median %.0f ms"
                      % (kind, len(ok), statistics.median(total), min(total), max(total), statistics.median(after),
                         max(after), statistics.median([s["open"] * 1000 for s in ok])))
        finally:
            if daemon:
                daemon.stop()
            if peer:
                peer.stop()
            sim.stop()
            broker.stop()
    finally:
        tmp.cleanup()


if __name__ == "__main__":
    main()
