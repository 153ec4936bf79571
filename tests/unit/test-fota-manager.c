/* SPDX-License-Identifier: MIT */
/*
 * The FOTA manager's state machine against a fake cloud and a fake modem:
 * every action it takes is recorded as one line ("PUB [...]", "REQ",
 * "START 1 https://...", "APPLY 1", "CONFIRM"), and the test plays the
 * acknowledgements, the firmware's URCs and probes, restarts of the daemon
 * from each persisted stage, and timeouts (called directly: no clock).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fota-manager.h"
#include "test-fs.h"

#define LOG_MAX 64

typedef struct Fake {
        char dir[64];
        char *log[LOG_MAX];
        size_t n_log;
        FotaDoneFn pending_done[LOG_MAX];
        void *pending_ud[LOG_MAX];
        size_t n_pending;
        unsigned updated;
        FotaManager *fm;
} Fake;

static void fake_log(Fake *f, const char *fmt, ...) _printf_(2, 3);
static void fake_log(Fake *f, const char *fmt, ...) {
        va_list ap;
        char *s;
        va_start(ap, fmt);
        assert_true(vasprintf(&s, fmt, ap) >= 0);
        va_end(ap);
        assert_true(f->n_log < LOG_MAX);
        f->log[f->n_log++] = s;
}

static int fake_publish(void *ud, const char *payload, FotaDoneFn done, void *done_ud) {
        Fake *f = ud;
        fake_log(f, "PUB %s", payload);
        f->pending_done[f->n_pending] = done;
        f->pending_ud[f->n_pending++] = done_ud;
        return 0;
}

static int fake_request(void *ud) {
        fake_log(ud, "REQ");
        return 0;
}

static int fake_start(void *ud, int op, const char *url) {
        fake_log(ud, "START %d %s", op, url);
        return 0;
}

static int fake_apply(void *ud, int op) {
        fake_log(ud, "APPLY %d", op);
        return 0;
}

static int fake_confirm(void *ud) {
        fake_log(ud, "CONFIRM");
        return 0;
}

static void fake_updated(void *ud) {
        ((Fake *) ud)->updated++;
}

static const FotaManagerOps fake_ops = {
        .publish_update = fake_publish,
        .request_jobs = fake_request,
        .modem_start = fake_start,
        .modem_apply = fake_apply,
        .modem_confirm = fake_confirm,
        .updated = fake_updated,
};

/* The broker acknowledges everything published so far, in order. */
static void ack_all(Fake *f) {
        size_t n = f->n_pending;
        FotaDoneFn d[LOG_MAX];
        void *u[LOG_MAX];
        memcpy(d, f->pending_done, n * sizeof d[0]);
        memcpy(u, f->pending_ud, n * sizeof u[0]);
        f->n_pending = 0;
        for (size_t i = 0; i < n; i++)
                d[i](0, u[i]);
}

/* The connection drops: nothing published is ever acknowledged. */
static void drop(Fake *f) {
        f->n_pending = 0;
        fota_manager_cloud_down(f->fm);
}

static void clear_log(Fake *f) {
        for (size_t i = 0; i < f->n_log; i++)
                free(f->log[i]);
        f->n_log = 0;
}

/* The log so far equals want (NULL-terminated), then it is cleared. */
static void expect(Fake *f, const char *const *want) {
        size_t n = 0;
        while (want[n])
                n++;
        for (size_t i = 0; i < MAX(n, f->n_log); i++)
                if (i >= n || i >= f->n_log || !streq(want[i], f->log[i])) {
                        for (size_t k = 0; k < f->n_log; k++)
                                print_message("  got  %s\n", f->log[k]);
                        for (size_t k = 0; k < n; k++)
                                print_message("  want %s\n", want[k]);
                        fail_msg("action %zu differs", i);
                }
        clear_log(f);
}
#define EXPECT(f, ...) expect(f, (const char *const[]){ __VA_ARGS__, NULL })
#define EXPECT_NOTHING(f) expect(f, (const char *const[]){ NULL })

static void fw_ready(Fake *f, int state, int op, int result, const char *app, const char *modem) {
        FotaFirmware fw = { .ops = 6, .has_state = true, .state = state, .op = op, .result = result,
                            .app_version = app, .modem_version = modem };
        fota_manager_firmware_ready(f->fm, &fw);
}

