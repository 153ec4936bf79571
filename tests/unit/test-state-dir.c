/* SPDX-License-Identifier: MIT */
/* StateDirectory=, RuntimeDirectory= and their outbox folders are checked before use. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state-dir.h"

typedef struct Dirs {
        char root[64];
        char state[96];
        char outbox[128];
        char segment[160];
} Dirs;

static mode_t mode_of(const char *p) {
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        return st.st_mode & 07777;
}

/* A 0777 state directory and outbox with a 0666 segment, as found outside systemd. */
static int setup(void **state) {
        Dirs *d = calloc(1, sizeof *d);
        int fd;

        assert_non_null(d);
        snprintf(d->root, sizeof d->root, "/tmp/test-state-dir-XXXXXX");
        assert_non_null(mkdtemp(d->root));
        snprintf(d->state, sizeof d->state, "%s/state", d->root);
        snprintf(d->outbox, sizeof d->outbox, "%s/outbox", d->state);
        snprintf(d->segment, sizeof d->segment, "%s/seg-0000000001", d->outbox);
        assert_int_equal(mkdir(d->state, 0777), 0);
        assert_int_equal(mkdir(d->outbox, 0777), 0);
        fd = open(d->segment, O_CREAT | O_WRONLY, 0666);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(chmod(d->state, 0777), 0);
        assert_int_equal(chmod(d->outbox, 0777), 0);
        assert_int_equal(chmod(d->segment, 0666), 0);
        *state = d;
        return 0;
}

static int teardown(void **state) {
        Dirs *d = *state;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->root);
        assert_int_equal(system(cmd), 0);
        free(d);
        return 0;
}

static void test_own_loose_modes_fixed(void **state) {
        Dirs *d = *state;

        assert_int_equal(state_directory_prepare(d->state), 0);
        assert_int_equal(mode_of(d->state), 0700);
        assert_int_equal(mode_of(d->outbox), 0700);
        assert_int_equal(mode_of(d->segment), 0600);
}

static void test_missing_created_private(void **state) {
        Dirs *d = *state;
        char path[128];

        snprintf(path, sizeof path, "%s/new", d->root);
        assert_int_equal(state_directory_prepare(path), 0);
        assert_int_equal(mode_of(path), 0700);
        assert_int_equal(rmdir(path), 0);
}

static void test_foreign_segment_refused(void **state) {
        Dirs *d = *state;

        if (geteuid() != 0)
                skip();
        assert_int_equal(chown(d->segment, 65534, 65534), 0);
        assert_int_equal(state_directory_prepare(d->state), -EPERM);
        /* Refused, not adopted: its mode is left as it was. */
        assert_int_equal(mode_of(d->segment), 0666);
}

static void test_foreign_directory_refused(void **state) {
        Dirs *d = *state;

        if (geteuid() != 0)
                skip();
        assert_int_equal(chown(d->state, 65534, 65534), 0);
        assert_int_equal(state_directory_prepare(d->state), -EPERM);
        assert_int_equal(mode_of(d->state), 0777);
}

static void test_symlinks_refused(void **state) {
        Dirs *d = *state;
        char link[192], target[128];

        snprintf(link, sizeof link, "%s/seg-0000000002", d->outbox);
        assert_int_equal(symlink("/etc/passwd", link), 0);
        assert_int_equal(state_directory_prepare(d->state), -EPERM);
        assert_int_equal(unlink(link), 0);

        /* The state directory itself a symbolic link. */
        snprintf(target, sizeof target, "%s/link", d->root);
        assert_int_equal(symlink(d->state, target), 0);
        assert_int_equal(state_directory_prepare(target), -EPERM);
}

/* The runtime directory, where the outbox keeps what is not yet acknowledged, gets the same checks. */
static void test_runtime_directory_checked(void **state) {
        Dirs *d = *state;
        char link[192];

        assert_int_equal(runtime_directory_prepare(d->state), 0);
        assert_int_equal(mode_of(d->state), 0700);
        assert_int_equal(mode_of(d->segment), 0600);
        snprintf(link, sizeof link, "%s/0000000000000009.seg", d->outbox);
        assert_int_equal(symlink("/etc/passwd", link), 0);
        assert_int_equal(runtime_directory_prepare(d->state), -EPERM);
        assert_int_equal(unlink(link), 0);
        if (geteuid() != 0)
                return;
        assert_int_equal(chown(d->segment, 65534, 65534), 0);
        assert_int_equal(runtime_directory_prepare(d->state), -EPERM);
}

/* Only an explicit runtime directory is used: a default one would be shared by every daemon. */
static void test_runtime_directory_from_environment(void **state) {
        (void) state;
        assert_int_equal(unsetenv("NRFCLOUD_GATEWAY_RUNTIME_DIR"), 0);
        assert_int_equal(unsetenv("RUNTIME_DIRECTORY"), 0);
        assert_null(runtime_directory());
        assert_int_equal(setenv("RUNTIME_DIRECTORY", "/run/nrfcloud-gateway:/run/other", 1), 0);
        assert_string_equal(runtime_directory(), "/run/nrfcloud-gateway");
        assert_int_equal(setenv("NRFCLOUD_GATEWAY_RUNTIME_DIR", "/tmp/x", 1), 0);
        assert_string_equal(runtime_directory(), "/tmp/x");
        assert_int_equal(unsetenv("NRFCLOUD_GATEWAY_RUNTIME_DIR"), 0);
        assert_int_equal(unsetenv("RUNTIME_DIRECTORY"), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_own_loose_modes_fixed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_created_private, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_segment_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_directory_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_symlinks_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_runtime_directory_checked, setup, teardown),
                cmocka_unit_test(test_runtime_directory_from_environment),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
