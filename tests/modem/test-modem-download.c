/* SPDX-License-Identifier: MIT */
/* #XDOWNLOAD into a file through the AT engine on a fake loop (at-commands.md, "#XDOWNLOAD"). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "fake-loop.h"
#include "modem-download.h"
#include "util.h"

typedef struct Fixture {
        FakeLoop loop;
        AtEngine *engine;
        ModemDownloader *dl;
        char dir[64];
        char path[128];
        unsigned done_calls, progress_calls;
        int error;
        ModemDownloadResult result;
        uint64_t last_progress;
} Fixture;

static void on_progress(ModemDownload *d, uint64_t received, void *userdata) {
        Fixture *f = userdata;
        (void) d;
        f->progress_calls++;
        f->last_progress = received;
}

static void on_done(ModemDownload *d, int error, const ModemDownloadResult *res, void *userdata) {
        Fixture *f = userdata;
        (void) d;
        f->done_calls++;
        f->error = error;
        if (res)
                f->result = *res;
}

static const ModemDownloadCallbacks callbacks = { .progress = on_progress, .done = on_done };

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->loop.deadline = UINT64_MAX;
        assert_int_equal(at_engine_new(&fake_ops, &f->loop, &f->engine), 0);
        assert_int_equal(modem_downloader_new(f->engine, 16842753, &f->dl), 0);
        strcpy(f->dir, "/tmp/test-modem-download-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/image.bin", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char part[160];

        modem_downloader_free(f->dl);
        at_engine_free(f->engine);
        snprintf(part, sizeof part, "%s.part", f->path);
        (void) unlink(f->path);
        (void) unlink(part);
        assert_int_equal(rmdir(f->dir), 0);
        free(f);
        return 0;
}

static void feed_str(Fixture *f, const char *s) {
        at_engine_feed(f->engine, s, strlen(s));
}

static void feed_chunk(Fixture *f, int id, const char *data) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "\r\n#XDOWNLOAD: %d,1,%zu\r\n", id, strlen(data));
        feed_str(f, hdr);
        feed_str(f, data);
}

static void sha_hex(const char *data, char out[65]) {
        uint8_t md[32];
        assert_int_equal(EVP_Digest(data, strlen(data), md, NULL, EVP_sha256(), NULL), 1);
        for (size_t i = 0; i < 32; i++)
                snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void feed_complete(Fixture *f, int id, const char *hashed) {
        char hex[65], line[160];
        sha_hex(hashed, hex);
        snprintf(line, sizeof line, "\r\n#XDOWNLOAD: %d,2,%zu,\"%s\"\r\n", id, strlen(hashed), hex);
        feed_str(f, line);
}

static void assert_file(const char *path, const char *content) {
        _cleanup_free_ char *data = NULL;
        size_t size;
        assert_int_equal(read_full_file(path, 1 << 20, &data, &size), 0);
        assert_int_equal(size, strlen(content));
        assert_memory_equal(data, content, size);
}

static void assert_written(Fixture *f, const char *expected) {
        char buf[512];
        assert_string_equal(fake_take_written(&f->loop, buf, sizeof buf), expected);
}

static void write_file(const char *path, const char *content) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        close(fd);
}

static void test_whole_file(void **state) {
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;
        uint8_t md[32];
        char part[160];

        assert_int_equal(modem_download_new(f->dl, "https://files.example.com/a\"b", f->path, 0, &callbacks, f, &d),
                         -EINVAL);
        assert_int_equal(modem_download_new(f->dl, "http://files.example.com/a", f->path, 0, &callbacks, f, &d),
                         -EINVAL);
        assert_int_equal(modem_download_new(f->dl, "https://files.example.com/fw.bin", f->path, 100, &callbacks, f, &d),
                         0);
        assert_int_equal(modem_download_start(d), 0);
        assert_int_equal(modem_download_start(d), -EBUSY);
        assert_written(f, "AT#XDOWNLOAD=\"https://files.example.com/fw.bin\",16842753\r\n");
        feed_str(f, "\r\n#XDOWNLOAD: 7,0\r\nOK\r\n");
        assert_true(modem_download_running(d));
        /* A chunk that holds what looks like a final result and a URC. */
        feed_chunk(f, 7, "\r\nOK\r\n#XDOWNLOAD: 7,3,-5\r\n");
        feed_chunk(f, 7, "tail");
        assert_int_equal(f->progress_calls, 2);
        assert_int_equal(f->last_progress, 30);
        assert_int_equal(f->done_calls, 0);
        feed_complete(f, 7, "\r\nOK\r\n#XDOWNLOAD: 7,3,-5\r\ntail");
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, 0);
        assert_false(modem_download_running(d));
        assert_int_equal(f->result.size, 30);
        assert_int_equal(EVP_Digest("\r\nOK\r\n#XDOWNLOAD: 7,3,-5\r\ntail", 30, md, NULL, EVP_sha256(), NULL), 1);
        assert_memory_equal(f->result.sha256, md, 32);
        assert_file(f->path, "\r\nOK\r\n#XDOWNLOAD: 7,3,-5\r\ntail");
        snprintf(part, sizeof part, "%s.part", f->path);
        assert_int_equal(access(part, F_OK), -1);

        /* Complete already: reported from the file, nothing sent. */
        f->done_calls = 0;
        assert_int_equal(modem_download_start(d), 0);
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, 0);
        assert_int_equal(f->result.size, 30);
        assert_int_equal(f->loop.written_len, 0);
}

