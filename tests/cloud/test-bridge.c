/* SPDX-License-Identifier: MIT */
/*
 * The modem-mode bridge with real loopback sockets and a scripted remote:
 * only this process may connect, the listener goes after one connection,
 * bytes flow both ways in order with backpressure, and a close on either
 * side closes both.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "bridge.h"
#include "log.h"

typedef struct Fake {
        bool opened, closed, paused;
        char host[64];
        uint16_t port;
        size_t budget; /* bytes send() still takes before it blocks */
        uint8_t *sent;
        size_t sent_len;
        unsigned sends;     /* send() calls that took bytes */
        size_t last_send;   /* bytes the last of them took */
        bool ready;
        uint16_t ready_port;
        int closed_error;
        bool closed_called;
} Fake;

static int fake_open(void *impl, Bridge *b, const char *host, uint16_t port) {
        Fake *f = impl;
        (void) b;
        f->opened = true;
        snprintf(f->host, sizeof f->host, "%s", host);
        f->port = port;
        return 0;
}
static ssize_t fake_send(void *impl, const uint8_t *buf, size_t len) {
        Fake *f = impl;
        size_t n = MIN(len, f->budget);
        memcpy(f->sent + f->sent_len, buf, n);
        f->sent_len += n;
        f->budget -= n;
        if (n > 0) {
                f->sends++;
                f->last_send = n;
        }
        return (ssize_t) n;
}
static void fake_pause(void *impl, bool pause) {
        ((Fake *) impl)->paused = pause;
}
static void fake_close(void *impl) {
        ((Fake *) impl)->closed = true;
}
static const RemoteSocketOps fake_ops = { fake_open, fake_send, fake_pause, fake_close };

static void on_ready(Bridge *b, const char *uri, void *userdata) {
        Fake *f = userdata;
        unsigned port;
        (void) b;
        assert_int_equal(sscanf(uri, "tcp://127.0.0.1:%u", &port), 1);
        f->ready = true;
        f->ready_port = (uint16_t) port;
}
static void on_closed(Bridge *b, int error, const char *reason, void *userdata) {
        Fake *f = userdata;
        (void) b, (void) reason;
        f->closed_called = true;
        f->closed_error = error;
}

static void run_loop_usec(sd_event *e, unsigned iterations, uint64_t usec) {
        for (unsigned i = 0; i < iterations; i++)
                assert_true(sd_event_run(e, usec) >= 0);
}
static void run_loop(sd_event *e, unsigned iterations) {
        run_loop_usec(e, iterations, 20 * 1000);
}