static void urc(Fake *f, unsigned stage, unsigned status, int64_t info) {
        FotaFirmwareEvent ev = { .stage = stage, .status = status, .has_info = info >= 0, .info = info };
        fota_manager_firmware_event(f->fm, &ev);
}

static void job(Fake *f, const char *s) {
        fota_manager_job_received(f->fm, s, strlen(s));
}

static void restart(Fake *f) {
        f->fm = fota_manager_free(f->fm);
        f->n_pending = 0;
        assert_int_equal(fota_manager_new(NULL, f->dir, 0, &fake_ops, f, &f->fm), 0);
}

static int setup(void **state) {
        Fake *f = calloc(1, sizeof *f);
        assert_non_null(f);
        snprintf(f->dir, sizeof f->dir, "/tmp/test-fota-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(fota_manager_new(NULL, f->dir, 0, &fake_ops, f, &f->fm), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fake *f = *state;
        fota_manager_free(f->fm);
        clear_log(f);
        test_rm_rf(f->dir);
        free(f);
        return 0;
}

#define APP_JOB "[\"J1\",0,1000,\"files.example.com\",\"app/v2.bin\"]"
#define APP_URL "START 1 https://files.example.com/app/v2.bin"

/* Connected, firmware 1.0.0 idle, the app job downloading. */
static void start_app_job(Fake *f) {
        fw_ready(f, 0, 0, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        assert_int_equal(fota_manager_supported_types(f->fm), (1u << FOTA_TYPE_APP) | (1u << FOTA_TYPE_MODEM));
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "REQ");
        job(f, APP_JOB);
        EXPECT(f, APP_URL);
        fota_manager_modem_done(f->fm, 0);
        EXPECT(f, "PUB [\"J1\",7,0]");
}

static void test_app_success(void **state) {
        Fake *f = *state;

        start_app_job(f);
        urc(f, 1, 0, 0);
        urc(f, 1, 0, 9);
        urc(f, 1, 0, 10);
        urc(f, 1, 0, 37);
        urc(f, 1, 0, 38);
        urc(f, 1, 0, 100);
        urc(f, 2, 0, -1);
        urc(f, 3, 0, -1);
        urc(f, 4, 0, -1);
        EXPECT(f, "PUB [\"J1\",7,10]", "PUB [\"J1\",7,30]", "PUB [\"J1\",7,100]", "PUB [\"J1\",1,\"\"]");
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_STORED);
        /* The reset only once IN_PROGRESS is acknowledged, and only after the state file says so. */
        ack_all(f);
        EXPECT(f, "APPLY 1");
        assert_int_equal(fota_manager_get_record(f->fm)->stage, FOTA_STAGE_APPLYING);
        fota_manager_firmware_lost(f->fm);
        drop(f);
        urc(f, 5, 0, -1);
        fw_ready(f, 4, 1, 0, "1.1.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, "CONFIRM");
        fota_manager_modem_done(f->fm, 0);
        assert_int_equal(f->updated, 1);
        /* Decided while disconnected: sent first on the next connection, [""] after its PUBACK. */
        EXPECT_NOTHING(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",3,\"\"]");
        ack_all(f);
        EXPECT(f, "REQ");
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_IDLE);
        /* The same job again: skipped. */
        job(f, APP_JOB);
        EXPECT_NOTHING(f);
        restart(f);
        assert_string_equal(fota_manager_get_record(f->fm)->last_job, "J1");
        fota_manager_cloud_ready(f->fm);
        job(f, APP_JOB);
        EXPECT(f, "REQ");
}

