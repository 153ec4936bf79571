# SPDX-License-Identifier: MIT
"""nRF Cloud's FOTA job service for one gateway, for the stand-ins for nRF
Cloud (cloudtest.Peer and its subclasses): a queue of job executions served
on the job topics of the nRF Cloud FOTA spec (nrfcloud-fota.md) §1.1-1.4, and a record
of everything the gateway said on them.

  * `prod/<team>/<id>/jobs/req` from the gateway: `[""]` is answered on
    `jobs/rcv` with the oldest job of the queue that is not finished,
    `["<jobId>"]` with that job.  With nothing queued the answer is
    `no_job_reply` (the spec, §1.2, does not know what nRF Cloud sends then:
    by default nothing; a test can set b"[]", b"", b"null" ...).
  * `jobs/update` from the gateway: every array recorded in order with its
    arrival time; a terminal status (FAILED, SUCCEEDED, REJECTED, TIMED_OUT,
    CANCELED) finishes the job: it is no longer handed out.
  * `offer()` queues a job and, like nRF Cloud when a job is created, also
    sends it on `jobs/rcv` at once; `send_raw()` publishes anything there.

The queue is a helper object, not a client: the peer hands it the messages
of the job topics (handle()) and gives it its publish function."""

import json
import threading
import time

QUEUED, IN_PROGRESS, FAILED, SUCCEEDED, TIMED_OUT, CANCELED, REJECTED, DOWNLOADING = range(8)
TERMINAL = {FAILED, SUCCEEDED, TIMED_OUT, CANCELED, REJECTED}
STATUS_NAMES = ["QUEUED", "IN_PROGRESS", "FAILED", "SUCCEEDED", "TIMED_OUT", "CANCELED", "REJECTED", "DOWNLOADING"]

# Firmware types in a job (spec §1.7).
APP, MODEM, BOOT, BLE_BOOT, BLE_SOFTDEVICE, MDM_FULL = range(6)


class JobQueue:
    def __init__(self, prefix, device_id, publish, no_job_reply=None):
        """prefix: "prod/<team>/"; publish(topic, payload, qos)."""
        self.base = "%s%s/jobs/" % (prefix, device_id)
        self.publish = publish
        self.no_job_reply = no_job_reply
        self.lock = threading.Condition()
        self.jobs = []  # [job array or raw payload, finished]
        self.updates = []  # (monotonic time, decoded array or None, raw payload)
        self.requests = []  # (monotonic time, raw payload)
        self.sent = []  # (monotonic time, raw payload) on jobs/rcv
        self.answer_requests = True

    @property
    def topic_req(self):
        return self.base + "req"

    @property
    def topic_rcv(self):
        return self.base + "rcv"

    @property
    def topic_update(self):
        return self.base + "update"

    # ---- the cloud's side ----

    def offer(self, job, send=True):
        """Queues a job: [id, type, size, host, path] (or raw bytes); sends it on jobs/rcv unless send=False."""
        with self.lock:
            self.jobs.append([job, False])
        if send:
            self._send(job)

    def send_raw(self, payload):
        """Publishes payload (bytes or str) on jobs/rcv, outside the queue."""
        self._send(payload.encode() if isinstance(payload, str) else payload)

    def _send(self, job):
        payload = job if isinstance(job, bytes) else json.dumps(job).encode()
        with self.lock:
            self.sent.append((time.monotonic(), payload))
        self.publish(self.topic_rcv, payload, 1)

    def pending(self):
        with self.lock:
            return [j for j, done in self.jobs if not done]

    def handle(self, topic, payload):
        """A message from the broker; True if it was on a job topic of this gateway."""
        if topic == self.topic_req:
            with self.lock:
                self.requests.append((time.monotonic(), payload))
                self.lock.notify_all()
                answer = self.answer_requests
            if answer:
                self._answer(payload)
            return True
        if topic == self.topic_update:
            try:
                update = json.loads(payload)
            except ValueError:
                update = None
            with self.lock:
                self.updates.append((time.monotonic(), update, payload))
                if (isinstance(update, list) and len(update) >= 2 and update[1] in TERMINAL):
                    for entry in self.jobs:
                        if isinstance(entry[0], list) and entry[0][:1] == update[:1]:
                            entry[1] = True
                self.lock.notify_all()
            return True
        return topic.startswith(self.base)

    def _answer(self, payload):
        try:
            want = json.loads(payload)
            want = want[0] if isinstance(want, list) and want else ""
        except ValueError:
            want = ""
        with self.lock:
            job = None
            for j, done in self.jobs:
                if done or not isinstance(j, list):
                    continue
                if want in ("", j[0]):
                    job = j
                    break
        if job is not None:
            self._send(job)
        elif self.no_job_reply is not None:
            self._send(self.no_job_reply)

    # ---- what the gateway said ----

    def statuses(self, job_id=None):
        """The decoded jobs/update arrays, in order (of one job if told)."""
        with self.lock:
            return [u for _, u, _ in self.updates
                    if job_id is None or (isinstance(u, list) and u[:1] == [job_id])]

    def timed_statuses(self, job_id=None):
        with self.lock:
            return [(t, u) for t, u, _ in self.updates
                    if job_id is None or (isinstance(u, list) and u[:1] == [job_id])]

    def request_times(self):
        with self.lock:
            return [t for t, _ in self.requests]

    def wait(self, predicate, timeout):
        """Until predicate(self) holds (checked at every update and request); returns its last value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                v = predicate(self)
                left = deadline - time.monotonic()
                if v or left <= 0:
                    return v
                self.lock.wait(min(left, 0.2))

    def wait_status(self, job_id, pred, timeout):
        """The first update of job_id for which pred(update) holds, or None."""
        def find(q):
            for u in q.statuses(job_id):
                if pred(u):
                    return u
            return None
        return self.wait(find, timeout)

    def wait_final(self, job_id, timeout):
        """The first terminal update of job_id, or None."""
        return self.wait_status(job_id, lambda u: len(u) >= 2 and u[1] in TERMINAL, timeout)


def describe(update):
    """A readable form of one jobs/update array."""
    if isinstance(update, list) and len(update) >= 3 and isinstance(update[1], int) and 0 <= update[1] < 8:
        return "%s %s %r" % (update[0], STATUS_NAMES[update[1]], update[2])
    return repr(update)