static int connect_to(uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        if (connect(fd, (struct sockaddr *) &a, sizeof a) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        return fd;
}

typedef struct Setup {
        sd_event *e;
        Bridge *b;
        Fake f;
        int client;
} Setup;

/* A running bridge with our own client connected. */
static void setup_running(Setup *s) {
        static const BridgeCallbacks cb = { on_ready, on_closed };
        memset(s, 0, sizeof *s);
        s->f.sent = malloc(1 << 20);
        assert_int_equal(sd_event_new(&s->e), 0);
        assert_int_equal(bridge_new(s->e, &fake_ops, &s->f, &cb, &s->f, &s->b), 0);
        assert_int_equal(bridge_start(s->b, "mqtt.example", 8883), 0);
        assert_true(s->f.opened);
        assert_string_equal(s->f.host, "mqtt.example");
        assert_int_equal(s->f.port, 8883);
        assert_int_equal(bridge_get_state(s->b), BRIDGE_OPENING);
        assert_false(s->f.ready);
        bridge_remote_connected(s->b);
        assert_true(s->f.ready);
        assert_int_equal(s->f.ready_port, bridge_listen_port(s->b));
        s->client = connect_to(s->f.ready_port);
        assert_true(s->client >= 0);
        run_loop(s->e, 3);
        assert_int_equal(bridge_get_state(s->b), BRIDGE_RUNNING);
}

static void teardown(Setup *s) {
        s->b = bridge_free(s->b);
        if (s->client >= 0)
                close(s->client);
        sd_event_unref(s->e);
        free(s->f.sent);
}

static void test_only_own_process(void **state) {
        static const BridgeCallbacks cb = { on_ready, on_closed };
        Fake f = { 0 };
        sd_event *e = NULL;
        Bridge *b = NULL;
        pid_t pid;
        int status = 0, fd, r = 0;
        (void) state;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(bridge_new(e, &fake_ops, &f, &cb, &f, &b), 0);
        assert_int_equal(bridge_start(b, "h", 1), 0);
        bridge_remote_connected(b);
        assert_int_equal(bridge_get_state(b), BRIDGE_LISTENING);

        /* Another process connects first: refused (closed at once), the bridge keeps listening. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char c;
                int cfd = connect_to(f.ready_port);
                if (cfd < 0)
                        _exit(2);
                /* EOF: the bridge closed the connection on us. */
                _exit(read(cfd, &c, 1) == 0 ? 0 : 1);
        }
        for (int i = 0; i < 200 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++)
                run_loop(e, 1);
        assert_int_equal(r, pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(bridge_refused_connections(b), 1);
        assert_int_equal(bridge_get_state(b), BRIDGE_LISTENING);

        /* Our own connection is taken, and the listener is gone right after. */
        fd = connect_to(f.ready_port);
        assert_true(fd >= 0);
        run_loop(e, 3);
        assert_int_equal(bridge_get_state(b), BRIDGE_RUNNING);
        r = connect_to(f.ready_port);
        assert_int_equal(r, -ECONNREFUSED);
        close(fd);
        run_loop(e, 3);
        assert_true(f.closed_called);
        assert_int_equal(f.closed_error, 0);
        assert_true(f.closed);
        assert_int_equal(bridge_get_state(b), BRIDGE_CLOSED);
        b = bridge_free(b);
        sd_event_unref(e);
}

/* Paho -> remote: the bridge reads only what the remote takes. */
static void test_upstream_backpressure(void **state) {
        Setup s;
        uint8_t buf[40000];
        (void) state;

        setup_running(&s);
        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t) (i * 7 + i / 251);
        assert_int_equal(write(s.client, buf, sizeof buf), (ssize_t) sizeof buf);
        s.f.budget = 1000;
        run_loop(s.e, 5);
        assert_int_equal(s.f.sent_len, 1000);
        /* Blocked: nothing more is taken until the remote says it is writable. */
        run_loop(s.e, 5);
        assert_int_equal(s.f.sent_len, 1000);
        while (s.f.sent_len < sizeof buf) {
                size_t before = s.f.sent_len;
                s.f.budget = 3000;
                bridge_remote_writable(s.b);
                run_loop(s.e, 3);
                assert_true(s.f.sent_len > before);
        }
        assert_memory_equal(s.f.sent, buf, sizeof buf);
        teardown(&s);
}

/* Paho -> remote: what Paho writes while the remote is busy goes out in one send() once it is writable. */
static void test_upstream_coalesces(void **state) {
        Setup s;
        uint8_t pkt[533], all[10 * sizeof pkt];
        (void) state;

        setup_running(&s);
        /* A first packet is taken at once; the remote is busy with it afterwards. */
        s.f.budget = sizeof pkt;
        memset(pkt, 0xA0, sizeof pkt);
        assert_int_equal(write(s.client, pkt, sizeof pkt), (ssize_t) sizeof pkt);
        run_loop(s.e, 3);
        assert_int_equal(s.f.sends, 1);
        assert_int_equal(s.f.sent_len, sizeof pkt);

        /* Ten more, written one by one with the loop running in between, as Paho does. */
        for (size_t i = 0; i < 10; i++) {
                memset(pkt, (int) i, sizeof pkt);
                memcpy(all + i * sizeof pkt, pkt, sizeof pkt);
                assert_int_equal(write(s.client, pkt, sizeof pkt), (ssize_t) sizeof pkt);
                run_loop_usec(s.e, 2, 1000);
        }
        assert_int_equal(s.f.sends, 1);

        /* Writable again: all ten in a single send(), in order. */
        s.f.budget = 1 << 20;
        bridge_remote_writable(s.b);
        assert_int_equal(s.f.sends, 2);
        assert_int_equal(s.f.last_send, sizeof all);
        assert_int_equal(s.f.sent_len, sizeof pkt + sizeof all);
        assert_memory_equal(s.f.sent + sizeof pkt, all, sizeof all);

        /* Paho wrote while the loop was elsewhere: read in the writable upcall, not one iteration later. */
        s.f.budget = 0;
        run_loop(s.e, 1);
        memset(pkt, 0x5A, sizeof pkt);
        assert_int_equal(write(s.client, pkt, sizeof pkt), (ssize_t) sizeof pkt);
        usleep(10 * 1000);
        s.f.budget = 1 << 20;
        bridge_remote_writable(s.b);
        assert_int_equal(s.f.sends, 3);
        assert_int_equal(s.f.last_send, sizeof pkt);
        assert_memory_equal(s.f.sent + s.f.sent_len - sizeof pkt, pkt, sizeof pkt);
        teardown(&s);
}

