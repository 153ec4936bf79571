# SPDX-License-Identifier: MIT
"""FOTA of the nRF91 through the whole gateway, end to end with real parts
(see fotatest.py): a job queued in the stand-in for nRF Cloud, the daemon
runs it through the firmware's #XFOTA, nrf91-sim downloads the image over
HTTPS from the test's file server (verified with the CA of its security tag,
SNI, ranges), applies it, and the daemon reports every step on jobs/update.

Each test asserts the exact sequence of jobs/update arrays the daemon must
send (DOWNLOADING 0, 10, ... 100, IN_PROGRESS "", then
SUCCEEDED "" or FAILED/REJECTED with NCS's exact strings).  Run one test with
FOTA_TEST=<name> (ctest runs each in its own entry)."""

import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fotatest as ft  # noqa: E402
import fileserver as fs  # noqa: E402

cj, pt, st = ft.cj, ft.pt, ft.st
NEW_APP = "1.2.3"
NEW_MODEM = "1.3.6"
SMALL = 48 * 1024  # image body: small, so that the suite stays quick
SLOW = 16 * 1024  # bytes/s: a download of SMALL lasts 3 s


class FotaTest(ft.WorldTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp, cls.pki, cls.cert = pt.make_pki()
        # A certificate for the right name from a CA the modem does not know.
        cls.rogue_server = cls.pki._leaf("rogue-server", "localhost", cls.pki.rogue_ca,
                                         san="DNS:localhost,IP:127.0.0.1", eku="serverAuth")


    def world(self, **kw):
        name = self.id().split(".")[-1]
        self.w = ft.FotaWorld(self.pki, self.cert, pt.subdir(self.tmp, name), **kw)
        return self.w

    def statuses(self, job_id):
        return self.w.jobs.statuses(job_id)

    def check(self, job_id, tail, **kw):
        ft.check_sequence(self, self.statuses(job_id), job_id, tail, diag=self.w.diag(), **kw)

    def app_job(self, job_id="job-app-1", version=NEW_APP, size=SMALL, rate=None):
        name = "%s/app-%s.signed.bin" % (job_id, version)
        job = self.w.job(job_id, cj.APP, name, fs.app_image(version, size))
        if rate:
            self.w.files.set_fault(name, rate=rate)
        return job

    def modem_job(self, job_id="job-mdm-1", base=ft.OLD_MODEM, to=NEW_MODEM, size=SMALL, rate=None):
        name = "%s/mfw_nrf9160_update_from_%s_to_%s.bin" % (job_id, base, to)
        job = self.w.job(job_id, cj.MODEM, name, fs.modem_delta(base, to, size))
        if rate:
            self.w.files.set_fault(name, rate=rate)
        return job

    def running_app_job(self, job_id="job-app-1", at_pct=10, rate=SLOW, **world_kw):
        """A world whose gateway runs an application job (throttled), once it reported at_pct %."""
        w = self.world(**world_kw)
        job = self.app_job(job_id, rate=rate)
        w.jobs.offer(job, send=False)  # queued while the gateway was away: it asks for it
        w.wait_ready()
        if at_pct is not None:
            ok = w.jobs.wait_status(job[0], lambda u: u[1] == cj.DOWNLOADING and u[2] >= at_pct, 30)
            self.assertTrue(ok, "no DOWNLOADING %d report\n%s" % (at_pct, w.diag()))
        return w, job

    def app_succeeded(self, job_id, every_step=True, complete=True):
        """The good application job's sequence, the new version running and reported."""
        final = self.w.wait_final(job_id)
        self.assertEqual(final, [job_id, cj.SUCCEEDED, ""], self.w.diag())
        self.check(job_id, [[job_id, cj.IN_PROGRESS, ""], [job_id, cj.SUCCEEDED, ""]], every_step=every_step,
                   complete=complete)
        status = self.w.sim.status()
        self.assertEqual(status.get("app"), NEW_APP, status)
        # Confirmed: no test image waits any more (a reset now would not revert it).
        self.assertTrue(status.get("fota", "").startswith("0"), status)
        ok = self.w.wait_shadow(lambda p: NEW_APP in (p.device_info("appVersion") or ""))
        self.assertTrue(ok, "appVersion in the shadow: %r" % self.w.peer.device_info("appVersion"))

    def assert_sni(self):
        snis = self.w.files.snis()
        self.assertTrue(snis, "no TLS handshake at the file server")
        self.assertEqual({s for s, _ in snis}, {"localhost"}, snis)

    # ---- the good cases ----

    def test_app_update(self):
        """DOWNLOADING 0..100 in steps, IN_PROGRESS, reset, confirm, SUCCEEDED; appVersion changes."""
        w, job = self.running_app_job(at_pct=None)
        self.assertTrue(w.wait_shadow(lambda p: p.fota_v2() is not None), "no fota_v2 in the shadow")
        self.assertEqual(w.peer.fota_v2(), ["APP", "MODEM"])
        before = w.peer.device_info("appVersion")
        self.assertNotIn(NEW_APP, before or "")
        self.app_succeeded(job[0])
        self.assert_sni()
        reqs = w.files.requests_for(job[4])
        self.assertEqual(len(reqs), 1, reqs)
        self.assertIsNone(reqs[0].range, reqs)
        # The job was asked for with [""] first.
        self.assertEqual(w.jobs.requests[0][1], b'[""]')
        # One restart of the cloud session for the applied image, no more.
        log = "".join(w.logs())
        self.assertLessEqual(log.count("Cloud connected"), 2, log[-3000:])
        # systemd's STATUS= told about the job while it ran, and no more once it ended.
        statuses = w.daemon.statuses()
        self.assertTrue([x for x in statuses if "FOTA" in x], statuses)
        self.assertTrue(st.wait_until(lambda: "FOTA" not in w.daemon.statuses()[-1], 10), w.daemon.statuses()[-3:])
        # The same job delivered again once it is finished: skipped.
        w.jobs.send_raw(json.dumps(job))
        self.assertEqual(ft.no_more_updates(w), [])

    def test_modem_delta_update(self):
        w = self.world()
        job = self.modem_job(rate=SLOW)
        w.jobs.offer(job, send=False)
        w.wait_ready()
        self.assertTrue(w.wait_shadow(lambda p: p.device_info("modemFirmware")), "no modemFirmware in the shadow")
        self.assertEqual(w.peer.device_info("modemFirmware"), "mfw_nrf9160_" + ft.OLD_MODEM)
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.SUCCEEDED, ""], w.diag())
        self.check(job[0], [[job[0], cj.IN_PROGRESS, ""], [job[0], cj.SUCCEEDED, ""]], every_step=True)
        ok = w.wait_shadow(lambda p: p.device_info("modemFirmware") == "mfw_nrf9160_" + NEW_MODEM)
        self.assertTrue(ok, "modemFirmware in the shadow: %r" % w.peer.device_info("modemFirmware"))
        self.assert_sni()

    def test_modem_delta_other_base(self):
        """A delta from another base version: the modem refuses it at the reset."""
        w = self.world()
        job = self.modem_job(base="1.2.0")
        w.jobs.offer(job, send=False)
        w.wait_ready()
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.FAILED, ft.E_VALIDATE_FAILED], w.diag())
        self.check(job[0], [[job[0], cj.IN_PROGRESS, ""], [job[0], cj.FAILED, ft.E_VALIDATE_FAILED]])
        time.sleep(1.0)
        self.assertEqual(w.peer.device_info("modemFirmware"), "mfw_nrf9160_" + ft.OLD_MODEM)

    # ---- download failures ----

    def download_fails(self, job, tail_error=ft.E_DOWNLOAD, complete=False, status=cj.FAILED):
        w = self.w
        w.jobs.offer(job, send=False)
        w.wait_ready()
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], status, tail_error], w.diag())
        self.check(job[0], [final], complete=complete)
        self.assertEqual(w.sim.status().get("app"), ft.OLD_APP)
        self.assertEqual(ft.no_more_updates(w, 1.0), [])

    def test_untrusted_server(self):
        w = self.world()
        w.files.set_cert(self.rogue_server)
        self.download_fails(self.app_job())
        self.assertFalse([r for r in w.files.requests], "an HTTP request went to an untrusted server")
        self.assertTrue(w.files.snis(), "the sim never tried the server")

    def test_wrong_host_name(self):
        w = self.world()
        w.files.set_cert(self.pki.wrong_host)  # trusted CA, but for wrong.example
        w.files.expect_sni = None
        self.download_fails(self.app_job())
        self.assertFalse(w.files.requests, "an HTTP request went to a server with another host name")
        self.assertEqual({s for s, _ in w.files.snis()}, {"localhost"})

    def test_http_404(self):
        w = self.world()
        job = self.app_job()
        w.files.set_fault(job[4], mode="404")
        self.download_fails(job)
        self.assertEqual([r.status for r in w.files.requests], [404])
        self.assert_sni()

    def test_truncated_body(self):
        w = self.world()
        job = self.app_job()
        w.files.set_fault(job[4], mode="truncate", truncate_at=SMALL // 2)
        self.download_fails(job)
        reqs = w.files.requests_for(job[4])
        self.assertTrue(reqs and not reqs[0].done, reqs)

    def test_image_of_another_type(self):
        """A modem delta in an application job."""
        w = self.world()
        name = "job-type/mfw_nrf9160_update_from_%s_to_%s.bin" % (ft.OLD_MODEM, NEW_MODEM)
        job = w.job("job-type", cj.APP, name, fs.modem_delta(ft.OLD_MODEM, NEW_MODEM, SMALL))
        self.download_fails(job, ft.E_TYPE)
        self.assertEqual(w.sim.status().get("app"), ft.OLD_APP)

    # ---- link, reboot, restart ----

    def test_link_dropped_20s(self):
        """The serial link gone for 20 s during the download: the download goes on in the modem, the job completes."""
        w, job = self.running_app_job(at_pct=10)
        self.assertEqual(w.sim.command("vanish 20000"), "OK")
        t = time.monotonic()
        self.app_succeeded(job[0], every_step=False)
        self.assertGreater(time.monotonic() - t, 19)
        # Not started again: one GET, from the start.
        reqs = w.files.requests_for(job[4])
        self.assertEqual([r.range for r in reqs], [None], reqs)

    def test_sim_rebooted_resumes(self):
        """nrf91-sim reboots during the download: it resumes from its offset with a range request."""
        w, job = self.running_app_job(at_pct=30)
        self.assertEqual(w.sim.command("reboot"), "OK")
        self.app_succeeded(job[0], every_step=False)
        reqs = w.files.requests_for(job[4])
        self.assertGreaterEqual(len(reqs), 2, reqs)
        self.assertIsNone(reqs[0].range, reqs)
        resumed = [r for r in reqs[1:] if r.range]
        self.assertTrue(resumed, "no range request after the reboot: %s" % reqs)
        offset = int(resumed[0].range.split("=")[1].split("-")[0])
        self.assertGreater(offset, 0, reqs)
        self.assertLessEqual(offset, reqs[0].sent, reqs)
        self.assertEqual(resumed[0].status, 206)
        # Nothing fetched from zero again after the resume.
        self.assertFalse([r for r in reqs[1:] if not r.range], reqs)

    def killed_at(self, stop_when, stage, persisted):
        """SIGKILL of the daemon when stop_when(world) holds, then restarted:
        exactly one final report, SUCCEEDED, the new version running.  persisted:
        the stages the job file may hold at the kill (nrfcloud-gatewayctl fota)."""
        w, job = self.running_app_job(at_pct=None)
        self.assertTrue(stop_when(w, job), "stage %s never reached\n%s" % (stage, w.diag()))
        os.kill(w.daemon.proc.pid, signal.SIGSTOP)
        status = w.sim.status()
        before_kill = self.statuses(job[0])
        w.kill_daemon()
        saved = w.ctl_fota()
        print("daemon killed at stage %s; nrf91-sim: %s; job file: %s" % (stage, status, saved))
        self.assertEqual(saved.get("id"), job[0], saved)
        self.assertEqual(saved.get("type"), "APP", saved)
        self.assertIn(saved.get("stage"), persisted, saved)
        self.saved_stage = saved.get("stage")
        time.sleep(0.5)
        w.start_daemon()
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.SUCCEEDED, ""], w.diag())
        ft.no_more_updates(w, 2.0)
        statuses = self.statuses(job[0])
        finals = [u for u in statuses if u[1] in cj.TERMINAL]
        self.assertEqual(finals, [[job[0], cj.SUCCEEDED, ""]], statuses)
        self.assertEqual(statuses[-1], final, statuses)
        # A report the killed daemon could not see acknowledged may come again; apart from
        # that, the reporting sequence: never back to DOWNLOADING after IN_PROGRESS.
        codes = [u[1] for u in statuses]
        self.assertLess(max(i for i, c in enumerate(codes) if c == cj.DOWNLOADING), codes.index(cj.IN_PROGRESS),
                        statuses)
        dedup = [u for i, u in enumerate(statuses) if u not in statuses[:i]]
        ft.check_sequence(self, dedup, job[0], [[job[0], cj.IN_PROGRESS, ""], final], diag=w.diag())
        self.assertEqual(w.sim.status().get("app"), NEW_APP)
        self.assertTrue(w.wait_shadow(lambda p: NEW_APP in (p.device_info("appVersion") or "")))
        # The job file: nothing in progress any more, the job remembered as the last one.
        saved = st.wait_until(lambda: (lambda j: j if j.get("stage") == "none" else None)(w.ctl_fota()), 10)
        self.assertTrue(saved, w.ctl_fota())
        self.assertEqual(saved.get("last_job"), job[0], saved)
        return status, before_kill

    def test_daemon_killed_downloading(self):
        def downloading(w, job):
            return w.jobs.wait_status(job[0], lambda u: u[1] == cj.DOWNLOADING and u[2] >= 20, 30)
        status, _ = self.killed_at(downloading, "downloading", ("downloading",))
        self.assertTrue(status.get("fota", "").startswith("1"), status)

    def test_daemon_killed_stored(self):
        def stored(w, job):
            return w.jobs.wait_status(job[0], lambda u: u[1] == cj.IN_PROGRESS, 40)
        status, _ = self.killed_at(stored, "stored", ("stored", "applying"))
        # IN_PROGRESS is published just before the apply starts: on a loaded machine
        # the test may see it only after the modem has already switched images.  The
        # stage the job file held at the kill says which case this run exercised.
        if self.saved_stage == "stored":
            self.assertEqual(status.get("app"), ft.OLD_APP, status)
            self.assertTrue(status.get("fota", "").startswith("3,"), status)  # scheduled, not applied yet
        else:
            print("the modem was already applying when the daemon was killed")

    def test_daemon_killed_after_reset(self):
        def booted(w, job):
            if not w.jobs.wait_status(job[0], lambda u: u[1] == cj.IN_PROGRESS, 40):
                return False
            return st.wait_until(lambda: w.sim.status().get("app") == NEW_APP, 30, step=0.02)
        status, before_kill = self.killed_at(booted, "after the reset", ("applying", "reporting"))
        self.assertEqual(status.get("app"), NEW_APP, status)
        self.assertTrue(status.get("fota", "")[:2] in ("4,", "0,"), status)  # testing, or confirmed just now
        # The report had not gone out at the kill.
        self.assertFalse([u for u in before_kill if u[1] in cj.TERMINAL], before_kill)

    def test_never_confirmed_reverted(self):
        """The new application never answers: the watchdog resets, MCUboot reverts, FAILED."""
        w = self.world()
        self.assertEqual(w.sim.command("fota-mute 3000"), "OK")
        job = self.app_job()
        w.jobs.offer(job, send=False)
        w.wait_ready()
        self.assertTrue(w.wait_shadow(lambda p: p.device_info("appVersion")))
        before = w.peer.device_info("appVersion")
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.FAILED, ft.E_VALIDATE_FAILED], w.diag())
        self.check(job[0], [[job[0], cj.IN_PROGRESS, ""], final])
        self.assertEqual(w.sim.status().get("app"), ft.OLD_APP)
        time.sleep(1.0)
        self.assertEqual(w.peer.device_info("appVersion"), before)
        self.assertIn("#XFOTA: 5,3", w.sim.text() + w.daemon.log())

    def test_journal_records(self):
        """Every step a journal record with FOTA_JOB_ID= and FOTA_TYPE=; start, success and failure with a MESSAGE_ID
        of the catalog."""
        w = self.world(journal=True)
        failing = self.app_job("job-journal-404")
        w.files.set_fault(failing[4], mode="404")
        good = self.app_job("job-journal-ok")
        w.jobs.offer(failing, send=False)
        w.jobs.offer(good, send=False)
        w.wait_ready()
        self.assertEqual(w.wait_final(failing[0]), [failing[0], cj.FAILED, ft.E_DOWNLOAD], w.diag())
        self.assertEqual(w.wait_final(good[0]), [good[0], cj.SUCCEEDED, ""], w.diag())
        catalog = ft.catalog_ids()
        ids = {}
        for job in (failing, good):
            recs = [r for r in list(w.daemon.journal_records) if r.get("FOTA_JOB_ID") == job[0]]
            self.assertGreaterEqual(len(recs), 3, recs)
            self.assertEqual({r.get("FOTA_TYPE") for r in recs}, {"APP"}, recs)
            mids = [r["MESSAGE_ID"] for r in recs if "MESSAGE_ID" in r]
            self.assertTrue(set(mids) <= set(catalog), "MESSAGE_ID not in the catalog: %s" % (set(mids) - set(catalog)))
            ids[job[0]] = mids
        # One start message for both, then each its own end.
        start = set(ids[failing[0]]) & set(ids[good[0]])
        self.assertEqual(len(start), 1, ids)
        end_failed = set(ids[failing[0]]) - start
        end_ok = set(ids[good[0]]) - start
        self.assertEqual(len(end_failed), 1, ids)
        self.assertEqual(len(end_ok), 1, ids)
        self.assertNotEqual(end_failed, end_ok)

    # ---- jobs the daemon must not run ----

    def test_duplicate_finished_job_skipped(self):
        w = self.world()
        job = self.app_job("job-dup")
        w.files.set_fault(job[4], mode="404")
        w.jobs.offer(job, send=False)
        w.wait_ready()
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.FAILED, ft.E_DOWNLOAD], w.diag())
        n = len(w.files.requests)
        w.jobs.send_raw(json.dumps(job))
        self.assertEqual(ft.no_more_updates(w), [])
        self.assertEqual(len(w.files.requests), n, "the finished job was downloaded again")
        # Still working: a job with an unsupported type is answered.
        other = ["job-after-dup", cj.MDM_FULL, 100, w.files.host, "x.bin"]
        w.jobs.offer(other)
        self.assertEqual(w.wait_final(other[0], 20), [other[0], cj.REJECTED, ft.E_UNSUPPORTED])

    def test_second_job_after_first(self):
        """A second job while one runs is handled after the first."""
        w, first = self.running_app_job("job-first", at_pct=10)
        second = self.w.job("job-second", cj.APP, "job-second/app.bin", fs.app_image("1.2.4", 4096))
        w.files.set_fault(second[4], mode="404")
        w.jobs.offer(second)  # sent on jobs/rcv at once, while the first runs
        self.app_succeeded(first[0], every_step=False)
        final2 = w.wait_final(second[0])
        self.assertEqual(final2, [second[0], cj.FAILED, ft.E_DOWNLOAD], w.diag())
        self.check(second[0], [final2], complete=False)
        t_first_done = max(t for t, u in w.jobs.timed_statuses(first[0]))
        t_second = min(t for t, u in w.jobs.timed_statuses(second[0]))
        self.assertGreater(t_second, t_first_done, "the second job started before the first ended")

    def test_unsupported_type_rejected(self):
        w = self.world()
        w.wait_ready()
        for job_id, fw_type in (("job-full", cj.MDM_FULL), ("job-boot", cj.BOOT)):
            job = [job_id, fw_type, 1000, w.files.host, "x/%s.bin" % job_id]
            w.jobs.offer(job)
            self.assertEqual(w.wait_final(job_id, 20), [job_id, cj.REJECTED, ft.E_UNSUPPORTED], w.diag())
            self.assertEqual(self.statuses(job_id), [[job_id, cj.REJECTED, ft.E_UNSUPPORTED]])
        self.assertFalse(w.files.requests)

    def test_fota_v2_with_external_flash(self):
        """With external flash the firmware can apply full modem images: fota_v2 says so, and such a job runs."""
        w = self.world(sim_args=["--external-flash"])
        w.wait_ready()
        self.assertTrue(w.wait_shadow(lambda p: p.fota_v2() is not None))
        self.assertEqual(w.peer.fota_v2(), ["APP", "MODEM", "MDM_FULL"])

    def test_invalid_job_rejected(self):
        w = self.world()
        w.wait_ready()
        host = w.files.host
        bad = [
            ["bad-type-text", "0", 1000, host, "a.bin"],
            ["bad-type-number", 99, 1000, host, "a.bin"],
            ["bad-dotdot", 0, 1000, host, "a/../../etc/passwd"],
            ["bad-control", 0, 1000, host, "a\u0001b.bin"],
            ["bad-host-missing", 0, 1000],
            ["bad-long-path", 0, 1000, host, "p/" + "x" * 4096],
        ]
        for job in bad:
            with self.subTest(job=job[0]):
                w.jobs.offer(job)
                final = w.wait_final(job[0], 20)
                self.assertEqual(final, [job[0], cj.REJECTED, ft.E_INVALID], "%s\n%s" % (job, w.diag()))
                self.assertEqual(self.statuses(job[0]), [final])
        self.assertFalse(w.files.requests)

    def test_garbage_ignored(self):
        """Garbage or no job on jobs/rcv: nothing is sent, the daemon stays up and still takes jobs."""
        w = self.world()
        w.wait_ready()
        n_req = len(w.jobs.requests)
        for payload in (b"", b"[]", b"null", b"garbage", b"{}", b"[1,", b"[5]", b"[null]", b"\xff\xfe",
                        b'{"jobId":"x"}', b'[[]]', b"[" * 1000):
            w.jobs.send_raw(payload)
        self.assertEqual(ft.no_more_updates(w, 3.0), [])
        self.assertIsNone(w.daemon.proc.poll(), "the daemon died")
        # No storm of job requests either.
        self.assertLessEqual(len(w.jobs.requests) - n_req, 1)
        job = ["after-garbage", cj.MDM_FULL, 10, w.files.host, "x.bin"]
        w.jobs.offer(job)
        self.assertEqual(w.wait_final(job[0], 20), [job[0], cj.REJECTED, ft.E_UNSUPPORTED])

    def test_no_job_reply_empty_array(self):
        """nRF Cloud may answer [] when no job is queued: no status, no loop of requests."""
        w = self.world(no_job_reply=b"[]")
        w.wait_ready()
        time.sleep(3.0)
        self.assertEqual(w.jobs.statuses(), [])
        self.assertLessEqual(len(w.jobs.requests), 1, w.jobs.requests)

    # ---- the connection lost with a report unacknowledged ----

    def test_report_resent_after_reconnect(self):
        """[id,1,""] published but never acknowledged when the connection drops: it is
        sent again first after the reconnection, and the image is applied only then."""
        w, job = self.running_app_job(at_pct=70, rate=SLOW // 2)
        stored = '["%s",1,""]' % job[0]
        connects = [p for p in w.daemon_packets() if p[0] == "CONNECT"]
        # The broker stops reading: what the daemon publishes from now on gets no PUBACK.
        os.kill(w.broker.proc.pid, signal.SIGSTOP)
        try:
            published = w.daemon.wait_log("FOTA status report " + stored, 20)
            time.sleep(0.3)
            app = w.sim.status().get("app")
            # TLS ends in the modem: without the serial link the MQTT connection is gone.
            self.assertEqual(w.sim.command("vanish 3000"), "OK")
            time.sleep(0.5)
        finally:
            os.kill(w.broker.proc.pid, signal.SIGCONT)
        self.assertTrue(published, "the daemon never reported the stored image\n" + w.diag())
        self.assertEqual(app, ft.OLD_APP, "applied before IN_PROGRESS was acknowledged")
        final = w.wait_final(job[0])
        self.assertEqual(final, [job[0], cj.SUCCEEDED, ""], w.diag())
        # After the reconnection, the daemon's first message on a job topic is that report.
        packets = w.daemon_packets()
        idx = [i for i, p in enumerate(packets) if p[0] == "CONNECT"]
        self.assertGreater(len(idx), len(connects), packets)
        after = [p for p in packets[idx[len(connects)]:] if p[0] == "PUBLISH" and "/jobs/" in p[1]]
        self.assertTrue(after, packets)
        self.assertTrue(after[0][1].endswith("/jobs/update"), "first after the reconnection: %s" % (after[:3],))
        self.assertEqual(after[0][3], len(stored), "first after the reconnection: %s" % (after[:3],))
        # The broker took it from the old connection too: it came twice; the others once each.
        statuses = self.statuses(job[0])
        self.assertIn(statuses.count([job[0], cj.IN_PROGRESS, ""]), (1, 2), statuses)
        self.assertEqual([u for u in statuses if u[1] in cj.TERMINAL], [final])
        dedup = [u for i, u in enumerate(statuses) if u not in statuses[:i]]
        ft.check_sequence(self, dedup, job[0], [[job[0], cj.IN_PROGRESS, ""], final], diag=w.diag())


if __name__ == "__main__":
    name = os.environ.get("FOTA_TEST")
    argv = [sys.argv[0]] + (["FotaTest." + name] if name else [])
    unittest.main(argv=argv, verbosity=2)
