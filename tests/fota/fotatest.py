# SPDX-License-Identifier: MIT
"""Test parts for the FOTA end-to-end tests: the whole gateway in its default
mode with real parts, and nRF Cloud's job service and bundle host standing in.

  * nrf91-sim on a pty, provisioned by `nrfcloud-gatewayctl provision` with the
    test PKI's root CA in security tag 16842753 (TLS ends in the sim);
  * mosquitto with mutual TLS and the nRF Cloud gateway ACL (cloudtest.Broker);
  * FotaCloud: the stand-in for nRF Cloud of the session tests (shadow) with
    a job queue (cloudtest_jobs.JobQueue) on the gateway's job topics;
  * fileserver.FileServer: HTTPS on 127.0.0.1 with a certificate for
    `localhost` from the same root CA; jobs name it `localhost:<port>`;
  * a private D-Bus system bus with the BlueZ mock (no devices);
  * nrfcloud-gatewayd, TLS=modem, debug log, restartable on its state
    directory (SIGKILL tests).

Every process is stopped by its PID; every file lives in a temporary folder.
FOTA_KEEP_GOING=1 prints the job traffic as it comes (for a manual run)."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "protocol"))
sys.path.insert(0, os.path.join(HERE, "..", "cloud"))
import prototest as pt  # noqa: E402
import cloudtest_jobs as cj  # noqa: E402
import fileserver as fs  # noqa: E402

st, bf, sf = pt.st, pt.bf, pt.sf
DEVICE = pt.DEVICE
SEC_TAG = 16842753
OLD_APP = "1.0.0"  # nrf91-sim's application version unless told
OLD_MODEM = "1.3.5"  # nrf91-sim's modem firmware: mfw_nrf9160_1.3.5

# The exact strings of NCS's nrf_cloud FOTA library (spec nrfcloud-fota.md §1.4).
E_START = "Failed to start download"
E_DOWNLOAD = "Error during download"
E_NOT_VALIDATED = "FOTA update not validated"
E_APPLY = "Error applying update"  # NCS's string for an error while applying: not sent for a failed validation
# A failed validation (the modem refused the delta at the reset, MCUboot reverted
# the application): NCS publish_validated_job_status() sends FAILED with no
# error string (spec §1.5 step 4).
E_VALIDATE_FAILED = ""
E_TYPE = "FW file does not match specified FOTA type"
E_INVALID = "Job info is invalid"
E_UNSUPPORTED = "FOTA type not supported"

# How long a test waits for the gateway (the sim's resets and reconnections take a few seconds).
FINAL_TIMEOUT = float(os.environ.get("FOTA_TIMEOUT", "90"))


class FotaCloud(st.CloudPeer):
    """The stand-in for nRF Cloud of the session tests plus the job service."""

    def __init__(self, broker, pki, device_id, no_job_reply=None, **kw):
        super().__init__(broker, pki, device_id, **kw)
        self.jobs = cj.JobQueue(st.PREFIX, device_id, self.publish, no_job_reply=no_job_reply)
        self.verbose = bool(os.environ.get("FOTA_VERBOSE"))

    def _on_message(self, topic, payload):
        if self.jobs.handle(topic, payload):
            if self.verbose:
                print("%.3f %s %s" % (time.monotonic(), topic.rsplit("/", 1)[-1], payload[:200]), flush=True)
            return
        super()._on_message(topic, payload)

    def device_info(self, key):
        return ((self.reported.get("device") or {}).get("deviceInfo") or {}).get(key)

    def fota_v2(self):
        return ((self.reported.get("device") or {}).get("serviceInfo") or {}).get("fota_v2")


class Sim(sf.Sim):
    """simfixture.Sim with more command-line options (--external-flash ...)."""

    def __init__(self, workdir, uuid, args=()):
        super().__init__(workdir, uuid)
        self.args = list(args)

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sf.SIM, "--pty-link", self.link, "--state-dir", self.state, "--uuid", self.uuid, "--imei", self.imei,
             "--verbose"] + self.args, stdout=self.log, stderr=subprocess.STDOUT)
        sf.wait_for(lambda: os.path.exists(self.link) and os.path.exists(self.control), 10, "nrf91-sim's pty")

    def status(self):
        """The control socket's status line as a dict (pty=..., app=..., fota=...)."""
        reply = self.command("status")
        return dict(f.split("=", 1) for f in reply.split()[1:] if "=" in f)

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class FotaWorld:
    """Everything one FOTA test needs; close() stops it all by PID."""

    def __init__(self, pki, cert, folder, sim_args=(), no_job_reply=None, rate=None, extra_conf="", journal=False):
        """journal: the daemon logs to a journald socket read by the test (sessiontest.Daemon)."""
        self.folder, self.pki, self.cert, self.extra_conf, self.journal = folder, pki, cert, extra_conf, journal
        self.daemon = self.peer = self.broker = self.bus = self.mock = self.sim = self.files = None
        self.killed = []
        self.bus = bf.Bus(folder)
        self.mock = bf.BluezMock(self.bus, folder)
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.broker = st.Broker(os.path.join(folder, "broker"), pki)
        self.broker.start()
        self.peer = FotaCloud(self.broker, pki, DEVICE, no_job_reply=no_job_reply, desired_connections=[])
        self.peer.start()
        if not self.peer.connected.wait(10):
            raise RuntimeError("the stand-in for nRF Cloud could not connect")
        st.wait_until(lambda: "Received SUBSCRIBE from %s" % st.ct.PEER_ID in self.broker.log_text())
        self.files = fs.FileServer(pki.server, rate=rate)
        self.modem = self.provisioned_sim(sim_args)
        self.start_daemon()

    @property
    def jobs(self):
        return self.peer.jobs

    def provisioned_sim(self, sim_args):
        work = os.path.join(self.folder, "modem")
        runtime = os.path.join(work, "run")
        os.makedirs(runtime)
        self.sim = Sim(work, DEVICE, sim_args)
        self.sim.start()
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=runtime)
        r = subprocess.run([sf.CTL, "provision", "--port", self.sim.link, "--ca-cert", self.pki.device_ca[0],
                            "--ca-key", self.pki.device_ca[1], "--root-ca", self.pki.root[0]],
                           env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("provisioning nrf91-sim failed:\n" + r.stdout + r.stderr)
        return (self.sim.link, runtime)

    # ---- the daemon ----

    def start_daemon(self):
        folder = os.path.join(self.folder, "daemon")
        if self.daemon:
            # The same folder and state directory again; the old log kept aside.
            os.replace(self.daemon.err_path, "%s.%d" % (self.daemon.err_path, len(self.killed)))
            os.unlink(self.daemon.notify_path)
        self.daemon = st.Daemon(folder, self.broker, self.pki, DEVICE, self.cert, self.extra_conf, journal=self.journal,
                                modem=self.modem)

    def kill_daemon(self):
        os.kill(self.daemon.proc.pid, signal.SIGKILL)
        self.daemon.proc.wait(10)
        self.daemon.stop()  # closes the notify socket
        self.killed.append(self.daemon)

    def restart_daemon(self, pause=0.5):
        """SIGKILL, then the daemon again on the same state directory."""
        self.kill_daemon()
        time.sleep(pause)
        self.start_daemon()

    @property
    def state_dir(self):
        return os.path.join(self.folder, "daemon", "state")

    def ctl_fota(self):
        """`nrfcloud-gatewayctl fota --json` on the daemon's state directory: the persisted job."""
        r = subprocess.run([sf.CTL, "fota", "--state-dir", self.state_dir, "--json"], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise AssertionError("nrfcloud-gatewayctl fota failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
        return json.loads(r.stdout)

    def logs(self):
        """Every console log of the daemon of this test, oldest first."""
        out = []
        folder = os.path.join(self.folder, "daemon")
        for name in sorted(os.listdir(folder)):
            if name.startswith("daemon.stderr."):
                with open(os.path.join(folder, name), errors="replace") as f:
                    out.append(f.read())
        out.append(self.daemon.log())
        return out

    def close(self):
        rc = self.daemon.stop() if self.daemon else None
        for part in (self.peer, self.broker, self.mock, self.bus, self.sim, self.files):
            if part:
                part.stop()
        return rc

    # ---- jobs ----

    def job(self, job_id, fw_type, name, data=None, size=None):
        """A job array for a file of the file server (added if data is given)."""
        if data is not None:
            self.files.add(name, data)
        size = size if size is not None else len(self.files.files.get("/" + name, b""))
        return [job_id, fw_type, size, self.files.host, name]

    def wait_ready(self, timeout=60):
        """Until the gateway has asked for a job (its FOTA subscription is ready)."""
        ok = self.jobs.wait(lambda q: q.requests, timeout)
        if not ok:
            raise AssertionError("the gateway never asked for a job on jobs/req\n" + self.diag())

    def wait_final(self, job_id, timeout=FINAL_TIMEOUT):
        u = self.jobs.wait_final(job_id, timeout)
        if u is None:
            raise AssertionError("no final status for job %s in %.0f s; statuses: %s\n%s"
                                 % (job_id, timeout, self.jobs.statuses(), self.diag()))
        return u

    def wait_shadow(self, predicate, timeout=30):
        return st.wait_until(lambda: predicate(self.peer), timeout)

    def daemon_packets(self):
        return st.client_packets(self.broker.log_text(), DEVICE)

    def diag(self):
        """The end of the daemon's log and of the sim's, for a failure message."""
        return "--- daemon log:\n%s\n--- nrf91-sim log:\n%s\n--- file server: %s" % (
            self.daemon.log()[-6000:], self.sim.text()[-3000:], self.files.requests)


class WorldTestCase(unittest.TestCase):
    """A test case that runs one FotaWorld (self.w) per test: the class sets up
    self.tmp (a folder removed at the end); tearDown stops the world and checks
    that the daemon was alive, stopped cleanly and that no sanitizer spoke."""

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.w = None
        self.t0 = time.monotonic()

    def tearDown(self):
        if not self.w:
            return
        alive = self.w.daemon and self.w.daemon.proc.poll() is None
        rc = self.w.close()
        logs = self.w.logs()
        self.assertTrue(alive, "the daemon died:\n" + logs[-1][-5000:])
        self.assertEqual(rc, 0, "the daemon did not stop cleanly:\n" + logs[-1][-5000:])
        for text in logs:
            self.assertNotIn("AddressSanitizer", text)
            self.assertNotIn("runtime error", text)
        print("%s: %.1f s" % (self.id().split(".")[-1], time.monotonic() - self.t0))


def split_download(statuses, job_id):
    """(DOWNLOADING percentages at the start, the rest of the arrays)."""
    pct = []
    i = 0
    while i < len(statuses) and statuses[i][:2] == [job_id, cj.DOWNLOADING]:
        pct.append(statuses[i][2] if len(statuses[i]) > 2 else None)
        i += 1
    return pct, statuses[i:]


def check_sequence(tc, statuses, job_id, tail, every_step=False, complete=True, diag=""):
    """The reporting sequence (nrfcloud-gatewayd(8), FIRMWARE UPDATES): [id,7,0], then [id,7,p] for multiples of 10 in
    increasing order, each once ([id,7,100] last when complete; all of 0..100
    when every_step), then exactly the arrays of tail."""
    text = "statuses: %s\n%s" % ([cj.describe(u) for u in statuses], diag)
    for u in statuses:
        tc.assertIsInstance(u, list, text)
        tc.assertEqual(len(u), 3, "a jobs/update array without its three elements: %s\n%s" % (u, text))
    pct, rest = split_download(statuses, job_id)
    tc.assertTrue(pct, "no DOWNLOADING report first\n" + text)
    tc.assertEqual(pct[0], 0, "the first report is not [id,7,0]\n" + text)
    for p in pct:
        tc.assertIsInstance(p, int, text)
        tc.assertEqual(p % 10, 0, "a progress that is no multiple of 10: %s\n%s" % (p, text))
    tc.assertEqual(pct, sorted(set(pct)), "progress not increasing, or repeated\n" + text)
    if complete:
        tc.assertEqual(pct[-1], 100, "[id,7,100] missing\n" + text)
    if every_step:
        tc.assertEqual(pct, list(range(0, 101, 10)), text)
    tc.assertEqual(rest, tail, text)


def no_more_updates(world, after=3.0):
    """Waits; returns the updates that came meanwhile."""
    before = len(world.jobs.statuses())
    time.sleep(after)
    return world.jobs.statuses()[before:]


CATALOG = os.path.join(os.path.dirname(os.path.dirname(HERE)), "systemd", "nrfcloud-gateway.catalog")


def catalog_ids():
    """{MESSAGE_ID: Subject} of the project's journal message catalog."""
    out = {}
    with open(CATALOG) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("-- ") and len(line.split()) >= 2:
            mid = line.split()[1]
            subject = next((x[9:] for x in lines[i + 1:i + 4] if x.startswith("Subject: ")), "")
            out[mid] = subject
    return out