/* The up buffer bounds the read-ahead: with the remote blocked, at most BRIDGE_UP_BUFFER bytes are taken. */
static void test_upstream_read_ahead_bounded(void **state) {
        Setup s;
        static uint8_t buf[3 * BRIDGE_UP_BUFFER];
        size_t total;
        (void) state;

        setup_running(&s);
        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t) (i % 241);
        assert_int_equal(write(s.client, buf, sizeof buf), (ssize_t) sizeof buf);
        run_loop(s.e, 5);
        assert_int_equal(s.f.sent_len, 0);
        /* The bridge holds at most its buffer (the rest stays in the kernel, where Paho's socket feels it). */
        s.f.budget = sizeof buf;
        bridge_remote_writable(s.b);
        assert_int_equal(s.f.sends, 1);
        assert_int_equal(s.f.sent_len, BRIDGE_UP_BUFFER);
        total = s.f.sent_len;
        while (total < sizeof buf) {
                s.f.budget = 4096;
                bridge_remote_writable(s.b);
                run_loop_usec(s.e, 2, 1000);
                assert_true(s.f.sent_len > total);
                assert_true(s.f.last_send <= 4096);
                total = s.f.sent_len;
        }
        assert_memory_equal(s.f.sent, buf, sizeof buf);
        teardown(&s);
}

/* remote -> Paho: several deliveries in a row leave in one write, on the next loop iteration. */
static void test_downstream_batches(void **state) {
        Setup s;
        uint8_t got[64];
        ssize_t n;
        (void) state;

        setup_running(&s);
        for (int i = 0; i < 10; i++) {
                const uint8_t puback[4] = { 0x40, 0x02, 0x00, (uint8_t) i };
                assert_int_equal(bridge_remote_recv(s.b, puback, sizeof puback), 0);
        }
        /* Nothing written yet ... */
        n = recv(s.client, got, sizeof got, MSG_DONTWAIT);
        assert_int_equal(n, -1);
        assert_int_equal(errno, EAGAIN);
        /* ... and all of it after one iteration: a single segment on loopback. */
        run_loop(s.e, 1);
        n = recv(s.client, got, sizeof got, MSG_DONTWAIT);
        assert_int_equal(n, 40);
        for (int i = 0; i < 10; i++) {
                assert_int_equal(got[i * 4], 0x40);
                assert_int_equal(got[i * 4 + 3], i);
        }
        teardown(&s);
}

/* remote -> Paho: the remote is paused above the high-water mark and resumed once drained. */
static void test_downstream_backpressure(void **state) {
        Setup s;
        uint8_t chunk[2048], *got;
        size_t pushed = 0, got_len = 0;
        (void) state;

        setup_running(&s);
        /* The kernel's loopback buffers take megabytes before a write would block. */
        got = malloc(64 << 20);
        while (!s.f.paused && pushed < (64 << 20)) {
                for (size_t i = 0; i < sizeof chunk; i++)
                        chunk[i] = (uint8_t) ((pushed + i) % 253);
                assert_int_equal(bridge_remote_recv(s.b, chunk, sizeof chunk), 0);
                pushed += sizeof chunk;
        }
        assert_true(s.f.paused);
        /* The client reads everything, in order; the remote is resumed. */
        while (got_len < pushed) {
                ssize_t n;
                run_loop_usec(s.e, 1, 1000);
                while ((n = recv(s.client, got + got_len, pushed - got_len, MSG_DONTWAIT)) > 0)
                        got_len += (size_t) n;
        }
        run_loop(s.e, 2);
        assert_false(s.f.paused);
        for (size_t i = 0; i < pushed; i++)
                if (got[i] != (uint8_t) (i % 253))
                        fail_msg("byte %zu differs", i);
        free(got);
        teardown(&s);
}