/* Each way a job ends without success, with NCS's status and string. */
static void test_failures(void **state) {
        static const struct {
                unsigned stage, status;
                int64_t info;
                const char *report;
        } t[] = {
                { 1, 1, 1, "PUB [\"J1\",2,\"Error during download\"]" },
                { 1, 1, 3, "PUB [\"J1\",2,\"FW file does not match specified FOTA type\"]" },
                { 1, 1, 2, "PUB [\"J1\",6,\"\"]" },
                { 3, 1, 2, "PUB [\"J1\",6,\"\"]" },
                { 1, 2, 0, "PUB [\"J1\",2,\"Error during download\"]" },
        };
        Fake *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                restart(f);
                unlink(f->dir);
                start_app_job(f);
                urc(f, t[i].stage, t[i].status, t[i].info);
                expect(f, (const char *const[]){ t[i].report, NULL });
                assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_REPORTING);
                ack_all(f);
                EXPECT(f, "REQ");
                /* The next run may get the same id again: make it a new job. */
                char path[128];
                snprintf(path, sizeof path, "%s/job", f->dir);
                unlink(path);
        }

        /* The firmware refuses the download. */
        restart(f);
        start_app_job(f);
        urc(f, 1, 1, 1);
        ack_all(f);
        clear_log(f);
        job(f, "[\"J2\",0,1,\"h\",\"a.bin\"]");
        EXPECT(f, "START 1 https://h/a.bin");
        fota_manager_modem_done(f->fm, -EBUSY);
        EXPECT(f, "PUB [\"J2\",2,\"Failed to start download\"]");
}

/* A job downloaded, stored, IN_PROGRESS acknowledged and the reset sent; the log cleared. */
static void run_to_applying(Fake *f, const char *j) {
        if (j)
                job(f, j);
        fota_manager_modem_done(f->fm, 0);
        urc(f, 4, 0, -1);
        ack_all(f);
        clear_log(f);
}

