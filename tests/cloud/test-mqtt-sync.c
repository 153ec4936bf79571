/* SPDX-License-Identifier: MIT */
/*
 * The MQTT session's group commit of the outbox: synced at once when the loop
 * is otherwise idle, and, while it stays busy, one sync for the pushes of up
 * to 5 ms instead of one per push (no connection is needed for this).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mqtt.h"
#include "outbox.h"
#include "test-fs.h"
#include "util.h"

static const OutboxLimits limits = { .max_messages = 100000, .max_bytes = 64u << 20 };

typedef struct Fixture {
        char tmp[256];
        char dir[300];
        sd_event *e;
        Outbox *o;
        MqttSession *s;
        unsigned pushes;
} Fixture;

static void setup(Fixture *f) {
        MqttOptions o = { .client_id = "b3c1e2d4-0f6a-4b8c-9d1e-2f3a4b5c6d80" };
        const char *base = getenv("TMPDIR");

        memset(f, 0, sizeof *f);
        snprintf(f->tmp, sizeof f->tmp, "%s/test-mqtt-sync-XXXXXX", base && *base ? base : P_tmpdir);
        assert_non_null(mkdtemp(f->tmp));
        snprintf(f->dir, sizeof f->dir, "%s/outbox", f->tmp);
        assert_int_equal(sd_event_new(&f->e), 0);
        assert_int_equal(outbox_new(f->dir, &limits, &f->o), 0);
        assert_int_equal(mqtt_session_new(f->e, &o, f->o, NULL, NULL, &f->s), 0);
}

static void teardown(Fixture *f) {
        f->s = mqtt_session_free(f->s);
        f->o = outbox_free(f->o);
        sd_event_unref(f->e);
        test_rm_rf(f->tmp);
}

static void push(Fixture *f) {
        static const char payload[] = "{\"type\":\"event\"}";
        uint64_t seq;
        assert_int_equal(mqtt_session_publish(f->s, OUTBOX_NOTIFICATION, "prod/t/m/g/x", payload, sizeof payload - 1,
                                              &seq),
                         0);
        f->pushes++;
}

/* Light traffic: the next iteration with nothing else to do syncs. */
static void test_idle_loop_syncs_at_once(void **state) {
        Fixture f;
        (void) state;

        setup(&f);
        push(&f);
        assert_true(outbox_needs_sync(f.o));
        assert_true(sd_event_run(f.e, 0) >= 0);
        assert_false(outbox_needs_sync(f.o));
        teardown(&f);
}

/*
 * Stands for a flood of D-Bus signals: a socket that stays readable (an
 * eventfd never read), dispatched in every iteration, one push each time.
 */
static int on_busy(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) s, (void) fd, (void) revents;
        push(userdata);
        return 0;
}

static void test_busy_loop_groups_pushes(void **state) {
        sd_event_source *busy = NULL;
        uint64_t t0, synced_after = 0;
        unsigned grouped = 0;
        Fixture f;
        int fd;
        (void) state;

        setup(&f);
        fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(sd_event_add_io(f.e, &busy, fd, EPOLLIN, on_busy, &f), 0);

        t0 = now_usec(CLOCK_MONOTONIC);
        push(&f);
        for (unsigned i = 0; i < 1000000 && outbox_needs_sync(f.o); i++) {
                assert_true(sd_event_run(f.e, 0) >= 0);
                if (!outbox_needs_sync(f.o)) {
                        synced_after = now_usec(CLOCK_MONOTONIC) - t0;
                        grouped = f.pushes;
                }
        }
        /* Not starved by the busy loop ... */
        assert_false(outbox_needs_sync(f.o));
        /* ... not before the bound (the timer cannot fire early), nor long after it on a loaded machine ... */
        assert_true(synced_after >= 5000);
        assert_true(synced_after < 2000000);
        /* ... and one sync for many pushes, not one each. */
        assert_true(grouped > 2);

        /* The next push arms it again. */
        push(&f);
        assert_true(outbox_needs_sync(f.o));
        assert_int_equal(sd_event_source_set_enabled(busy, SD_EVENT_OFF), 0);
        assert_true(sd_event_run(f.e, 0) >= 0);
        assert_false(outbox_needs_sync(f.o));

        sd_event_source_disable_unref(busy);
        close(fd);
        teardown(&f);
}

static uint64_t fake_now(void *userdata) {
        (void) userdata;
        return now_usec(CLOCK_BOOTTIME);
}

static int fake_set_timer(void *userdata, uint64_t usec) {
        *(uint64_t *) userdata = usec;
        return 0;
}

/*
 * With a sync interval the outbox keeps its deadlines with its own timer: a
 * publish arms no group commit, so the loop has nothing to do after it (it
 * used to run a pass for the idle source and change its timer twice, per
 * message, for an outbox_sync() with nothing due).
 */
static void test_interval_outbox_needs_no_group_commit(void **state) {
        static const OutboxLoopOps ops = { .now = fake_now, .set_timer = fake_set_timer };
        OutboxLimits l = limits;
        uint64_t timer = UINT64_MAX;
        Fixture f;
        (void) state;

        setup(&f);
        l.sync_interval_usec = 1000000;
        assert_int_equal(outbox_set_limits(f.o, &l), 0);
        outbox_set_loop(f.o, &ops, &timer, NULL);
        assert_true(outbox_syncs_itself(f.o));
        push(&f);
        push(&f);
        /* No runtime folder here: the pushes wait in the state directory for the interval, on
         * the outbox's own timer ... */
        assert_true(outbox_needs_sync(f.o));
        assert_true(timer != UINT64_MAX);
        /* ... and the loop has nothing pending. */
        assert_int_equal(sd_event_run(f.e, 0), 0);
        assert_true(outbox_needs_sync(f.o));
        teardown(&f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_idle_loop_syncs_at_once),
                cmocka_unit_test(test_busy_loop_groups_pushes),
                cmocka_unit_test(test_interval_outbox_needs_no_group_commit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