/* A remote that ignores the pause overruns the cap: refused, and everything closes. */
static void test_downstream_cap(void **state) {
        Setup s;
        uint8_t chunk[4096] = { 0 };
        int r = 0;
        static char sink[65536];
        (void) state;

        setup_running(&s);
        for (int i = 0; i < 20000 && r == 0; i++)
                r = bridge_remote_recv(s.b, chunk, sizeof chunk);
        assert_int_equal(r, -ENOBUFS);
        assert_true(s.f.closed_called);
        assert_int_equal(s.f.closed_error, -ENOBUFS);
        assert_true(s.f.closed);
        assert_int_equal(bridge_get_state(s.b), BRIDGE_CLOSED);
        /* The client sees the end (after what was buffered in the kernel). */
        while ((r = (int) read(s.client, sink, sizeof sink)) > 0)
                ;
        assert_int_equal(r, 0);
        teardown(&s);
}

static void test_remote_closes(void **state) {
        Setup s;
        char c;
        (void) state;

        setup_running(&s);
        assert_int_equal(bridge_remote_recv(s.b, (const uint8_t *) "hi", 2), 0);
        bridge_remote_closed(s.b, -ECONNRESET);
        assert_true(s.f.closed_called);
        assert_int_equal(s.f.closed_error, -ECONNRESET);
        assert_false(s.f.closed); /* gone already: not closed again */
        assert_int_equal(read(s.client, &c, 1), 1);
        assert_int_equal(c, 'h');
        assert_int_equal(read(s.client, &c, 1), 1);
        assert_int_equal(read(s.client, &c, 1), 0);
        /* Stopping again is harmless. */
        bridge_stop(s.b);
        bridge_stop(s.b);
        teardown(&s);
}

static void test_proc_net_tcp(void **state) {
        static const char text[] =
                "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
                "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n"
                "   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 20 4 30 10 -1\n"
                "   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0 20 4 30 10 -1\n";
        uint32_t lo = htonl(INADDR_LOOPBACK);
        uint64_t inode = 0;
        (void) state;

        assert_int_equal(proc_net_tcp_find_inode(text, sizeof text - 1, lo, 0xC350, lo, 0x1F90, &inode), 0);
        assert_int_equal(inode, 2222);
        assert_int_equal(proc_net_tcp_find_inode(text, sizeof text - 1, lo, 0x1F90, lo, 0xC350, &inode), 0);
        assert_int_equal(inode, 3333);
        assert_int_equal(proc_net_tcp_find_inode(text, sizeof text - 1, lo, 0xC351, lo, 0x1F90, &inode), -ENOENT);
        /* Cut in the middle of a line. */
        assert_int_equal(proc_net_tcp_find_inode(text, 130, lo, 0xC350, lo, 0x1F90, &inode), -EBADMSG);
        assert_int_equal(proc_net_tcp_find_inode("", 0, lo, 1, lo, 2, &inode), -ENOENT);
        assert_int_equal(proc_net_tcp_find_inode("header only", 11, lo, 1, lo, 2, &inode), -EBADMSG);
        /* A socket of this process is found, one that does not exist is not. */
        {
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                struct stat st;
                assert_true(fd >= 0);
                assert_int_equal(fstat(fd, &st), 0);
                assert_int_equal(process_has_socket_inode((uint64_t) st.st_ino), 1);
                close(fd);
                assert_int_equal(process_has_socket_inode((uint64_t) st.st_ino), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_proc_net_tcp),
                cmocka_unit_test(test_only_own_process),
                cmocka_unit_test(test_upstream_backpressure),
                cmocka_unit_test(test_upstream_coalesces),
                cmocka_unit_test(test_upstream_read_ahead_bounded),
                cmocka_unit_test(test_downstream_batches),
                cmocka_unit_test(test_downstream_backpressure),
                cmocka_unit_test(test_downstream_cap),
                cmocka_unit_test(test_remote_closes),
        };
        log_set_max_level(LOG_CRIT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