static void test_resume_from_part(void **state) {
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;
        uint8_t md[32];
        char part[160];

        snprintf(part, sizeof part, "%s.part", f->path);
        write_file(part, "hello ");
        assert_int_equal(modem_download_new(f->dl, "https://h/x", f->path, 0, &callbacks, f, &d), 0);
        assert_int_equal(modem_download_start(d), 0);
        assert_written(f, "AT#XDOWNLOAD=\"https://h/x\",16842753,6\r\n");
        feed_str(f, "\r\n#XDOWNLOAD: 2,0\r\nOK\r\n");
        feed_chunk(f, 2, "world");
        assert_int_equal(f->last_progress, 11);
        /* The firmware's digest covers the bytes of this request only. */
        feed_complete(f, 2, "world");
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, 0);
        assert_int_equal(f->result.size, 11);
        assert_int_equal(EVP_Digest("hello world", 11, md, NULL, EVP_sha256(), NULL), 1);
        assert_memory_equal(f->result.sha256, md, 32);
        assert_file(f->path, "hello world");
}

static void test_digest_mismatch_starts_over(void **state) {
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;
        char part[160];

        snprintf(part, sizeof part, "%s.part", f->path);
        assert_int_equal(modem_download_new(f->dl, "https://h/x", f->path, 0, &callbacks, f, &d), 0);
        assert_int_equal(modem_download_start(d), 0);
        feed_str(f, "\r\n#XDOWNLOAD: 3,0\r\nOK\r\n");
        feed_chunk(f, 3, "abcd");
        feed_complete(f, 3, "abce"); /* a byte changed on the link */
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, -EBADMSG);
        assert_int_equal(access(f->path, F_OK), -1);
        assert_int_equal(access(part, F_OK), -1);

        /* Count differs. */
        fake_take_written(&f->loop, (char[8]){}, 8);
        assert_int_equal(modem_download_start(d), 0);
        assert_written(f, "AT#XDOWNLOAD=\"https://h/x\",16842753\r\n");
        feed_str(f, "\r\n#XDOWNLOAD: 4,0\r\nOK\r\n");
        feed_chunk(f, 4, "abcd");
        feed_complete(f, 4, "abcdabcd");
        assert_int_equal(f->done_calls, 2);
        assert_int_equal(f->error, -EBADMSG);
}

