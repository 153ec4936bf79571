# SPDX-License-Identifier: MIT
"""End-to-end benchmark of a FOTA job through the whole gateway (prints
figures; not a test).

The parts are those of the FOTA tests (tests/fota/fotatest.py): nrf91-sim on
a pty with TLS in the modem, mosquitto with the gateway ACL, the stand-in
for nRF Cloud with a job queue, the HTTPS file server on 127.0.0.1, and
nrfcloud-gatewayd.  For a 200 KB application image and a 1 MB modem delta:

  1. time from the job's arrival (the stand-in publishes it on jobs/rcv in
     answer to the gateway's jobs/req) to SUCCEEDED;
  2. the download's share of it: from the GET at the file server to
     [id,7,100] at the cloud (the server's own clock is no use: loopback
     buffers take the whole image at once), against the file server's own
     rate, measured first with a plain Python TLS client on the same file;
  3. MQTT messages the job costs: jobs/update reports (target <= 15), every
     PUBLISH of the gateway and every PUBLISH to it between the job and
     SUCCEEDED (mosquitto's log), and the cloud-session restarts (the
     gateway's CONNECTs in that window; target <= 1 per applied image).

Usage: NRFGW_BUILD_DIR=build /usr/bin/python3 tests/bench/fota_bench.py [--app-kib 200] [--modem-kib 1024]
"""

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fota"))
import fotatest as ft  # noqa: E402
import fileserver as fs  # noqa: E402

cj, pt, st = ft.cj, ft.pt, ft.st

_RE_TO_DEVICE = re.compile(r"^\d+: Sending PUBLISH to %s " % re.escape(ft.DEVICE), re.M)


def log_lines_since(broker, mark):
    return broker.log_text()[mark:]


def run_job(w, job, label, version_check):
    mark = len(w.broker.log_text())
    w.jobs.offer(job)
    t_sent = w.jobs.sent[-1][0]
    final = w.wait_final(job[0], 600)
    t_final = time.monotonic()
    if final != [job[0], cj.SUCCEEDED, ""]:
        print("%s: the job ended %s\n%s" % (label, cj.describe(final), w.diag()))
        return None
    version_check()
    timed = w.jobs.timed_statuses(job[0])
    t7_0 = next(t for t, u in timed if u[1] == cj.DOWNLOADING)
    t7_100 = next((t for t, u in timed if u[1] == cj.DOWNLOADING and u[2] == 100), None)
    t1 = next(t for t, u in timed if u[1] == cj.IN_PROGRESS)
    req = w.files.requests_for(job[4])
    # The file server hands the whole image to the loopback socket's buffer at once: its
    # own clock says nothing about the sim's reading.  The download is timed from the
    # GET at the server to [id,7,100] at the cloud (an upper bound: one report's latency).
    t_get = req[0].t if req else float("nan")
    log = log_lines_since(w.broker, mark)
    packets = st.client_packets(log, ft.DEVICE)
    pubs = [p for p in packets if p[0] == "PUBLISH"]
    connects = len([p for p in packets if p[0] == "CONNECT"])
    to_device = len(_RE_TO_DEVICE.findall(log))
    total = t_final - t_sent
    return {
        "label": label, "size": job[2], "total": total, "start": t_get - t_sent,
        "download": (t7_100 - t_get) if t7_100 else float("nan"),
        "download_reports": (t7_100 - t7_0) if t7_100 else float("nan"), "apply": t_final - t1,
        "reports": len(timed), "pubs": len(pubs), "pubs_jobs": len([p for p in pubs if "/jobs/" in p[1]]),
        "pubs_shadow": len([p for p in pubs if "/shadow/" in p[1]]), "to_device": to_device,
        "restarts": connects, "requests": len(req),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app-kib", type=int, default=200)
    ap.add_argument("--modem-kib", type=int, default=1024)
    args = ap.parse_args()

    tmp, pki, cert = pt.make_pki()
    w = None
    try:
        w = ft.FotaWorld(pki, cert, pt.subdir(tmp, "bench"))
        app = fs.app_image("2.0.0", args.app_kib * 1024 - 32)
        delta = fs.modem_delta(ft.OLD_MODEM, "1.3.6", args.modem_kib * 1024)
        app_job = w.job("bench-app", cj.APP, "bench-app/app-2.0.0.signed.bin", app)
        mdm_job = w.job("bench-mdm", cj.MODEM, "bench-mdm/mfw_nrf9160_update_from_%s_to_1.3.6.bin" % ft.OLD_MODEM,
                        delta)
        w.wait_ready()
        rates = {}
        for name, size in ((app_job[4], len(app)), (mdm_job[4], len(delta))):
            best = 0.0
            for _ in range(3):  # the best of three: the first pays for the warm-up
                n, secs = fs.measure_rate(w.files, name, pki.root[0])
                assert n == size, (n, size)
                best = max(best, n / secs)
            rates[name] = best
        w.files.requests.clear()
        results = []
        results.append(run_job(w, app_job, "application %d KB" % args.app_kib,
                               lambda: st.wait_until(lambda: w.sim.status().get("app") == "2.0.0", 30)))
        time.sleep(2.0)
        results.append(run_job(w, mdm_job, "modem delta %d KB" % args.modem_kib,
                               lambda: st.wait_until(lambda: w.peer.device_info("modemFirmware")
                                                     == "mfw_nrf9160_1.3.6", 30)))
        print()
        print("FOTA through nrf91-sim on loopback (TLS in the modem); the file server's own rate with a plain "
              "Python TLS client: %s" % ", ".join("%s %.1f MB/s" % (os.path.basename(k), v / 1e6)
                                                 for k, v in rates.items()))
        for r, name in zip(results, (app_job[4], mdm_job[4])):
            if not r:
                continue
            print("%s: job received -> SUCCEEDED %.3f s: job -> GET at the file server %.3f s; GET -> [id,7,100] "
                  "at the cloud %.3f s (%.0f KB/s, %.0f %% of the job; the plain client needs %.3f s); [id,7,0] -> "
                  "[id,7,100] %.3f s; IN_PROGRESS -> SUCCEEDED (apply, reset, reconnection, confirm) %.3f s; "
                  "HTTP requests %d"
                  % (r["label"], r["total"], r["start"], r["download"], r["size"] / r["download"] / 1024,
                     100 * r["download"] / r["total"], r["size"] / rates[name], r["download_reports"], r["apply"],
                     r["requests"]))
            print("    MQTT: %d jobs/update reports (target <= 15); the gateway published %d message(s) (%d on "
                  "job topics, %d shadow updates) and received %d; cloud-session restarts: %d (target <= 1)"
                  % (r["reports"], r["pubs"], r["pubs_jobs"], r["pubs_shadow"], r["to_device"], r["restarts"]))
        return 0 if all(results) else 1
    finally:
        if w:
            w.close()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
