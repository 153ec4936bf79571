# SPDX-License-Identifier: MIT
"""Time from start to nRF Cloud session ready, phase by phase, in both TLS
modes, against mosquitto with mutual TLS and the stand-in for nRF Cloud;
TLS=modem through nrf91-sim (prints figures; not a test).

The daemon logs to a journal socket of the bench's own (the daemon's
journal target, as under systemd); a thread reads it and notes when each
record arrives, so every phase is timed from the daemon's own records:

  registered  the nRF91 reports network registration (+CEREG 1 or 5), TLS=modem
  connecting  the cloud connection starts ("Connecting to nRF Cloud")
  tls         the modem's TLS socket is connected (#XCONNECT), TLS=modem
  connack     the broker accepted the MQTT CONNECT (CONNACK)
  shadow      the shadow document arrived (after the shadow subscriptions' SUBACK)
  ready       the c2g and job subscriptions are acknowledged: session ready

Three kinds of round:
  modem:   TLS=modem, the previous daemon was stopped with SIGTERM;
  pending: TLS=modem, the previous daemon was killed (SIGKILL) while the sim
           held back the answer to its idle link check (`delay 1500`), which
           the new daemon then finds on the port;
  host:    TLS=host (the modem plays no part in the connection).
Each phase is printed as p50 and max over the rounds, as the time from the
previous mark, and the total from registration (TLS=modem) or from the
start of the connection (TLS=host) to ready.

--modem-delay MS makes the sim answer every command MS ms late (its `delay`
control; URCs such as +CEREG and #XRECV come at once), roughly what an AT
round trip over a UART to a real nRF91 costs; it shows what the number of
round trips on the way to the cloud costs.

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/modem_start_bench.py [--rounds 10] [--modem-delay 5]
(NRFGW_DAEMON=path: another build of the daemon, e.g. an older one to compare)
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
MARKS = (("open", ("waiting -> open",)),
         ("registered", ("nRF91 network registration: home", "nRF91 network registration: roaming")),
         ("connecting", ("Connecting to nRF Cloud at",)),
         ("tls", ("Modem TLS socket 0 connected", "Modem TLS socket 1 connected")),
         ("connack", ("Cloud connected to",)),
         ("shadow", ("Shadow document",)),
         ("ready", ("nRF Cloud session ready",)))
PHASES = ("registered", "connecting", "tls", "connack", "shadow", "ready")


class TimedDaemon(st.Daemon):
    """The daemon logging to the bench's journal socket, whose reader notes when each record arrives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, journal=True, **kwargs)

    @property
    def timed(self):
        """(arrival time, MESSAGE) of the records so far."""
        n = min(len(self.journal_times), len(self.journal_records))
        return [(t, r.get("MESSAGE", "")) for t, r in zip(self.journal_times[:n], self.journal_records[:n])]

    def messages(self):
        return [m for _, m in self.timed]


def follow(daemon, t0, marks, timeout=30):
    """{mark: seconds after t0} of the first record of each mark."""
    end = time.monotonic() + timeout
    seen = {}
    while time.monotonic() < end:
        for t, m in daemon.timed:
            for name, texts in marks:
                if name not in seen and any(x in m for x in texts):
                    seen[name] = t - t0
        if "ready" in seen:
            break
        time.sleep(0.01)
    return seen


def timeline(daemon, first):
    """The records from the first mark to ready, each with its time in ms (--timeline)."""
    t0 = None
    out = []
    for t, m in daemon.timed:
        if t0 is None and any(x in m for x in dict(MARKS)[first]):
            t0 = t
        if t0 is not None:
            out.append("%8.1f  %s" % ((t - t0) * 1000, m[:140]))
            if "nRF Cloud session ready" in m:
                break
    return out


def report(kind, rounds, marks, first):
    ok = [s for s in rounds if all(n in s for n, _ in marks)]
    if not ok:
        print("%-8s no round reached cloud ready" % kind)
        return
    names = [n for n, _ in marks if n in PHASES]

    def fig(vals):
        return "%5.1f / %5.1f" % (statistics.median(vals), max(vals))

    total = [s["ready"] for s in ok]
    print("%-8s %d rounds: start -> cloud ready median %.2f s (min %.2f, max %.2f)"
          % (kind, len(ok), statistics.median(total), min(total), max(total)))
    prev = names[0]
    for n in names[1:]:
        print("    %-12s -> %-10s %s ms (p50 / max)" % (prev, n, fig([(s[n] - s[prev]) * 1000 for s in ok])))
        prev = n
    print("    %-12s -> %-10s %s ms (p50 / max)"
          % (first, "ready", fig([(s["ready"] - s[first]) * 1000 for s in ok])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--timeline", action="store_true", help="print the daemon's records of each round's start")
    ap.add_argument("--modem-delay", type=int, default=0, metavar="MS",
                    help="the sim answers each command MS ms late (URCs at once), as a modem over a UART does")
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
        # The UUCP lock (/run/lock/LCK..<name>) is per name: one of the bench's own, not the tests'.
        sim.link = os.path.join(work, "ttyNRF91bench%d" % os.getpid())
        sim.start()
        peer = None
        daemon = None
        modem_marks = MARKS
        host_marks = tuple(m for m in MARKS if m[0] not in ("open", "registered", "tls"))
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
            sim.command("delay %d" % args.modem_delay)
            results = {"modem": [], "pending": [], "host": []}
            for i in range(args.rounds * 2):
                kind = "modem" if i % 2 == 0 else "pending"
                t0 = time.monotonic()
                daemon = TimedDaemon(os.path.join(tmp.path, "d%d" % i), broker, pki, DEVICE, cert,
                                     extra_conf="[Modem]\nLinkCheckSec=3\n", modem=(sim.link, runtime))
                results[kind].append(follow(daemon, t0, modem_marks))
                if args.timeline:
                    print("--- %s round %d" % (kind, i // 2), *timeline(daemon, "registered"), sep="\n")
                if i % 2 == 0:
                    # Leave an answer pending for the next round.
                    sim.command("delay 1500")
                    sent = daemon.messages().count("AT %s --> AT<CR>" % sim.link)
                    st.wait_until(lambda: daemon.messages().count("AT %s --> AT<CR>" % sim.link) > sent, 10)
                    daemon.proc.send_signal(signal.SIGKILL)
                    daemon.stop()
                    sim.command("delay %d" % args.modem_delay)
                else:
                    daemon.stop()
                daemon = None
            for i in range(args.rounds):
                t0 = time.monotonic()
                daemon = TimedDaemon(os.path.join(tmp.path, "h%d" % i), broker, pki, DEVICE, cert)
                results["host"].append(follow(daemon, t0, host_marks))
                if args.timeline:
                    print("--- host round %d" % i, *timeline(daemon, "connecting"), sep="\n")
                daemon.stop()
                daemon = None
            report("modem", results["modem"], modem_marks, "registered")
            report("pending", results["pending"], modem_marks, "registered")
            report("host", results["host"], host_marks, "connecting")
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