static void test_too_large_is_cancelled(void **state) {
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;

        assert_int_equal(modem_download_new(f->dl, "https://h/x", f->path, 6, &callbacks, f, &d), 0);
        assert_int_equal(modem_download_start(d), 0);
        feed_str(f, "\r\n#XDOWNLOAD: 5,0\r\nOK\r\n");
        fake_take_written(&f->loop, (char[8]){}, 8);
        feed_chunk(f, 5, "1234");
        feed_chunk(f, 5, "567");
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, -EFBIG);
        assert_written(f, "AT#XDOWNLOAD=0,5\r\n");
        feed_str(f, "\r\nOK\r\n");
        /* Chunks still on the way for the cancelled id are dropped. */
        feed_chunk(f, 5, "8");
        assert_int_equal(f->done_calls, 1);
}

static void test_failure_keeps_prefix_and_abort(void **state) {
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;
        char part[160];

        snprintf(part, sizeof part, "%s.part", f->path);
        assert_int_equal(modem_download_new(f->dl, "https://h/x", f->path, 0, &callbacks, f, &d), 0);
        assert_int_equal(modem_download_start(d), 0);
        feed_str(f, "\r\n#XDOWNLOAD: 1,0\r\nOK\r\n");
        feed_chunk(f, 1, "abc");
        feed_str(f, "\r\n#XDOWNLOAD: 1,3,-104\r\n");
        assert_int_equal(f->done_calls, 1);
        assert_int_equal(f->error, -ECONNRESET);
        assert_file(part, "abc");

        /* The firmware restarts mid-download: the owner aborts, the next start resumes. */
        fake_take_written(&f->loop, (char[8]){}, 8);
        assert_int_equal(modem_download_start(d), 0);
        assert_written(f, "AT#XDOWNLOAD=\"https://h/x\",16842753,3\r\n");
        feed_str(f, "\r\n#XDOWNLOAD: 2,0\r\nOK\r\n");
        feed_chunk(f, 2, "de");
        modem_downloader_abort_all(f->dl, -ECONNRESET);
        assert_int_equal(f->done_calls, 2);
        assert_false(modem_download_running(d));
        assert_file(part, "abcde");

        /* The firmware refuses: two downloads run already. */
        fake_take_written(&f->loop, (char[8]){}, 8);
        assert_int_equal(modem_download_start(d), 0);
        feed_str(f, "\r\n+CME ERROR: 16\r\n");
        assert_int_equal(f->done_calls, 3);
        assert_int_equal(f->error, -EBUSY);
}

static void on_done_restart(ModemDownload *d, int error, const ModemDownloadResult *res, void *userdata) {
        on_done(d, error, res, userdata);
        if (error == -ECONNRESET)
                assert_int_equal(modem_download_start(d), 0);
}

static void test_abort_all_with_restart_in_callback(void **state) {
        static const ModemDownloadCallbacks restart = { .progress = on_progress, .done = on_done_restart };
        Fixture *f = *state;
        _cleanup_(modem_download_freep) ModemDownload *d = NULL;

        assert_int_equal(modem_download_new(f->dl, "https://h/x", f->path, 0, &restart, f, &d), 0);
        assert_int_equal(modem_download_start(d), 0);
        feed_str(f, "\r\n#XDOWNLOAD: 1,0\r\nOK\r\n");
        /* Taken down once; the start from its callback stays. */
        modem_downloader_abort_all(f->dl, -ECONNRESET);
        assert_int_equal(f->done_calls, 1);
        assert_true(modem_download_running(d));
}

static void test_unknown_download_cancelled_once(void **state) {
        Fixture *f = *state;

        feed_chunk(f, 9, "x");
        assert_written(f, "AT#XDOWNLOAD=0,9\r\n");
        feed_chunk(f, 9, "y");
        feed_str(f, "\r\nOK\r\n");
        assert_int_equal(f->loop.written_len, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_whole_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_resume_from_part, setup, teardown),
                cmocka_unit_test_setup_teardown(test_digest_mismatch_starts_over, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large_is_cancelled, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_keeps_prefix_and_abort, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unknown_download_cancelled_once, setup, teardown),
                cmocka_unit_test_setup_teardown(test_abort_all_with_restart_in_callback, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
