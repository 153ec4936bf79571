#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The local demo of nrfcloud-gateway (README command 1).

Starts, on this machine only and with nothing to configure:
  * nrf91-sim on a pseudo-terminal, provisioned by `nrfcloud-gatewayctl
    provision` with a demo CA (modem mode),
  * mosquitto with mutual TLS and the nRF Cloud gateway ACL, standing in for
    nRF Cloud's broker,
  * a stand-in for nRF Cloud that serves the gateway's shadow, whose
    desiredConnections lists two simulated BLE devices,
  * a private D-Bus system bus with the project's BlueZ fixture: a heart-rate
    sensor notifying 0x2A37 once per second and an environmental sensor with
    temperature and humidity,
  * nrfcloud-gatewayd in TLS=modem mode (or TLS=host with --tls host).

It prints a readable line for each g2c message and for the daemon's state
transitions; after a few seconds it sends a c2g read, a write and a 2902
subscribe, and shows their results. Ctrl-C stops everything, by PID.

Then it shows offline buffering: the broker stops for a few seconds, the
outbox grows in `nrfcloud-gatewayctl status` (the daemon's D-Bus API on the
demo's bus), the broker comes back, and every heart-rate reading taken
while offline arrives.  After that the demo keeps streaming until Ctrl-C.

With --fota (modem mode) it also runs a FOTA job of the nRF91 application:
an HTTPS file server on 127.0.0.1 with a certificate from the demo CA serves
a new MCUboot image, the stand-in for nRF Cloud queues the job, and the demo
shows each jobs/update report, the reset and the new application version in
the shadow.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("cloud", "session", "ble", "lib", "fota", "protocol", "tools"):
    sys.path.insert(0, os.path.join(TOP, "tests", sub))

HR = "C0:FF:EE:00:00:01"   # heart-rate sensor
ENV = "C0:FF:EE:00:00:02"  # environmental sensor

GATT_HR = [
    {"uuid": "180d", "characteristics": [
        {"uuid": "2a37", "flags": ["notify"], "value": "0048",
         "descriptors": [{"uuid": "2902", "value": "0000"}]},
        {"uuid": "2a38", "flags": ["read"], "value": "01"},        # body sensor location: chest
        {"uuid": "2a39", "flags": ["write"]}]},                    # heart rate control point
    {"uuid": "180f", "characteristics": [{"uuid": "2a19", "flags": ["read"], "value": "5a"}]},
]
GATT_ENV = [
    {"uuid": "181a", "characteristics": [
        {"uuid": "2a6e", "flags": ["read", "notify"], "value": "fc08",   # 22.68 °C
         "descriptors": [{"uuid": "2902", "value": "0000"}]},
        {"uuid": "2a6f", "flags": ["read"], "value": "a411"}]},          # 45.16 %
]

NAMES = {"2A37": "heart rate", "2A38": "sensor location", "2A39": "HR control point", "2A19": "battery",
         "2A6E": "temperature", "2A6F": "humidity", "2902": "CCCD"}


def describe_value(chrc, value):
    """A human reading of a few SIG characteristics."""
    b = bytes(value)
    if chrc == "2A37" and len(b) >= 2:
        return "%d bpm" % (int.from_bytes(b[1:3], "little") if b[0] & 1 else b[1])
    if chrc == "2A6E" and len(b) == 2:
        return "%.2f °C" % (int.from_bytes(b, "little", signed=True) / 100)
    if chrc == "2A6F" and len(b) == 2:
        return "%.2f %%" % (int.from_bytes(b, "little") / 100)
    if chrc == "2A19" and len(b) == 1:
        return "%d %%" % b[0]
    return ""


def describe_event(msg):
    e = msg.get("event", {})
    t = e.get("type", "?")
    dev = e.get("device", {})
    addr = dev.get("address", {}).get("address", "") if isinstance(dev.get("address"), dict) else ""
    rid = msg.get("requestId")
    tail = ""
    if t in ("device_connect_result", "device_disconnect"):
        tail = "connected" if dev.get("status", {}).get("connected") else "disconnected"
    elif t == "device_discover_result":
        services = e.get("services", {})
        tail = "%d services: %s" % (len(services), " ".join(sorted(services)))
    elif t.startswith("device_characteristic_value") or t.startswith("device_descriptor_value"):
        c = e.get("characteristic") or e.get("descriptor") or {}
        uuid_ = c.get("uuid", "")
        path = c.get("path", "")
        value = c.get("value", [])
        reading = describe_value(uuid_, value) if isinstance(value, list) else ""
        tail = "%s (%s) = %s%s" % (path, NAMES.get(uuid_, uuid_), value, ("  " + reading) if reading else "")
    elif t == "scan_result":
        tail = "%d result(s)" % len(e.get("devices", []))
    elif t == "error":
        tail = e.get("error", {}).get("description", "")
    return "g2c %-40s %-17s %s%s" % (t, addr, tail, ("   [request %s]" % rid[:8]) if rid and rid != "N/A" else "")


class Demo:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.workdir)
        self.build = os.path.abspath(args.build_dir)
        self.procs = []      # (name, Popen) stopped in reverse order
        self.parts = []      # fixture objects with stop()
        self.stopping = threading.Event()
        self.operations_done = threading.Event()
        self.offline_done = threading.Event()
        self.fota_done = threading.Event()
        self.lock = threading.Lock()

    def say(self, text):
        with self.lock:
            print(text, flush=True)

    def step(self, text):
        self.say("==> " + text)

    def start_process(self, name, argv, **kw):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
        self.procs.append((name, p))
        return p

    def run_checked(self, argv, **kw):
        r = subprocess.run(argv, capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s%s" % (os.path.basename(argv[0]), r.returncode, r.stdout, r.stderr))
        return r

    # ---- the parts ----

    def setup(self):
        import blefixture as bf
        import cloudtest as ct
        import sessiontest as st

        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        os.environ["NRFGW_BUILD_DIR"] = self.build

        self.step("Test PKI: a stand-in root CA for the broker, a demo operator CA for the gateway")
        self.pki = ct.Pki(os.path.join(self.work, "pki"))

        self.step("mosquitto with mutual TLS and the nRF Cloud gateway ACL")
        self.broker = ct.Broker(os.path.join(self.work, "broker"), self.pki, verbose=False)
        self.broker.start()
        self.parts.append(self.broker)
        self.say("    listening on 127.0.0.1:%d" % self.broker.port)

        if self.args.tls == "modem":
            self.device_id = self.setup_modem()
        else:
            self.device_id = str(uuid.uuid4())
            self.cert = self.pki.device(self.device_id)

        self.step("The stand-in for nRF Cloud: shadow with desiredConnections [%s, %s]" % (HR, ENV))
        if self.args.fota:
            import fotatest as ft
            self.peer = ft.FotaCloud(self.broker, self.pki, self.device_id, desired_connections=[HR, ENV])
        else:
            self.peer = st.CloudPeer(self.broker, self.pki, self.device_id, desired_connections=[HR, ENV])
        self.peer.start()
        self.parts.append(self.peer)
        if not self.peer.connected.wait(10):
            raise RuntimeError("the stand-in for nRF Cloud could not connect to mosquitto")

        self.step("Private D-Bus system bus with the BlueZ fixture: heart-rate and environmental sensors")
        busdir = os.path.join(self.work, "bluez")
        os.makedirs(busdir)
        self.bus = bf.Bus(busdir)
        self.parts.append(self.bus)
        self.mock = bf.BluezMock(self.bus, busdir)
        self.parts.insert(len(self.parts) - 1, self.mock)
        self.mock.add_device(HR, gatt=GATT_HR, name="Heart Rate Sensor")
        self.mock.add_device(ENV, gatt=GATT_ENV, name="Environment Sensor")

        self.start_daemon()

    def setup_modem(self):
        self.step("nrf91-sim on a pseudo-terminal")
        self.tty = os.path.join(self.work, "nrf91.tty")
        sim = os.path.join(self.build, "firmware_nrf91", "nrf91-sim")
        self.sim_log = open(os.path.join(self.work, "nrf91-sim.log"), "w")
        self.start_process("nrf91-sim", [sim, "--pty-link", self.tty, "--state-dir", os.path.join(self.work, "sim")],
                           stdout=self.sim_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.tty):
            if time.monotonic() > deadline:
                raise RuntimeError("nrf91-sim did not create %s" % self.tty)
            time.sleep(0.05)
        self.say("    modem port %s" % self.tty)

        ctl = os.path.join(self.build, "daemon", "tools", "nrfcloud-gatewayctl")
        self.runtime = os.path.join(self.work, "run")
        os.makedirs(self.runtime)
        env = dict(os.environ, NRFCLOUD_GATEWAY_RUNTIME_DIR=self.runtime)
        self.step("nrfcloud-gatewayctl provision: key generated in the modem, certificate from the demo CA")
        csv = os.path.join(self.work, "onboard.csv")
        r = self.run_checked([ctl, "provision", "--port", self.tty, "--ca-cert", self.pki.device_ca[0],
                              "--ca-key", self.pki.device_ca[1], "--root-ca", self.pki.root[0], "--csv", csv],
                             env=env, timeout=120)
        for line in r.stdout.splitlines():
            self.say("    " + line)
        with open(csv) as f:
            device_id = f.readline().split(",", 1)[0]
        self.say("    device id %s" % device_id)
        return device_id

    def start_daemon(self):
        self.step("nrfcloud-gatewayd, TLS=%s" % self.args.tls)
        conf = os.path.join(self.work, "gateway.conf")
        # The demo asks no location of the real nRF Cloud REST API (LocationIntervalSec=0).
        cloud = "TLS=modem\nLocationIntervalSec=0\n" if self.args.tls == "modem" else (
            "TLS=host\nCAFile=%s\nCertFile=%s\nKeyFile=%s\n" % (self.pki.root[0], self.cert[0], self.cert[1]))
        modem = ("[Modem]\nPort=%s\n" % self.tty) if self.args.tls == "modem" else ""
        with open(conf, "w") as f:
            f.write("[Gateway]\n%sStateDirectory=%s\n%s[Cloud]\nHost=localhost\nPort=%d\n%sReconnectMinSec=1\n"
                    "ReconnectMaxSec=5\n[Log]\nLevel=info\nTarget=console\n"
                    % ("DeviceId=%s\n" % self.device_id if self.args.tls == "host" else "",
                       os.path.join(self.work, "state"), modem, self.broker.port, cloud))
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        if self.args.tls == "modem":
            env["NRFCLOUD_GATEWAY_RUNTIME_DIR"] = self.runtime
        for k in ("JOURNAL_STREAM", "NOTIFY_SOCKET", "STATE_DIRECTORY"):
            env.pop(k, None)
        self.daemon_log = os.path.join(self.work, "gatewayd.log")
        self.daemon = self.start_process(
            "nrfcloud-gatewayd", [os.path.join(self.build, "daemon", "nrfcloud-gatewayd"), "--config", conf],
            env=env, stdout=subprocess.DEVNULL, stderr=open(self.daemon_log, "w"))
        self.say("    configuration %s, log %s" % (conf, self.daemon_log))

    # ---- watching ----

    def watch(self):
        """Prints g2c messages, shadow updates and the daemon's log as they come."""
        seen = 0
        log_pos = 0
        g2c = "prod/%s/gateways/%s/g2c" % (self.peer_team(), self.device_id)
        while not self.stopping.is_set():
            msgs = list(self.peer.messages)
            for topic, payload in msgs[seen:]:
                if topic == g2c:
                    try:
                        self.say(describe_event(json.loads(payload)))
                    except ValueError:
                        self.say("g2c (not JSON) %r" % payload[:80])
                elif topic.endswith("/shadow/update"):
                    try:
                        rep = json.loads(payload).get("state", {}).get("reported", {})
                    except ValueError:
                        continue
                    for addr, st in (rep.get("statusConnections") or {}).items():
                        s = (st or {}).get("status", {})
                        self.say("shadow statusConnections.%s = %s" % (
                            addr, "connected" if s.get("connected") else "connecting" if s.get("connecting")
                            else "disconnected"))
                    if "pairing" in rep:
                        self.say("shadow pairing = %s" % (rep["pairing"] or {}).get("state"))
                    info = (rep.get("device") or {}).get("deviceInfo") or {}
                    for key in ("appVersion", "modemFirmware"):
                        if key in info:
                            self.say("shadow deviceInfo.%s = %s" % (key, info[key]))
                    fota_v2 = ((rep.get("device") or {}).get("serviceInfo") or {}).get("fota_v2")
                    if fota_v2 is not None:
                        self.say("shadow serviceInfo.fota_v2 = %s" % json.dumps(fota_v2))
                elif "/jobs/" in topic:
                    self.say("jobs/%-10s %s" % (topic.split("/jobs/", 1)[1], self.describe_job(payload)))
            seen = len(msgs)
            try:
                with open(self.daemon_log, errors="replace") as f:
                    f.seek(log_pos)
                    chunk = f.read()
                    log_pos = f.tell()
                for line in chunk.splitlines():
                    self.say("gatewayd | " + line)
            except OSError:
                pass
            if self.daemon.poll() is not None:
                self.say("nrfcloud-gatewayd exited with status %d" % self.daemon.returncode)
                self.stopping.set()
            self.stopping.wait(0.1)

    @staticmethod
    def describe_job(payload):
        import cloudtest_jobs as cj
        try:
            return cj.describe(json.loads(payload))
        except ValueError:
            return repr(payload[:80])

    def fota(self):
        """The stand-in for nRF Cloud queues an application job once the c2g operations are done."""
        import cloudtest_jobs as cj
        import fileserver as fs
        # After the c2g operations: the reset takes the cloud connection away for a moment.
        while not self.operations_done.wait(0.2):
            if self.stopping.is_set():
                return
        if self.stopping.wait(self.args.fota_after):
            return
        self.files = fs.FileServer(self.pki.server)
        self.parts.append(self.files)
        version = "1.1.0"
        name = "demo-fota-1/nrf91-app-%s.signed.bin" % version
        image = fs.app_image(version, 96 * 1024)
        self.files.add(name, image)
        job = ["demo-fota-1", cj.APP, len(image), self.files.host, name]
        self.step("FOTA: nRF Cloud queues an application job: %s (%d bytes at https://%s/%s, "
                  "certificate from the demo root CA that is in the nRF91's security tag)"
                  % (version, len(image), self.files.host, name))
        self.peer.jobs.offer(job)
        app = self.sim_status().get("app")
        while not self.stopping.wait(0.2):
            now = self.sim_status().get("app")
            if now and now != app:
                self.say("FOTA: the nRF91 was reset and booted application %s" % now)
                app = now
            final = self.peer.jobs.wait_final(job[0], 0)
            if final:
                self.say("FOTA: job %s ended %s; the nRF91 runs application %s"
                         % (job[0], cj.describe(final), self.sim_status().get("app", "?")))
                self.fota_done.set()
                return

    # ---- offline buffering ----

    def ctl(self, *args):
        ctl = os.path.join(self.build, "daemon", "tools", "nrfcloud-gatewayctl")
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        return subprocess.run([ctl, *args], capture_output=True, text=True, timeout=20, env=env)

    def gateway_status(self):
        """`nrfcloud-gatewayctl status --json`, or {} when it does not answer."""
        r = self.ctl("status", "--json")
        try:
            return json.loads(r.stdout) if r.returncode == 0 else {}
        except ValueError:
            return {}

    def show_status(self, prefix):
        st = self.gateway_status()
        gw, ob = st.get("gateway", {}), st.get("outbox", {})
        line = "Cloud %s, outbox %s message(s), %s bytes" % (gw.get("CloudState", "?"), ob.get("Messages", "?"),
                                                           ob.get("Bytes", "?"))
        if gw.get("CloudLastError") and gw.get("CloudState") != "ready":
            line += " (last error: %s)" % gw["CloudLastError"]
        self.say("    %s nrfcloud-gatewayctl status: %s" % (prefix, line))
        return st

    def heart_rates(self, since_index=0):
        """(arrival index, event timestamp in s) of the heart-rate g2c messages the stand-in received."""
        g2c = "prod/%s/gateways/%s/g2c" % (self.peer_team(), self.device_id)
        out = []
        for i, (topic, payload) in enumerate(list(self.peer.messages)[since_index:], since_index):
            if topic != g2c or b'"2A37"' not in payload or b"value_changed" not in payload:
                continue
            try:
                ts = json.loads(payload)["event"]["timestamp"]
                out.append((i, datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()))
            except (ValueError, KeyError):
                continue
        return out

    def offline(self):
        """The broker goes away for a while: the outbox keeps the readings, and delivers them all."""
        while not (self.fota_done if self.args.fota else self.operations_done).wait(0.2):
            if self.stopping.is_set():
                return
        if self.stopping.wait(2.0):
            return
        seconds = self.args.offline_seconds
        self.step("Offline buffering: the broker stops for %d s; the gateway keeps every reading in its "
                  "outbox (on disk)" % seconds)
        self.show_status("before:")
        t0 = time.time()
        self.broker.stop()
        end = time.monotonic() + seconds
        peak = 0
        while time.monotonic() < end:
            if self.stopping.wait(min(2.0, max(0.1, end - time.monotonic()))):
                return
            peak = max(peak, int(self.show_status("offline:").get("outbox", {}).get("Messages", 0) or 0))
        arrived_before = len(self.peer.messages)
        t1 = time.time()
        self.step("The broker is back")
        self.broker.start()
        deadline = time.monotonic() + 60
        while not self.stopping.wait(1.0):
            st = self.show_status("after: ")
            if st.get("gateway", {}).get("CloudState") == "ready" and st.get("outbox", {}).get("Messages") == 0:
                break
            if time.monotonic() > deadline:
                self.say("    the outbox did not drain within 60 s")
                return
        if self.stopping.is_set():
            return
        taken = [ts for _, ts in self.heart_rates(arrived_before) if t0 <= ts <= t1]
        self.say("    %d heart-rate readings taken while the broker was away arrived after it came back, %s "
                 "(the outbox held up to %d messages)"
                 % (len(taken), "oldest first" if taken == sorted(taken) else "NOT in order", peak))
        self.summary = ("Shown: the modem provisioned, two BLE sensors connected and discovered, notifications "
                        "streamed to the cloud, c2g reads and writes answered, %s%d readings kept in the outbox "
                        "while the broker was down and delivered after it came back."
                        % ("a FOTA update of the nRF91 application, " if self.args.fota else "", len(taken)))
        self.offline_done.set()

    def sim_status(self):
        import socket
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(os.path.join(self.work, "sim", "control"))
            s.sendall(b"status\n")
            reply = s.recv(4096).decode()
            s.close()
        except OSError:
            return {}
        return dict(f.split("=", 1) for f in reply.split()[1:] if "=" in f)

    @staticmethod
    def peer_team():
        import cloudtest as ct
        return ct.TEAM

    def heart_beat(self):
        """The heart-rate sensor notifies 2A37 once per second."""
        bpm = 68
        while not self.stopping.wait(1.0):
            bpm = 60 + (bpm - 59) % 25
            try:
                self.mock.notify_value(HR, "180d", "2a37", bytes([0, bpm]).hex())
            except Exception:  # the device may not be subscribed yet
                pass

    def c2g(self, op, what):
        rid = str(uuid.uuid4())
        self.say("c2g %-40s %-17s %s   [request %s]" % (op["type"], op.get("deviceAddress", ""), what, rid[:8]))
        self.peer.c2g({"type": "operation", "id": rid, "operation": op})

    def discovered(self):
        g2c = "prod/%s/gateways/%s/g2c" % (self.peer_team(), self.device_id)
        found = set()
        for topic, payload in list(self.peer.messages):
            if topic == g2c and b"device_discover_result" in payload:
                found.add(json.loads(payload)["event"]["device"]["address"]["address"])
        return found

    def operations(self):
        # nRF Cloud subscribes to what its user looks at: here, the heart rate.
        deadline = time.monotonic() + 60
        while {HR, ENV} - self.discovered():
            if self.stopping.wait(0.2) or time.monotonic() > deadline:
                return
        self.c2g({"type": "device_descriptor_value_write", "deviceAddress": HR, "serviceUUID": "180D",
                  "characteristicUUID": "2A37", "descriptorUUID": "2902", "descriptorValue": [1, 0]},
                 "subscribe to heart-rate notifications")
        if self.stopping.wait(self.args.ops_after):
            return
        self.c2g({"type": "device_characteristic_value_read", "deviceAddress": ENV, "serviceUUID": "181A",
                  "characteristicUUID": "2A6E"}, "read temperature")
        if self.stopping.wait(1.0):
            return
        self.c2g({"type": "device_characteristic_value_write", "deviceAddress": HR, "serviceUUID": "180D",
                  "characteristicUUID": "2A39", "characteristicValue": [1]}, "write 01 to the HR control point")
        if self.stopping.wait(1.0):
            return
        self.c2g({"type": "device_descriptor_value_write", "deviceAddress": ENV, "serviceUUID": "181A",
                  "characteristicUUID": "2A6E", "descriptorUUID": "2902", "descriptorValue": [1, 0]},
                 "subscribe to temperature notifications")
        if self.stopping.wait(2.0):
            return
        try:
            self.mock.notify_value(ENV, "181a", "2a6e", (2301).to_bytes(2, "little").hex())
        except Exception:
            pass
        self.operations_done.set()

    # ---- stopping ----

    def stop(self):
        self.stopping.set()
        for name, p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for part in reversed(self.parts):
            try:
                part.stop()
            except Exception as e:  # keep stopping the others
                print("stopping %s: %s" % (type(part).__name__, e), file=sys.stderr)

    def closing_line(self):
        """Once the scripted part is over: what was shown, and what happens now."""
        while not self.offline_done.wait(0.2):
            if self.stopping.is_set():
                return
        self.step(self.summary)
        self.step("The scripted part is over; the demo keeps streaming until Ctrl-C.")

    def run(self):
        try:
            self.setup()
            self.step("Running: g2c messages and the daemon's log follow (Ctrl-C stops everything)")
            steps = (self.heart_beat, self.operations, self.offline) + ((self.fota,) if self.args.fota else ())
            threads = [threading.Thread(target=f, daemon=True) for f in steps]
            for t in threads:
                t.start()
            if self.args.duration:
                threading.Timer(self.args.duration, self.stopping.set).start()
            threading.Thread(target=self.closing_line, daemon=True).start()
            self.watch()
        finally:
            self.step("Stopping")
            self.stop()
            rc = self.daemon.returncode if getattr(self, "daemon", None) else None
            self.say("    nrfcloud-gatewayd exit status: %s; every process started here is stopped" % rc)
        return 0 if rc == 0 else 1


def main():
    ap = argparse.ArgumentParser(description="Local demo of nrfcloud-gateway: simulated nRF91, BLE devices and "
                                             "broker, all on this machine.")
    ap.add_argument("--tls", choices=("modem", "host"), default="modem",
                    help="where TLS ends: in the simulated nRF91 (default) or on the host")
    ap.add_argument("--workdir", default=os.path.join(TOP, ".demo"), help="folder for every file of the demo")
    ap.add_argument("--build-dir", default=os.path.join(TOP, "build"))
    ap.add_argument("--duration", type=float, default=0, help="stop after this many seconds (default: Ctrl-C)")
    ap.add_argument("--ops-after", type=float, default=5.0,
                    help="seconds between the heart-rate subscription and the c2g read, write and subscribe")
    ap.add_argument("--fota", action="store_true",
                    help="also run a FOTA job of the nRF91 application (modem mode): the stand-in for nRF Cloud "
                         "queues it, the demo shows the job's steps, the reset and the new version in the shadow")
    ap.add_argument("--offline-seconds", type=float, default=8.0,
                    help="how long the broker is away in the offline-buffering part")
    ap.add_argument("--fota-after", type=float, default=3.0,
                    help="seconds after the c2g operations before the FOTA job is queued")
    args = ap.parse_args()
    if args.fota and args.tls != "modem":
        ap.error("--fota needs --tls modem: the nRF91 downloads and applies the image")

    demo = Demo(args)
    # SIGINT (Ctrl-C) and SIGTERM end the watch loop; cleanup runs in run().
    signal.signal(signal.SIGINT, lambda *_: demo.stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: demo.stopping.set())
    sys.exit(demo.run())


if __name__ == "__main__":
    main()