static void test_app_reverted_and_unknown(void **state) {
        Fake *f = *state;

        start_app_job(f);
        urc(f, 4, 0, -1);
        ack_all(f);
        clear_log(f);
        /* A test image that never answered: the bootloader went back to 1.0.0. */
        fw_ready(f, 0, 0, 3, "1.0.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, "PUB [\"J1\",2,\"\"]");
        ack_all(f);
        clear_log(f);

        run_to_applying(f, "[\"J2\",0,1,\"h\",\"a.bin\"]");
        /* The firmware never comes back. */
        fota_manager_apply_timeout(f->fm);
        EXPECT(f, "PUB [\"J2\",3,\"FOTA update not validated\"]");
}

static void test_modem_delta(void **state) {
        Fake *f = *state;

        fw_ready(f, 0, 0, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        fota_manager_cloud_ready(f->fm);
        job(f, "[\"M1\",1,1000,\"https://h\",\"/mfw_nrf9160_update_from_1.3.5_to_1.3.6.bin\"]");
        EXPECT(f, "REQ", "START 2 https://h/mfw_nrf9160_update_from_1.3.5_to_1.3.6.bin");
        assert_string_equal(fota_manager_get_record(f->fm)->modem_expected, "1.3.6");
        fota_manager_modem_done(f->fm, 0);
        urc(f, 1, 0, 100);
        urc(f, 4, 0, -1);
        ack_all(f);
        EXPECT(f, "PUB [\"M1\",7,0]", "PUB [\"M1\",7,100]", "PUB [\"M1\",1,\"\"]", "APPLY 2");
        /* The modem reset gives no "Ready"; the modem manager probes again. */
        urc(f, 5, 0, -1);
        fota_manager_firmware_lost(f->fm);
        fw_ready(f, 0, 0, 0, "1.0.0", "mfw_nrf9160_1.3.6");
        EXPECT(f, "PUB [\"M1\",3,\"\"]");
        ack_all(f);
        clear_log(f);

        /* A delta for another base version: the modem refuses it at the reset. */
        run_to_applying(f, "[\"M2\",1,1000,\"h\",\"mfw_nrf9160_update_from_1.3.4_to_1.3.7.bin\"]");
        fw_ready(f, 0, 0, 1, "1.0.0", "mfw_nrf9160_1.3.6");
        EXPECT(f, "PUB [\"M2\",2,\"\"]");
        ack_all(f);
        clear_log(f);

        /* Applied, but the version is not the one the file name promised. */
        run_to_applying(f, "[\"M3\",1,1000,\"h\",\"mfw_nrf9160_update_from_1.3.6_to_1.3.8.bin\"]");
        fw_ready(f, 0, 0, 0, "1.0.0", "mfw_nrf9160_1.3.7");
        EXPECT(f, "PUB [\"M3\",2,\"\"]");
}

static void test_rejections(void **state) {
        Fake *f = *state;

        fw_ready(f, 0, 0, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "REQ");
        /* No job, garbage: nothing sent. */
        job(f, "");
        job(f, "[]");
        job(f, "null");
        job(f, "\x01\x02garbage");
        job(f, "[17,0]");
        EXPECT_NOTHING(f);
        /* An id but bad fields. */
        job(f, "[\"B1\",0,\"big\",\"h\",\"a.bin\"]");
        EXPECT(f, "PUB [\"B1\",6,\"Job info is invalid\"]");
        ack_all(f);
        EXPECT(f, "REQ");
        /* Types the firmware cannot apply (ops 6: APP and MODEM). */
        job(f, "[\"B2\",5,1,\"h\",\"full.bin\"]");
        EXPECT(f, "PUB [\"B2\",6,\"FOTA type not supported\"]");
        ack_all(f);
        clear_log(f);
        job(f, "[\"B3\",2,1,\"h\",\"boot.bin\"]");
        EXPECT(f, "PUB [\"B3\",6,\"FOTA type not supported\"]");
        ack_all(f);
        clear_log(f);
        /* A second job while one runs: skipped, asked for again when the first ends. */
        job(f, APP_JOB);
        EXPECT(f, APP_URL);
        job(f, "[\"J9\",0,1,\"h\",\"b.bin\"]");
        EXPECT_NOTHING(f);
        urc(f, 1, 1, 1);
        ack_all(f);
        EXPECT(f, "PUB [\"J1\",2,\"Error during download\"]", "REQ");
}

static void test_no_modem(void **state) {
        Fake *f = *state;

        /* Host TLS without a modem: nothing can be applied. */
        assert_int_equal(fota_manager_supported_types(f->fm), 0);
        fota_manager_cloud_ready(f->fm);
        job(f, APP_JOB);
        EXPECT(f, "REQ", "PUB [\"J1\",6,\"FOTA type not supported\"]");
}

/* The connection drops before a report's PUBACK: the report goes first on the next one. */
static void test_unacked_resend(void **state) {
        Fake *f = *state;

        start_app_job(f);
        urc(f, 1, 0, 50);
        EXPECT(f, "PUB [\"J1\",7,50]");
        drop(f);
        urc(f, 1, 0, 60);
        EXPECT_NOTHING(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",7,60]", "REQ");
        /* The cloud answers [""] with the job in progress: ignored. */
        job(f, APP_JOB);
        EXPECT_NOTHING(f);
        ack_all(f);
        drop(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "REQ");
        urc(f, 4, 0, -1);
        EXPECT(f, "PUB [\"J1\",7,100]", "PUB [\"J1\",1,\"\"]");
        drop(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",1,\"\"]", "REQ");
        ack_all(f);
        EXPECT(f, "APPLY 1");
}

/* The download ended while the connection was down: 100 % still goes out, before IN_PROGRESS. */
static void test_hundred_after_reconnect(void **state) {
        Fake *f = *state;

        start_app_job(f);
        urc(f, 1, 0, 10);
        EXPECT(f, "PUB [\"J1\",7,10]");
        ack_all(f);
        drop(f);
        urc(f, 1, 0, 60);
        urc(f, 4, 0, -1);
        EXPECT_NOTHING(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",7,100]", "PUB [\"J1\",1,\"\"]", "REQ");
        ack_all(f);
        EXPECT(f, "APPLY 1");
}

/* The daemon restarted (SIGKILL, power cut) at each persisted stage. */
static void test_restart_each_stage(void **state) {
        Fake *f = *state;

        /* downloading: the firmware goes on downloading meanwhile. */
        start_app_job(f);
        urc(f, 1, 0, 20);
        clear_log(f);
        restart(f);
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_RECOVERING);
        fota_manager_cloud_ready(f->fm);
        EXPECT_NOTHING(f);
        fw_ready(f, 1, 1, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_DOWNLOADING);
        urc(f, 1, 0, 25); /* 20 was reported before the restart */
        urc(f, 1, 0, 30);
        EXPECT(f, "PUB [\"J1\",7,30]");

        /* downloading, and the firmware rebooted too: resume with the same command. */
        restart(f);
        fw_ready(f, 2, 1, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, APP_URL);
        fota_manager_modem_done(f->fm, 0);
        urc(f, 1, 0, 30);
        EXPECT_NOTHING(f);

        /* downloading, finished while the daemon was away. */
        restart(f);
        fota_manager_cloud_ready(f->fm);
        fw_ready(f, 3, 1, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, "PUB [\"J1\",7,100]", "PUB [\"J1\",1,\"\"]");

        /* stored: IN_PROGRESS again, then the reset. */
        restart(f);
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_STORED);
        fw_ready(f, 3, 1, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",1,\"\"]", "REQ");
        ack_all(f);
        EXPECT(f, "APPLY 1");

        /* applying, killed before the reset went out: the firmware still has it scheduled. */
        restart(f);
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_APPLYING);
        fw_ready(f, 3, 1, -1, "1.0.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, "APPLY 1");

        /* applying, after the reset, before the report: the test image waits. */
        restart(f);
        fota_manager_cloud_ready(f->fm);
        EXPECT_NOTHING(f);
        fw_ready(f, 4, 1, 0, "1.1.0", "mfw_nrf9160_1.3.5");
        EXPECT(f, "CONFIRM");

        /* ... killed after the confirm: the image is permanent, the version says it. */
        restart(f);
        fw_ready(f, 0, 0, 0, "1.1.0", "mfw_nrf9160_1.3.5");
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",3,\"\"]");

        /* reporting: the decided report again, exactly once, then [""]. */
        restart(f);
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_REPORTING);
        fw_ready(f, 0, 0, 0, "1.1.0", "mfw_nrf9160_1.3.5");
        fota_manager_cloud_ready(f->fm);
        EXPECT(f, "PUB [\"J1\",3,\"\"]");
        ack_all(f);
        EXPECT(f, "REQ");
        restart(f);
        assert_int_equal(fota_manager_get_state(f->fm), FOTA_STATE_IDLE);
        assert_string_equal(fota_manager_get_record(f->fm)->last_job, "J1");
}

