# SPDX-License-Identifier: MIT
"""FOTA of a BLE device behind the gateway, end to end with real parts: the
stand-in for nRF Cloud (shadow, and a BLE job service on jobs/ble/*), the
HTTPS file server, nrf91-sim (which downloads the image for the gateway with
#XDOWNLOAD), the BlueZ fixture with the MCUmgr SMP double
(tests/ble/smp_target.py), and nrfcloud-gatewayd with [Bluetooth] Fota=yes.

Each test asserts the exact jobs/ble/update arrays (spec nrfcloud-fota.md
§1.6) and what the device ends up with, byte by byte.  Run one with
BLEFOTA_TEST=<name> (ctest runs each in its own entry)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

import dbus

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "fota"))
sys.path.insert(0, os.path.join(HERE, "..", "ble"))
import fotatest as ft  # noqa: E402
import fileserver as fs  # noqa: E402
import smp_target as smp  # noqa: E402
import nrfdfu_target as dfu  # noqa: E402

cj, pt, st = ft.cj, ft.pt, ft.st
A = "C0:FF:EE:00:02:01"
B = "C0:FF:EE:00:02:02"
KB = 1024
TIMEOUT = float(os.environ.get("BLEFOTA_TIMEOUT", "120"))


SMP_CHRC = "DA2E7828FBCE4E01AE9E261174997C48"
G2C = "%sgateways/%s/g2c" % (st.PREFIX, ft.DEVICE)
C = "C0:FF:EE:00:02:03"  # a plain sensor (blefixture.GATT), no DFU
NUS = ft.bf.NUS.replace("-", "").upper()
NUS_RX = ft.bf.NUS_RX.replace("-", "").upper()
NUS_TX = ft.bf.NUS_TX.replace("-", "").upper()
# The application's own service on an SMP device: a UART-like service (write, and notify).
APP_GATT = [s for s in ft.bf.GATT if s["uuid"] == ft.bf.NUS]


class BleJobs:
    """nRF Cloud's BLE job service for one gateway: ["ADDR"] on jobs/ble/req is
    answered on jobs/ble/rcv with that device's unfinished job; every array
    on jobs/ble/update is recorded; a terminal status finishes the job."""

    def __init__(self, base, publish):
        self.base, self.publish = base, publish
        self.lock = threading.Condition()
        self.jobs = {}  # address → [job array, finished]
        self.requests = []
        self.updates = []

    def handle(self, topic, payload):
        if topic == self.base + "req":
            try:
                address = json.loads(payload)[0]
            except (ValueError, IndexError, TypeError):
                address = None
            with self.lock:
                self.requests.append(address)
                self.lock.notify_all()
                entry = self.jobs.get(address)
            if entry and not entry[1]:
                self.publish(self.base + "rcv", json.dumps(entry[0]), 1)
            return True
        if topic == self.base + "update":
            u = json.loads(payload)
            with self.lock:
                self.updates.append(u)
                if u[2] in cj.TERMINAL and u[0] in self.jobs and self.jobs[u[0]][0][1] == u[1]:
                    self.jobs[u[0]][1] = True
                self.lock.notify_all()
            return True
        return False

    def offer(self, job, send=True):
        with self.lock:
            self.jobs[job[0]] = [job, False]
        if send:
            self.publish(self.base + "rcv", json.dumps(job), 1)

    def statuses(self, job_id):
        with self.lock:
            return [u for u in self.updates if u[1] == job_id]

    def wait(self, pred, timeout):
        with self.lock:
            return self.lock.wait_for(lambda: pred(self), timeout)

    def wait_final(self, job_id, timeout=TIMEOUT):
        if not self.wait(lambda q: any(u[2] in cj.TERMINAL for u in q.statuses(job_id)), timeout):
            return None
        return [u for u in self.statuses(job_id) if u[2] in cj.TERMINAL][0]


class BleFotaCloud(ft.FotaCloud):
    def __init__(self, *a, **kw):
        self.ble = None
        self.smp_on_g2c = 0  # value changes of the SMP characteristic on g2c (a job's responses must not be)
        super().__init__(*a, **kw)
        self.ble = BleJobs("%s%s/jobs/ble/" % (st.PREFIX, ft.DEVICE), self.publish)

    def _on_message(self, topic, payload):
        if self.ble and self.ble.handle(topic, payload):
            return
        text = payload.decode(errors="replace") if isinstance(payload, (bytes, bytearray)) else str(payload)
        if (topic.endswith("/g2c") and SMP_CHRC in text.upper()
                and '"device_characteristic_value_changed"' in text):
            self.smp_on_g2c += 1
        super()._on_message(topic, payload)


class BleFotaWorld(ft.FotaWorld):
    """ft.FotaWorld with SMP devices in the BlueZ fixture, desired by the
    cloud, and the BLE job service."""

    def __init__(self, pki, cert, folder, devices, desired=None, extra_conf=""):
        self.folder, self.pki, self.cert, self.journal = folder, pki, cert, False
        self.extra_conf = "[Bluetooth]\nFota=yes\n" + extra_conf
        self.daemon = self.peer = self.broker = self.bus = self.mock = self.sim = self.files = None
        self.killed = []
        self.bus = ft.bf.Bus(folder)
        self.mock = ft.bf.BluezMock(self.bus, folder)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.fx = dbus.Interface(self.mock.conn.get_object("org.bluez", "/"), "org.nrfgw.FotaTarget")
        self.paths = {}
        for address, opts in devices.items():
            if opts.get("nrf5"):  # an nRF5 SDK application with buttonless Secure DFU (nrfdfu_target.py)
                self.paths[address] = str(self.fx.NrfDfuAddDevice("hci0", address, json.dumps(opts)))
            else:
                self.paths[address] = str(self.fx.SmpAddDevice("hci0", address, json.dumps(opts)))
        self.broker = st.Broker(os.path.join(folder, "broker"), pki)
        self.broker.start()
        self.peer = BleFotaCloud(self.broker, pki, ft.DEVICE,
                                 desired_connections=list(devices) if desired is None else desired)
        self.peer.start()
        if not self.peer.connected.wait(10):
            raise RuntimeError("the stand-in for nRF Cloud could not connect")
        st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text())
        self.files = fs.FileServer(pki.server)
        self.modem = self.provisioned_sim(())
        self.start_daemon()

    @property
    def ble(self):
        return self.peer.ble

    def smp_state(self, address):
        return json.loads(self.fx.SmpState(self.paths[address]))

    def slot(self, address, n):
        return bytes(self.fx.SmpSlot(self.paths[address], n))

    def dfu_state(self, address):
        return json.loads(self.fx.NrfDfuState(self.paths[address]))

    def dfu_firmware(self, address):
        return bytes(self.fx.NrfDfuFirmware(self.paths[address]))

    def nrf5_job(self, job_id, address, stem, firmware, version):
        """nRF Cloud's job for an nRF5 DFU: "path" holds the init packet and the image, space separated,
        the size is the total of both."""
        init = dfu.make_init_packet(firmware, version)
        self.files.add(stem + ".dat", init)
        self.files.add(stem + ".bin", firmware)
        return [address, job_id, cj.APP, len(init) + len(firmware), self.files.host,
                "%s.dat %s.bin" % (stem, stem)]

    def ble_job(self, job_id, address, name, data):
        self.files.add(name, data)
        return [address, job_id, cj.APP, len(data), self.files.host, name]

    def wait_asked(self, address, timeout=60):
        if not self.ble.wait(lambda q: address in q.requests, timeout):
            raise AssertionError("the gateway never asked for the job of %s on jobs/ble/req\n%s"
                                 % (address, self.diag()))


class BleFotaTest(ft.WorldTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.pki, cls.cert = pt.make_pki()


    def world(self, devices, **kw):
        name = self.id().split(".")[-1]
        self.w = BleFotaWorld(self.pki, self.cert, pt.subdir(self.tmp, name), devices, **kw)
        return self.w

    def check(self, job, tail):
        """DOWNLOADING 0, multiples of 10 increasing, 100; then exactly tail."""
        address, job_id = job[0], job[1]
        statuses = self.w.ble.statuses(job_id)
        text = "statuses: %s\n%s" % (statuses, self.w.diag())
        pct = []
        i = 0
        while i < len(statuses) and statuses[i][2] == cj.DOWNLOADING:
            self.assertEqual(statuses[i][:2], [address, job_id], text)
            pct.append(statuses[i][3])
            i += 1
        self.assertTrue(pct and pct[0] == 0 and pct[-1] == 100, text)
        self.assertEqual(pct, sorted(set(pct)), text)
        self.assertTrue(all(p % 10 == 0 for p in pct), text)
        self.assertEqual(statuses[i:], tail, text)

    def test_smp_update(self):
        w = self.world({A: {"version": [1, 0, 0]}})
        image = smp.make_image((2, 1, 0), 48 * KB, seed=1)
        w.wait_asked(A)
        self.assertTrue(w.wait_shadow(lambda p: ((p.reported.get("device") or {}).get("serviceInfo") or {})
                                      .get("fota_v2_ble") is True), "fota_v2_ble not reported")
        job = w.ble_job("ble-job-1", A, "zephyr/app_update.bin", image)
        w.ble.offer(job)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        s = w.smp_state(A)
        self.assertEqual(s["version"], "2.1.0")
        self.assertEqual(w.slot(A, 0), image)  # byte by byte what the file server served
        self.assertEqual(s["slots"][0]["sha256"], hashlib.sha256(image).hexdigest())
        self.assertTrue(s["slots"][0]["confirmed"], s)
        self.assertEqual(s["swap"], "none", s)
        self.assertEqual(s["boots"], 1, s)
        # The transfer's progress is in the log, not in extra cloud messages, and the device's SMP
        # responses are the job's: none went to the cloud as a notification.
        self.assertIn("100% transferred to " + A, w.daemon.log())
        self.assertEqual(w.peer.smp_on_g2c, 0)
        # The image came through the modem's download, whole, once.
        self.assertEqual(len(w.files.requests_for("zephyr/app_update.bin")), 1, w.files.requests)
        time.sleep(1)
        self.assertEqual(len([u for u in w.ble.statuses(job[1]) if u[2] in cj.TERMINAL]), 1, w.ble.statuses(job[1]))
        # Nothing left but the id of the finished job (a late copy of the job is ignored).
        self.assertEqual(os.listdir(os.path.join(w.state_dir, "blefota")), [A + ".last"])

    def test_image_rejected_by_device(self):
        w = self.world({A: {"version": [1, 0, 0]}})
        image = bytearray(smp.make_image((2, 0, 0), 32 * KB, seed=2))
        image[100] ^= 0xff  # the image's SHA-256 TLV no longer verifies: MCUboot does not boot it
        w.wait_asked(A)
        job = w.ble_job("ble-job-bad", A, "zephyr/bad.bin", bytes(image))
        w.ble.offer(job)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_APPLY], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.FAILED, ft.E_APPLY]])
        s = w.smp_state(A)
        self.assertEqual(s["version"], "1.0.0")
        self.assertEqual(w.slot(A, 1), bytes(image))  # transferred whole, refused at boot

    def test_device_not_connected(self):
        # The device is not desired yet: the job is ignored, then asked for at its connection.
        w = self.world({A: {"version": [1, 0, 0]}}, desired=[])
        image = smp.make_image((1, 1, 0), 24 * KB, seed=3)
        job = w.ble_job("ble-job-late", A, "zephyr/late.bin", image)
        w.wait_ready()
        w.ble.offer(job)
        time.sleep(3)
        self.assertEqual(w.ble.statuses(job[1]), [], w.diag())
        self.assertIn("not connected", w.daemon.log())
        w.peer.delta({"desiredConnections": [A]})
        w.wait_asked(A)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.assertEqual(w.slot(A, 0), image)

    def test_no_dfu_service_not_supported(self):
        w = self.world({})
        w.mock.add_device(B)
        w.peer.delta({"desiredConnections": [B]})
        w.wait_asked(B)
        job = w.ble_job("ble-job-none", B, "x.bin", b"x" * 100)
        w.ble.offer(job)
        final = w.ble.wait_final(job[1], 30)
        self.assertEqual(final, [B, job[1], cj.REJECTED, ft.E_UNSUPPORTED], w.diag())
        self.assertEqual(w.ble.statuses(job[1]), [final])

    def test_invalid_job_rejected(self):
        w = self.world({A: {"version": [1, 0, 0]}})
        w.wait_asked(A)
        w.peer.publish(w.ble.base + "rcv", json.dumps([A, "ble-job-inv", 99, 10, "h", "p"]), 1)
        final = w.ble.wait_final("ble-job-inv", 30)
        self.assertEqual(final, [A, "ble-job-inv", cj.REJECTED, ft.E_INVALID], w.diag())

    def wait_in_progress(self, job_id):
        ok = self.w.ble.wait(lambda q: any(u[2] == cj.IN_PROGRESS for u in q.statuses(job_id)), TIMEOUT)
        self.assertTrue(ok, "no IN_PROGRESS for %s: %s\n%s" % (job_id, self.w.ble.statuses(job_id), self.w.diag()))

    def wait_uploading(self, address, at_least=4 * KB):
        """Until the device has received part of the upload."""
        ok = st.wait_until(lambda: (self.w.smp_state(address).get("upload") or {}).get("off", 0) >= at_least,
                           TIMEOUT, step=0.01)
        self.assertTrue(ok, "the upload never started: %s" % self.w.smp_state(address))

    def test_device_disconnects_mid_transfer(self):
        # The link drops during the upload: the gateway reconnects and the upload resumes at the
        # offset the device reports (its upload state survives a link loss, not a reset).
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB}})
        image = smp.make_image((3, 0, 0), 256 * KB, seed=4)
        w.wait_asked(A)
        job = w.ble_job("ble-job-drop", A, "zephyr/drop.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 64 * KB)
        w.mock.link_loss(A)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        self.assertIn("disconnected during the transfer", w.daemon.log())
        self.assertEqual(w.slot(A, 0), image)
        self.assertEqual(w.smp_state(A)["boots"], 1)

    def test_daemon_killed_mid_transfer(self):
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB}})
        image = smp.make_image((4, 0, 0), 256 * KB, seed=5)
        w.wait_asked(A)
        job = w.ble_job("ble-job-kill", A, "zephyr/kill.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 32 * KB)
        w.restart_daemon()
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        # One report of each, across the restart: the job resumed in its transfer stage.
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        self.assertIn("resumes in stage transfer", w.daemon.log())
        self.assertEqual(w.slot(A, 0), image)
        self.assertEqual(len(w.files.requests_for("zephyr/kill.bin")), 1, w.files.requests)

    def test_two_devices_at_once(self):
        w = self.world({A: {"version": [1, 0, 0]}, B: {"version": [1, 0, 0]}})
        images = {A: smp.make_image((2, 0, 0), 64 * KB, seed=6), B: smp.make_image((2, 0, 1), 64 * KB, seed=7)}
        w.wait_asked(A)
        w.wait_asked(B)
        jobs = {a: w.ble_job("ble-job-" + a[-2:], a, "zephyr/%s.bin" % a[-2:], images[a]) for a in (A, B)}
        for a in (A, B):
            w.ble.offer(jobs[a])
        for a in (A, B):
            final = w.ble.wait_final(jobs[a][1])
            self.assertEqual(final, [a, jobs[a][1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(jobs[a][1]),
                                                                                   w.diag()))
            self.check(jobs[a], [[a, jobs[a][1], cj.IN_PROGRESS, ""], [a, jobs[a][1], cj.SUCCEEDED, ""]])
            self.assertEqual(w.slot(a, 0), images[a])
        # Both ran at once: the second started before the first ended.
        log = w.daemon.log()
        self.assertLess(log.index("downloading 1 file(s)", log.index("downloading 1 file(s)") + 1),
                        log.index(": SUCCEEDED"), log[-3000:])

    def test_final_report_resent_after_reconnect(self):
        """The final report published while the broker does not answer is kept in the state
        directory and sent again after the reconnection."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB}})
        image = smp.make_image((5, 0, 0), 256 * KB, seed=8)
        w.wait_asked(A)
        job = w.ble_job("ble-job-ack", A, "zephyr/ack.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 16 * KB)
        os.kill(w.broker.proc.pid, signal.SIGSTOP)
        try:
            ended = w.daemon.wait_log("BLE FOTA job %s of %s: SUCCEEDED" % (job[1], A), TIMEOUT)
            time.sleep(0.3)
            kept = os.listdir(os.path.join(w.state_dir, "blefota"))
            # TLS ends in the modem: without the serial link the MQTT connection is gone.
            self.assertEqual(w.sim.command("vanish 3000"), "OK")
            time.sleep(0.5)
        finally:
            os.kill(w.broker.proc.pid, signal.SIGCONT)
        self.assertTrue(ended, w.diag())
        self.assertIn(A + ".report", kept)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.assertTrue(st.wait_until(lambda: os.listdir(os.path.join(w.state_dir, "blefota")) == [A + ".last"], 30),
                        os.listdir(os.path.join(w.state_dir, "blefota")))
        terminal = [u for u in w.ble.statuses(job[1]) if u[2] in cj.TERMINAL]
        self.assertIn(len(terminal), (1, 2), terminal)  # the broker may have taken the first copy too
        self.assertEqual(w.slot(A, 0), image)

    def test_one_at_a_time_with_max_parallel_1(self):
        w = self.world({A: {"version": [1, 0, 0]}, B: {"version": [1, 0, 0]}},
                       extra_conf="MaxParallelFota=1\n")
        images = {A: smp.make_image((2, 0, 0), 32 * KB, seed=9), B: smp.make_image((2, 0, 1), 32 * KB, seed=10)}
        w.wait_asked(A)
        w.wait_asked(B)
        jobs = {a: w.ble_job("ble-job-seq-" + a[-2:], a, "zephyr/seq-%s.bin" % a[-2:], images[a]) for a in (A, B)}
        w.ble.offer(jobs[A])
        w.ble.wait(lambda q: q.statuses(jobs[A][1]), 30)
        w.ble.offer(jobs[B])
        for a in (A, B):
            self.assertEqual(w.ble.wait_final(jobs[a][1]), [a, jobs[a][1], cj.SUCCEEDED, ""], w.diag())
            self.assertEqual(w.slot(a, 0), images[a])
        with w.ble.lock:
            order = [(u[0], u[2]) for u in w.ble.updates]
        # B's first report comes after A's last: never two at once.
        self.assertLess(order.index((A, cj.SUCCEEDED)), order.index((B, cj.DOWNLOADING)), order)

    def test_memory_flat_1mb(self):
        """A 1 MB image: the daemon's RSS grows by at most 64 KB (the image is streamed
        through a file, never held).  Prints the figures (RSS and peak RSS); the bound is
        checked on RSS and without sanitizers (their allocator and shadow memory make RSS
        meaningless).  A first small job pays what the first download and transfer cost
        once (about 1.8 MB here, the same for any image size)."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 2048 * KB}})
        image = smp.make_image((6, 0, 0), 1024 * KB, seed=11)
        w.wait_asked(A)
        pid = w.daemon.proc.pid

        def vm(key):
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        start = vm("VmHWM")
        small = w.ble_job("ble-job-small", A, "zephyr/small.bin", smp.make_image((5, 0, 0), 32 * KB, seed=12))
        w.ble.offer(small)
        self.assertEqual(w.ble.wait_final(small[1]), [A, small[1], cj.SUCCEEDED, ""], w.diag())
        time.sleep(0.5)
        rss0, hwm0 = vm("VmRSS"), vm("VmHWM")
        job = w.ble_job("ble-job-1mb", A, "zephyr/big.bin", image)
        t0 = time.monotonic()
        w.ble.offer(job)
        self.wait_in_progress(job[1])
        t1 = time.monotonic()
        final = w.ble.wait_final(job[1], 300)
        t2 = time.monotonic()
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.assertEqual(w.slot(A, 0), image)
        time.sleep(0.5)
        rss1, hwm1 = vm("VmRSS"), vm("VmHWM")
        print("1 MB BLE FOTA: download %.1f s, transfer+test+reset+confirm %.1f s (%.0f bytes/s); "
              "peak RSS %d kB at start, %d kB after a 32 KB job, %d kB after the 1 MB job (+%d kB); "
              "RSS %d kB -> %d kB (+%d kB)" % (t1 - t0, t2 - t1, len(image) / (t2 - t1), start, hwm0, hwm1,
                                               hwm1 - hwm0, rss0, rss1, rss1 - rss0))
        cache = os.path.join(os.environ.get("NRFGW_BUILD_DIR", "build"), "CMakeCache.txt")
        with open(cache) if os.path.exists(cache) else open(os.devnull) as f:
            sanitized = "NRFGW_SANITIZE:BOOL=ON" in f.read()
        if not sanitized:
            self.assertLessEqual(rss1 - rss0, 64, "RSS grew by %d kB" % (rss1 - rss0))

    def test_dbus_progress(self):
        """The job's progress on the device's Device1 object, followed with `nrfcloud-gatewayctl monitor
        --json`: FotaStage goes waiting, downloading, transferring, testing, then "" when the job has
        ended; FotaProgress rises to 100, signalled a few times a second at most, not for every chunk;
        the log says each 10 %% of the transfer; `nrfcloud-gatewayctl devices` shows the job."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB}})
        image = smp.make_image((2, 2, 0), 256 * KB, seed=13)
        path = "/io/github/nrfcloud_gateway/dev_" + A.replace(":", "_")
        w.wait_asked(A)
        mon = subprocess.Popen([ft.sf.CTL, "monitor", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
        events, ctl_seen = [], []  # (time, changed) of Device1 at path; `devices` outputs during the transfer

        def read():
            for line in mon.stdout:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("path") == path and e.get("interface") == "Device1":
                    events.append((time.monotonic(), e["changed"]))
                    if e["changed"].get("FotaStage") == "transferring" and not ctl_seen:
                        ctl_seen.append(subprocess.run([ft.sf.CTL, "devices", "--json"], capture_output=True,
                                                       text=True, timeout=30).stdout)
                        ctl_seen.append(subprocess.run([ft.sf.CTL, "devices"], capture_output=True, text=True,
                                                       timeout=30).stdout)
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            time.sleep(0.5)  # the monitor's matches are installed
            job = w.ble_job("ble-job-bus", A, "zephyr/bus.bin", image)
            w.ble.offer(job)
            final = w.ble.wait_final(job[1])
            self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
            self.assertTrue(st.wait_until(lambda: any(c.get("FotaStage") == "" for _, c in events), 10), events)
        finally:
            mon.terminate()
            mon.wait(10)
            reader.join(10)
            mon.stdout.close()
        fota = [(t, c) for t, c in events if any(k.startswith("Fota") for k in c)]
        text = "\n".join("%.3f %s" % (t, c) for t, c in fota)
        # Every stage in order, each signalled once when it begins.
        stages = [c["FotaStage"] for _, c in fota if "FotaStage" in c]
        self.assertEqual(stages, ["waiting", "downloading", "transferring", "testing", ""], text)
        self.assertTrue(all(c.get("FotaJobId", job[1]) == job[1] for _, c in fota[:-1]), text)
        self.assertEqual(fota[-1][1].get("FotaJobId"), "", text)
        # The transfer: the device's offset of the image, rising to 100 %.
        stage, transfer, testing = None, [], []
        for t, c in fota:
            stage = c.get("FotaStage", stage)
            if stage == "transferring":
                transfer.append((t, c))
            elif stage == "testing":
                testing.append(c)
        pct = [c["FotaProgress"] for _, c in transfer if "FotaProgress" in c]
        self.assertEqual(pct, sorted(pct), text)
        self.assertTrue(any(0 < p < 100 for p in pct), text)  # seen moving, not only its ends
        # The image's size once the transfer has opened it (0 before).
        self.assertEqual([c["FotaBytesTotal"] for _, c in transfer if c.get("FotaBytesTotal")], [len(image)], text)
        done = [c["FotaBytesDone"] for _, c in transfer if "FotaBytesDone" in c]
        self.assertEqual(done, sorted(done), text)
        self.assertEqual(testing[0].get("FotaProgress"), 100, text)
        self.assertEqual(testing[0].get("FotaBytesDone", len(image)), len(image), text)
        # Rate-limited: at most one signal per 250 ms (plus the stage's own), far fewer than the
        # upload's requests (at most 512 bytes each: 512 and more for 256 KB).
        span = transfer[-1][0] - transfer[0][0]
        self.assertLessEqual(len(transfer), 2 + span / 0.25 * 1.5 + 2, text)
        self.assertLess(len(transfer), 256 * KB // 512 // 4, text)
        # The journal: each 10 % of the transfer.
        log = w.daemon.log()
        for p in range(10, 101, 10):
            self.assertIn("BLE FOTA job %s: %d%% transferred to %s" % (job[1], p, A), log)
        # nrfcloud-gatewayctl devices, asked during the transfer.
        self.assertEqual(len(ctl_seen), 2, text)
        dev = [d for d in json.loads(ctl_seen[0]) if d["Address"] == A][0]
        self.assertEqual(dev["FotaJobId"], job[1], ctl_seen[0])
        self.assertIn(dev["FotaStage"], ("transferring", "testing"), ctl_seen[0])
        self.assertEqual(dev["FotaBytesTotal"], len(image), ctl_seen[0])
        self.assertIn("FOTA job %s: " % job[1], ctl_seen[1])
        # Once over: nothing shown.
        r = subprocess.run([ft.sf.CTL, "devices", "--json"], capture_output=True, text=True, timeout=30)
        dev = [d for d in json.loads(r.stdout) if d["Address"] == A][0]
        self.assertEqual((dev["FotaJobId"], dev["FotaStage"], dev["FotaProgress"]), ("", "", 0), r.stdout)
    # ---- the device's other traffic during its job ----

    def c2g(self, op):
        """Sends a c2g operation; returns its id."""
        self.op_count = getattr(self, "op_count", 0) + 1
        rid = "op-%d" % self.op_count
        self.w.peer.c2g({"type": "operation", "id": rid, "operation": op})
        return rid

    def arrivals(self):
        """[(index in the order the broker delivered them, topic, payload)] of every message."""
        return [(i, t, p) for i, (t, p) in enumerate(list(self.w.peer.messages))]

    def g2c(self, pred=lambda e: True):
        return [(i, e) for i, e in ((i, json.loads(p)) for i, t, p in self.arrivals() if t == G2C) if pred(e)]

    def answers(self, rid, count, timeout=60):
        ok = st.wait_until(lambda: len(self.g2c(lambda e: e.get("requestId") == rid)) >= count, timeout)
        got = self.g2c(lambda e: e.get("requestId") == rid)
        self.assertTrue(ok, "%d of %d answers to %s: %s\n%s" % (len(got), count, rid, got, self.w.diag()))
        return got

    def final_index(self, address, job_id):
        """Where the final report of the job came among the messages."""
        for i, t, p in self.arrivals():
            if t == self.w.ble.base + "update":
                u = json.loads(p)
                if u[:2] == [address, job_id] and u[2] in cj.TERMINAL:
                    return i
        self.fail("no final report of %s" % job_id)

    def subscribe(self, address):
        rid = self.c2g({"type": "device_descriptor_value_write", "deviceAddress": address, "serviceUUID": NUS,
                        "characteristicUUID": NUS_TX, "descriptorUUID": "2902", "descriptorValue": [1, 0]})
        got = self.answers(rid, 1)
        self.assertEqual(got[0][1]["event"]["type"], "device_descriptor_value_write_result", got)

    def notifications(self, address):
        """Sequence numbers of the unsolicited NUS TX notifications of a device, as they arrived."""
        return [(i, int.from_bytes(bytes(e["event"]["characteristic"]["value"][:4]), "little"))
                for i, e in self.g2c(lambda e: e["event"]["type"] == "device_characteristic_value_changed"
                                     and e["requestId"] == "N/A"
                                     and e["event"]["device"]["address"]["address"] == address
                                     and e["event"]["characteristic"]["uuid"] == NUS_TX)]

    def test_c2g_held_during_transfer(self):
        """A read and a write the cloud sends to a device during its SMP upload are not sent to it
        then: they run after the job, in order, answered with their request ids after SUCCEEDED (the
        read gives the new firmware's version), and the upload is intact.  The application's own
        notifications still reach the cloud during the job."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB, "gatt": APP_GATT}})
        image = smp.make_image((2, 2, 0), 256 * KB, seed=13)
        w.wait_asked(A)
        self.subscribe(A)
        job = w.ble_job("ble-job-held", A, "zephyr/held.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 16 * KB)
        read = self.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180A",
                         "characteristicUUID": "2A26"})
        write = self.c2g({"type": "device_characteristic_value_write", "deviceAddress": A, "serviceUUID": NUS,
                          "characteristicUUID": NUS_RX, "characteristicValue": [1, 2, 3]})
        disc = self.c2g({"type": "device_discover", "deviceAddress": A})
        self.assertTrue(w.daemon.wait_log("c2g operation device_discover (%s)" % disc, 30), w.diag())
        self.assertEqual(w.mock.notify(A, ft.bf.NUS, ft.bf.NUS_TX, 5, start=1, size=4), 5)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        got = {rid: self.answers(rid, n) for rid, n in ((read, 2), (write, 2), (disc, 1))}
        done = self.final_index(A, job[1])
        text = "final report at %d, answers %s\n%s" % (done, got, w.diag())
        # After the job; the read and the write in the order they were sent (the device's operations
        # run one at a time); the discovery is answered from the model at its turn, as always.
        order = [i for rid in (read, write) for i, _ in got[rid]]
        self.assertGreater(min(order + [got[disc][0][0]]), done, text)
        self.assertEqual(order, sorted(order), text)
        self.assertEqual([e["event"]["type"] for _, e in got[read]],
                         ["device_characteristic_value_read_result", "device_characteristic_value_changed"], text)
        self.assertEqual(bytes(got[read][0][1]["event"]["characteristic"]["value"]), b"2.2.0", text)
        self.assertEqual([e["event"]["type"] for _, e in got[write]],
                         ["device_characteristic_value_write_result", "device_characteristic_value_changed"], text)
        self.assertEqual(got[write][0][1]["event"]["characteristic"]["value"], [1, 2, 3], text)
        self.assertEqual(got[disc][0][1]["event"]["type"], "device_discover_result", text)
        # The write reached the device after the last SMP request of the job, not in between.
        log = w.mock.log()
        writes = [k for k, x in enumerate(log) if x["method"] == "WriteValue" and w.paths[A] in x["path"]]
        ours = [k for k in writes if log[k].get("value") == "010203"]
        self.assertEqual(len(ours), 1, log[-20:])
        self.assertEqual(ours[0], writes[-1], log[-20:])
        # The upload is intact, the device booted once; its own notifications went on during the job.
        self.assertEqual(w.slot(A, 0), image)
        self.assertEqual(w.smp_state(A)["boots"], 1)
        notes = self.notifications(A)
        self.assertEqual([n for _, n in notes], [1, 2, 3, 4, 5], notes)
        self.assertLess(notes[-1][0], done, notes)
        self.assertEqual(w.peer.smp_on_g2c, 0)
        self.assertEqual(w.daemon.log().count("waits: the device is being updated"), 3)

    def test_two_updating_third_streaming(self):
        """Two devices update at once while a third streams notifications the whole time: every one
        of them reaches the cloud, in order; the third's reads are answered at once, those of an
        updating device after its job.  (A takes 8 s to reboot into its new image: its job lasts
        while B's image comes through the modem and goes to B.)"""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB, "reset_ms": 8000},
                        B: {"version": [1, 0, 0], "slot_size": 512 * KB}}, desired=[A, B, C])
        w.mock.add_device(C)
        images = {A: smp.make_image((2, 0, 0), 256 * KB, seed=14), B: smp.make_image((2, 0, 1), 64 * KB, seed=15)}
        w.wait_asked(A)
        w.wait_asked(B)
        w.wait_asked(C)
        self.subscribe(C)
        sent = [0]
        stop = threading.Event()

        def stream():
            # Its own connection to the fixture: the test's goes on meanwhile.
            conn = dbus.bus.BusConnection(w.bus.address)
            fx = dbus.Interface(conn.get_object("org.bluez", "/"), "org.nrfgw.BluezFixture")
            try:
                while not stop.is_set():
                    sent[0] += int(fx.Notify(w.mock.path(C), ft.bf.NUS, ft.bf.NUS_TX, dbus.UInt32(4),
                                             dbus.UInt32(sent[0] + 1), dbus.UInt32(8), timeout=60))
                    stop.wait(0.1)
            finally:
                conn.close()
        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            self.assertTrue(st.wait_until(lambda: len(self.notifications(C)) >= 8, 30), w.diag())
            jobs = {a: w.ble_job("ble-job-s" + a[-2:], a, "zephyr/s%s.bin" % a[-2:], images[a]) for a in (A, B)}
            for a in (A, B):
                w.ble.offer(jobs[a])
            self.wait_uploading(A, 8 * KB)
            held = self.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180A",
                             "characteristicUUID": "2A26"})
            now = self.c2g({"type": "device_characteristic_value_read", "deviceAddress": C, "serviceUUID": "180F",
                            "characteristicUUID": "2A19"})
            for a in (A, B):
                final = w.ble.wait_final(jobs[a][1])
                self.assertEqual(final, [a, jobs[a][1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(jobs[a][1]),
                                                                                       w.diag()))
            time.sleep(1)
        finally:
            stop.set()
            streamer.join(60)
        for a in (A, B):
            self.check(jobs[a], [[a, jobs[a][1], cj.IN_PROGRESS, ""], [a, jobs[a][1], cj.SUCCEEDED, ""]])
            self.assertEqual(w.slot(a, 0), images[a])
        ok = st.wait_until(lambda: len(self.notifications(C)) >= sent[0], 60)
        notes = self.notifications(C)
        text = "%d sent, %d arrived\n%s" % (sent[0], len(notes), w.diag())
        self.assertTrue(ok, text)
        self.assertEqual([n for _, n in notes], list(range(1, sent[0] + 1)), text)  # none lost, in order
        finals = {a: self.final_index(a, jobs[a][1]) for a in (A, B)}
        started = min(i for i, t, p in self.arrivals() if t == w.ble.base + "update")
        self.assertLess(notes[0][0], started, text)  # streaming before the jobs began ...
        self.assertGreater(notes[-1][0], max(finals.values()), text)  # ... and after both ended
        self.assertGreater(len([i for i, _ in notes if started < i < min(finals.values())]), 20, text)
        # Both jobs at once: B's transfer went on while A's job did.
        log = w.daemon.log()
        self.assertLess(log.index("10%% transferred to %s" % B), log.index("%s of %s: SUCCEEDED" % (jobs[A][1], A)),
                        log[-3000:])
        # C's read was answered during A's job, A's after it (with the new version).
        self.assertLess(self.answers(now, 2)[0][0], finals[A], text)
        got = self.answers(held, 2)
        self.assertGreater(got[0][0], finals[A], text)
        self.assertEqual(bytes(got[0][1]["event"]["characteristic"]["value"]), b"2.0.0", text)

    def test_desired_changes_during_transfer(self):
        """A desiredConnections change that keeps the device being updated does not disturb its
        job; one that removes it ends its job FAILED "Error applying update" at once (it cannot
        finish without the device), and what the cloud sent to it meanwhile is answered with an
        error.  (A takes 15 s to reboot after its reset: its job is still on when the changes come.)"""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB, "reset_ms": 15000}}, desired=[A])
        w.mock.add_device(C)
        image = smp.make_image((3, 1, 0), 128 * KB, seed=16)
        w.wait_asked(A)
        job = w.ble_job("ble-job-removed", A, "zephyr/removed.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 16 * KB)
        w.peer.delta({"desiredConnections": [A, C]})
        w.wait_asked(C)
        time.sleep(0.5)
        log = w.daemon.log()
        for text in ("disconnected during the transfer", A + ": no longer desired", "starting the transfer again"):
            self.assertNotIn(text, log)
        self.assertTrue(w.mock.state(A)["connected"])
        self.assertEqual(w.ble.statuses(job[1])[-1], [A, job[1], cj.IN_PROGRESS, ""])
        read = self.c2g({"type": "device_characteristic_value_read", "deviceAddress": A, "serviceUUID": "180A",
                         "characteristicUUID": "2A26"})
        self.assertTrue(w.daemon.wait_log("c2g operation device_characteristic_value_read (%s)" % read, 30), w.diag())
        w.peer.delta({"desiredConnections": [C]})
        final = w.ble.wait_final(job[1], 30)
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_APPLY], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.FAILED, ft.E_APPLY]])
        self.assertIn("removed from desiredConnections, ending the job", w.daemon.log())
        e = self.answers(read, 1)[0][1]
        self.assertEqual(e["event"]["type"], "error", e)
        self.assertIn("removed from desiredConnections", e["event"]["error"]["description"], e)
        self.assertLess(e["event"]["error"]["code"], 0, e)
        self.assertEqual(w.smp_state(A)["version"], "1.0.0")
        self.assertTrue(st.wait_until(lambda: os.listdir(os.path.join(w.state_dir, "blefota")) == [A + ".last"], 30),
                        os.listdir(os.path.join(w.state_dir, "blefota")))
        self.assertIn("waits: the device is being updated", w.daemon.log())

    # ---- nRF5 SDK Secure DFU (tests/ble/nrfdfu_target.py) and the device's return after its reset ----

    def peer_text(self):
        return "\n".join(p.decode(errors="replace") if isinstance(p, (bytes, bytearray)) else str(p)
                         for t, p in self.w.peer.received())

    def check_app_held(self, address):
        """While the device is in its bootloader the gateway does not try its own address (real
        controllers create one LE connection at a time), and it tries again once the image is taken."""
        log = self.w.daemon.log()
        during = log[log.index("looking for it at "):log.index("took the image")]
        self.assertNotIn(address + ": idle → connecting", during)
        self.assertIn(address + ": expected back, connecting again now", log)

    def test_nrf5_update(self):
        """A job with one file for an nRF5 device: Secure DFU needs the init packet and the image as two
        files (nRF Cloud lists "x.dat x.bin"); a DFU package (.zip) or a lone .bin cannot be sent.  The
        job is FAILED with NCS's string for a file that does not fit the update type, nothing is
        downloaded and the device is not touched."""
        w = self.world({A: {"nrf5": True, "version": 1}})
        w.wait_asked(A)
        job = w.ble_job("ble-job-zip", A, "nrf5/app_dfu_package.zip", b"PK" + bytes(4000))
        w.ble.offer(job)
        final = w.ble.wait_final(job[1], 30)
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_TYPE], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.assertEqual(w.ble.statuses(job[1]), [final])
        self.assertEqual(w.files.requests_for("nrf5/app_dfu_package.zip"), [])
        s = w.dfu_state(A)
        self.assertEqual((s["mode"], s["version"], s["updates"]), ("app", 1, 0), s)
        self.assertIn("needs an init packet (.dat) and an image (.bin)", w.daemon.log())

    def test_nrf5_two_file_update(self):
        """The .dat and the .bin through the modem (one size for both, percent over both), the
        buttonless entry, the bootloader at the address + 1 (a connection of the gateway's own, never
        shown to the cloud), the control point protocol with receipts every few packets, and the
        application back at its own address with the new firmware revision."""
        w = self.world({A: {"nrf5": True, "version": 1}})
        firmware = hashlib.shake_256(b"nrf5 app 2").digest(40 * KB + 123)  # ten objects, the last a short one
        w.wait_asked(A)
        job = w.nrf5_job("ble-job-nrf5", A, "nrf5/app_v2", firmware, 2)
        w.ble.offer(job)
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        self.assertEqual(w.dfu_firmware(A), firmware)  # byte by byte what the file server served
        s = w.dfu_state(A)
        self.assertEqual((s["mode"], s["version"], s["updates"]), ("app", 2, 1), s)
        self.assertGreater(s["receipts"], 0, s)  # the transfer ran with packet receipt notifications
        log = w.daemon.log()
        self.assertIn("looking for it at " + dfu.shift_address(A, 1), log)
        self.check_app_held(A)
        self.assertIn("firmware revision 2 (was 1)", log)
        self.assertIn("100% transferred to " + A, log)
        for name in ("nrf5/app_v2.dat", "nrf5/app_v2.bin"):
            self.assertEqual(len(w.files.requests_for(name)), 1, w.files.requests)
        # The bootloader is the gateway's own connection: the cloud never hears of its address.
        self.assertNotIn(dfu.shift_address(A, 1), self.peer_text().upper())
        time.sleep(1)
        self.assertEqual(len([u for u in w.ble.statuses(job[1]) if u[2] in cj.TERMINAL]), 1, w.ble.statuses(job[1]))
        self.assertEqual(os.listdir(os.path.join(w.state_dir, "blefota")), [A + ".last"])

    def test_nrf5_device_never_back(self):
        """The bootloader takes the image but the application never comes back:
        FAILED "Error applying update" after [Bluetooth] FotaRebootTimeoutSec=."""
        w = self.world({A: {"nrf5": True, "version": 1, "never_back": True}}, extra_conf="FotaRebootTimeoutSec=6\n")
        firmware = hashlib.shake_256(b"nrf5 app 3").digest(12 * KB)
        w.wait_asked(A)
        job = w.nrf5_job("ble-job-nrf5-gone", A, "nrf5/app_v3", firmware, 3)
        w.ble.offer(job)
        final = w.ble.wait_final(job[1], 90)
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_APPLY], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.FAILED, ft.E_APPLY]])
        s = w.dfu_state(A)
        self.assertEqual(s["mode"], "dead", s)  # the bootloader took the whole image: the failure is after it
        self.assertEqual(w.dfu_firmware(A), firmware)
        self.assertIn("did not come back within 6 s", w.daemon.log())

    def test_smp_device_never_back(self):
        """An SMP device that does not come back after the reset into the image under test:
        FAILED "Error applying update" after [Bluetooth] FotaRebootTimeoutSec=."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB}}, extra_conf="FotaRebootTimeoutSec=6\n")
        image = smp.make_image((2, 2, 0), 128 * KB, seed=13)
        w.wait_asked(A)
        job = w.ble_job("ble-job-gone", A, "zephyr/gone.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 16 * KB)
        # From now on the device cannot be connected to (it never boots again after the reset).
        w.mock.inject(w.paths[A], "Connect", "org.bluez.Error.Failed", "le-connection-abort-by-local", 10 ** 6)
        final = w.ble.wait_final(job[1], 90)
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_APPLY], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.FAILED, ft.E_APPLY]])
        self.assertEqual(w.smp_state(A)["boots"], 1)  # it did reset
        self.assertIn("did not come back within 6 s", w.daemon.log())

    def test_nrf5_daemon_killed_in_bootloader(self):
        """The daemon restarts while the bootloader receives the image: the job resumes in its
        bootloader stage (the device is not at its own address), the bootloader's Select tells
        how far it got, and the update ends SUCCEEDED with one report of each."""
        w = self.world({A: {"nrf5": True, "version": 1}})
        firmware = hashlib.shake_256(b"nrf5 app 4").digest(160 * KB)
        w.wait_asked(A)
        job = w.nrf5_job("ble-job-nrf5-kill", A, "nrf5/app_v4", firmware, 4)
        w.ble.offer(job)
        ok = st.wait_until(lambda: w.dfu_state(A)["received"] >= 24 * KB, TIMEOUT, step=0.01)
        self.assertTrue(ok, "the transfer never started: %s" % w.dfu_state(A))
        w.restart_daemon()
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        self.assertIn("resumes in stage bootloader", w.daemon.log())
        self.assertEqual(w.dfu_firmware(A), firmware)
        s = w.dfu_state(A)
        self.assertEqual((s["mode"], s["version"], s["updates"]), ("app", 4, 1), s)
        for name in ("nrf5/app_v4.dat", "nrf5/app_v4.bin"):
            self.assertEqual(len(w.files.requests_for(name)), 1, w.files.requests)

    def test_smp_device_never_back_across_restart(self):
        """The daemon restarts while an SMP device resets into the image under test, and the device
        never comes back: the restarted daemon still ends the job FAILED "Error applying update"."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 512 * KB, "reset_ms": 1500}},
                       extra_conf="FotaRebootTimeoutSec=6\n")
        image = smp.make_image((2, 3, 0), 64 * KB, seed=14)
        w.wait_asked(A)
        job = w.ble_job("ble-job-gone-2", A, "zephyr/gone2.bin", image)
        w.ble.offer(job)
        self.wait_uploading(A, 16 * KB)
        w.mock.inject(w.paths[A], "Connect", "org.bluez.Error.Failed", "le-connection-abort-by-local", 10 ** 6)
        state = os.path.join(w.state_dir, "blefota", A)

        def stage():
            try:
                with open(state) as f:
                    return f.read().split(" ", 1)[0]
            except OSError:
                return None
        self.assertTrue(st.wait_until(lambda: stage() == "testing", TIMEOUT, step=0.01), w.diag())
        w.restart_daemon()
        final = w.ble.wait_final(job[1], 90)
        self.assertEqual(final, [A, job[1], cj.FAILED, ft.E_APPLY], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.FAILED, ft.E_APPLY]])
        self.assertIn("resumes in stage testing", w.daemon.log())
        self.assertIn("did not come back within 6 s", w.daemon.log())

    def test_nrf5_bootloader_link_lost(self):
        """The bootloader's link drops mid-transfer: the gateway connects to it again and resumes
        where the bootloader's Select says it is (what it received survives a disconnection)."""
        w = self.world({A: {"nrf5": True, "version": 1}})
        firmware = hashlib.shake_256(b"nrf5 app 5").digest(160 * KB)
        w.wait_asked(A)
        job = w.nrf5_job("ble-job-nrf5-drop", A, "nrf5/app_v5", firmware, 5)
        w.ble.offer(job)
        ok = st.wait_until(lambda: w.dfu_state(A)["received"] >= 40 * KB + 1000, TIMEOUT, step=0.01)
        self.assertTrue(ok, "the transfer never started: %s" % w.dfu_state(A))
        w.mock.link_loss(dfu.shift_address(A, 1))
        self.finish_after_drop(job, firmware, 5)

    def test_nrf5_bootloader_link_lost_after_execute(self):
        """The link drops right after the bootloader executed a data object: Select gives an
        object boundary, and the bootloader refuses to execute that object again (operation not
        permitted, as nrf_dfu_req_handler.c does); the gateway goes on with the next object."""
        w = self.world({A: {"nrf5": True, "version": 1, "drop_after_execute": 3}})
        firmware = hashlib.shake_256(b"nrf5 app 6").digest(40 * KB)
        w.wait_asked(A)
        job = w.nrf5_job("ble-job-nrf5-exec", A, "nrf5/app_v6", firmware, 6)
        w.ble.offer(job)
        self.finish_after_drop(job, firmware, 6)
        self.assertIn("had executed the first 12288 bytes already", w.daemon.log())
        self.assertEqual(w.dfu_state(A)["updates"], 1)

    def finish_after_drop(self, job, firmware, version):
        w = self.w
        final = w.ble.wait_final(job[1])
        self.assertEqual(final, [A, job[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(job[1]), w.diag()))
        self.check(job, [[A, job[1], cj.IN_PROGRESS, ""], [A, job[1], cj.SUCCEEDED, ""]])
        self.assertIn("the DFU bootloader of %s disconnected, resuming" % A, w.daemon.log())
        self.assertRegex(w.daemon.log(), r"the bootloader of %s has [1-9][0-9]* bytes of the image already" % A)
        self.assertEqual(w.dfu_firmware(A), firmware)
        self.assertEqual(w.dfu_state(A)["version"], version)
        self.check_app_held(A)


    def test_gateway_and_ble_jobs_together(self):
        """A gateway job (the nRF91's application image) and a BLE job offered together: neither
        waits for the other.  The BLE image keeps coming in while the modem downloads its own, and
        the modem's reset that applies the gateway's image only interrupts the BLE download, which
        resumes with a range request.  Each job ends SUCCEEDED, once."""
        w = self.world({A: {"version": [1, 0, 0], "slot_size": 1024 * KB}})
        ble_times = []  # (time, jobs/ble/update array)
        handle = w.ble.handle

        def timed(topic, payload):
            if topic == w.ble.base + "update":
                ble_times.append((time.monotonic(), json.loads(payload)))
            return handle(topic, payload)
        w.ble.handle = timed
        w.wait_asked(A)
        w.wait_ready()
        # The BLE image lasts about 8 s at its rate, the gateway's about 3 s: the modem resets
        # for the gateway's image while the BLE image is still coming in.
        image = smp.make_image((7, 0, 0), 512 * KB, seed=21)
        ble = w.ble_job("ble-job-with-gw", A, "zephyr/with-gw.bin", image)
        w.files.set_fault(ble[5], rate=64 * KB)
        app_name = "gw-app-1/app-1.2.3.signed.bin"
        gw = w.job("gw-app-1", cj.APP, app_name, fs.app_image("1.2.3", 48 * KB))
        w.files.set_fault(app_name, rate=16 * KB)
        w.jobs.offer(gw)
        w.ble.offer(ble)

        final = w.wait_final(gw[0])
        self.assertEqual(final, [gw[0], cj.SUCCEEDED, ""], w.diag())
        final = w.ble.wait_final(ble[1])
        self.assertEqual(final, [A, ble[1], cj.SUCCEEDED, ""], "%s\n%s" % (w.ble.statuses(ble[1]), w.diag()))
        time.sleep(2)  # no second final report of either
        ft.check_sequence(self, w.jobs.statuses(gw[0]), gw[0], [[gw[0], cj.IN_PROGRESS, ""],
                                                                [gw[0], cj.SUCCEEDED, ""]], diag=w.diag())
        self.check(ble, [[A, ble[1], cj.IN_PROGRESS, ""], [A, ble[1], cj.SUCCEEDED, ""]])
        self.assertEqual(w.sim.status().get("app"), "1.2.3", w.sim.status())
        self.assertEqual(w.slot(A, 0), image)
        self.assertEqual(w.smp_state(A)["version"], "7.0.0")

        # The BLE job made progress while the gateway job downloaded: BLE DOWNLOADING reports
        # between the gateway's first DOWNLOADING and its DOWNLOADING 100.
        gw_dl = [t for t, u in w.jobs.timed_statuses(gw[0]) if u[1] == cj.DOWNLOADING]
        start, end = gw_dl[0], gw_dl[-1]
        during = [u[3] for t, u in ble_times
                  if u[1] == ble[1] and u[2] == cj.DOWNLOADING and start <= t <= end and 0 < u[3] < 100]
        text = "gateway DOWNLOADING %.2f..%.2f; BLE: %s" % (
            start, end, [(round(t, 2), u[2:]) for t, u in ble_times if u[1] == ble[1]])
        print(text)
        self.assertGreaterEqual(len(during), 2, "the BLE job did not progress during the gateway's download: "
                                + text)

        # The modem's reset for the gateway's image interrupted the BLE download: resumed with a
        # range from where it was, not started again nor failed.
        log = w.daemon.log()
        self.assertIn("BLE FOTA job %s: download of %s interrupted" % (ble[1], ble[5]), log)
        reqs = w.files.requests_for(ble[5])
        self.assertGreaterEqual(len(reqs), 2, reqs)
        self.assertIsNone(reqs[0].range, reqs)
        offsets = [int(r.range.split("=")[1].split("-")[0]) if r.range else 0 for r in reqs[1:]]
        self.assertTrue(all(0 < o <= reqs[0].sent for o in offsets), reqs)


if __name__ == "__main__":
    name = os.environ.get("BLEFOTA_TEST")
    argv = [sys.argv[0]] + (["BleFotaTest." + name] if name else [])
    unittest.main(argv=argv, verbosity=2)