static void test_record_format(void **state) {
        FotaRecord r, back;
        char *text = NULL;
        (void) state;

        fota_record_init(&r);
        r.stage = FOTA_STAGE_APPLYING;
        strcpy(r.id, "3f6a0b1c-2d3e-4f50-8a9b-0c1d2e3f4a5b");
        r.type = FOTA_TYPE_MODEM;
        strcpy(r.url, "https://h/mfw_nrf9160_update_from_1.3.5_to_1.3.6.bin");
        strcpy(r.modem_before, "mfw_nrf9160_1.3.5");
        strcpy(r.modem_expected, "1.3.6");
        r.progress = 100;
        r.has_report = true;
        r.report_status = FOTA_STATUS_IN_PROGRESS;
        strcpy(r.last_job, "J0");
        assert_int_equal(fota_record_format(&r, &text), 0);
        assert_non_null(strstr(text, "\nstage=applying\n"));
        assert_non_null(strstr(text, "\ntype=MODEM\n"));
        assert_int_equal(fota_record_parse(text, strlen(text), &back), 0);
        assert_memory_equal(&r, &back, sizeof r);
        free(text);

        assert_int_equal(fota_record_parse("stage=applying\n", 15, &back), -EBADMSG); /* no id */
        assert_int_equal(fota_record_parse("stage=flying\nid=x\n", 18, &back), -EBADMSG);
        assert_int_equal(fota_record_parse("id=x\n", 5, &back), -EBADMSG);
        assert_int_equal(fota_record_parse("stage=none\nlast_job=J\nfuture=1\n", 31, &back), 0);
        strcpy(r.report_message, "a\nb");
        assert_int_equal(fota_record_format(&r, &text), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_app_success, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
                cmocka_unit_test_setup_teardown(test_app_reverted_and_unknown, setup, teardown),
                cmocka_unit_test_setup_teardown(test_modem_delta, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_modem, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unacked_resend, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hundred_after_reconnect, setup, teardown),
                cmocka_unit_test_setup_teardown(test_restart_each_stage, setup, teardown),
                cmocka_unit_test(test_record_format),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
