/* SPDX-License-Identifier: MIT */
/*
 * The modem-mode bridge with real loopback sockets and a scripted remote:
 * only this process may connect, the listener goes after one connection,
 * bytes flow both ways in order with backpressure, and a close on either
 * side closes both.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "bridge.h"
#include "log.h"
#include "util.h"

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

/* The sock_diag lookup finds exactly the socket of a 4-tuple, and its owner. */
static void test_sock_diag(void **state) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        struct stat st;
        uint64_t inode = 0;
        uint32_t uid = 1, lo = htonl(INADDR_LOOPBACK);
        uint16_t lport, cport;
        int l, c, srv;
        (void) state;

        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = lo };
        assert_int_equal(bind(l, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(l, 1), 0);
        assert_int_equal(getsockname(l, (struct sockaddr *) &a, &al), 0);
        lport = ntohs(a.sin_port);
        c = connect_to(lport);
        assert_true(c >= 0);
        srv = accept(l, NULL, NULL);
        assert_true(srv >= 0);
        al = sizeof a;
        assert_int_equal(getsockname(c, (struct sockaddr *) &a, &al), 0);
        cport = ntohs(a.sin_port);

        /* The client's socket, seen from its side, then the server's. */
        assert_int_equal(sock_diag_lookup_tcp4(lo, cport, lo, lport, &inode, &uid), 0);
        assert_int_equal(fstat(c, &st), 0);
        assert_int_equal(inode, (uint64_t) st.st_ino);
        assert_int_equal(uid, geteuid());
        assert_int_equal(process_has_socket_inode(inode), 1);
        assert_int_equal(sock_diag_lookup_tcp4(lo, lport, lo, cport, &inode, &uid), 0);
        assert_int_equal(fstat(srv, &st), 0);
        assert_int_equal(inode, (uint64_t) st.st_ino);
        /* Nothing with that 4-tuple. */
        assert_int_equal(sock_diag_lookup_tcp4(lo, cport, lo, (uint16_t) (lport + 1), &inode, &uid), -ENOENT);
        close(srv);
        close(c);
        close(l);
        /* A socket that is gone is not ours any more. */
        assert_int_equal(process_has_socket_inode((uint64_t) st.st_ino), 0);
}

/* The reply parser: only the answer to our request about exactly that socket. */
static void test_sock_diag_parse(void **state) {
        struct {
                struct nlmsghdr h;
                struct inet_diag_msg m;
        } ok = {
                .h = { .nlmsg_len = sizeof ok, .nlmsg_type = SOCK_DIAG_BY_FAMILY, .nlmsg_seq = 7 },
                .m = { .idiag_family = AF_INET,
                       .id = { .idiag_sport = htons(50000),
                               .idiag_dport = htons(8080),
                               .idiag_src = { htonl(0x7F000001) },
                               .idiag_dst = { htonl(0x7F000001) } },
                       .idiag_uid = 1000,
                       .idiag_inode = 4242 },
        }, bad;
        struct {
                struct nlmsghdr h;
                struct nlmsgerr e;
        } err = { .h = { .nlmsg_len = sizeof err, .nlmsg_type = NLMSG_ERROR, .nlmsg_seq = 7 },
                  .e = { .error = -ENOENT } };
        uint32_t lo = htonl(0x7F000001), uid = 0;
        uint64_t inode = 0;
        (void) state;

#define PARSE(x, n) sock_diag_parse_tcp4((const uint8_t *) &(x), (n), 7, lo, 50000, lo, 8080, &inode, &uid)
        assert_int_equal(PARSE(ok, sizeof ok), 0);
        assert_int_equal(inode, 4242);
        assert_int_equal(uid, 1000);
        assert_int_equal(PARSE(err, sizeof err), -ENOENT);
        assert_int_equal(PARSE(ok, sizeof ok - 1), -EBADMSG);
        assert_int_equal(PARSE(ok, 3), -EBADMSG);
        assert_int_equal(PARSE(err, sizeof err - 1), -EBADMSG);
        bad = ok;
        bad.h.nlmsg_seq = 8;
        assert_int_equal(PARSE(bad, sizeof bad), -EPROTO);
        bad = ok;
        bad.m.id.idiag_sport = htons(50001);
        assert_int_equal(PARSE(bad, sizeof bad), -EPROTO);
        bad = ok;
        bad.m.id.idiag_dst[0] = htonl(0x7F000002);
        assert_int_equal(PARSE(bad, sizeof bad), -EPROTO);
        bad = ok;
        bad.m.idiag_family = AF_INET6;
        assert_int_equal(PARSE(bad, sizeof bad), -EPROTO);
        bad = ok;
        bad.h.nlmsg_type = NLMSG_DONE;
        assert_int_equal(PARSE(bad, sizeof bad), -EPROTO);
        err.e.error = 5;
        assert_int_equal(PARSE(err, sizeof err), -EPROTO);
#undef PARSE
}

/*
 * Tests that set up namespaces run in a child process: its checks report
 * the failing line on stderr and exit, never into cmocka.
 */
#define CHECK(x)                                                                        \
        do {                                                                            \
                if (!(x)) {                                                             \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
                        _exit(1);                                                       \
                }                                                                       \
        } while (0)

static int raw_connect(uint16_t port) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof a) < 0)
                return -1;
        return fd;
}

/* In the child: another process (as foreign_uid) is refused, our own connection is taken within 1 s. */
static void child_bridge_flow(uid_t foreign_uid) {
        static const BridgeCallbacks cb = { on_ready, on_closed };
        Fake f = { 0 };
        sd_event *e = NULL;
        Bridge *b = NULL;
        uint64_t t0;
        pid_t pid;
        int status = 0, fd, r = 0;

        CHECK(sd_event_new(&e) >= 0);
        CHECK(bridge_new(e, &fake_ops, &f, &cb, &f, &b) == 0);
        CHECK(bridge_start(b, "h", 1) == 0);
        bridge_remote_connected(b);
        CHECK(bridge_get_state(b) == BRIDGE_LISTENING);

        pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
                char c;
                int cfd;
                if (foreign_uid != geteuid() && setresuid(foreign_uid, foreign_uid, foreign_uid) < 0)
                        _exit(3);
                cfd = raw_connect(f.ready_port);
                _exit(cfd < 0 ? 2 : read(cfd, &c, 1) == 0 ? 0 : 1);
        }
        for (int i = 0; i < 200 && (r = waitpid(pid, &status, WNOHANG)) == 0; i++)
                CHECK(sd_event_run(e, 20 * 1000) >= 0);
        CHECK(r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(bridge_refused_connections(b) == 1);
        CHECK(bridge_get_state(b) == BRIDGE_LISTENING);

        t0 = now_usec(CLOCK_MONOTONIC);
        fd = raw_connect(f.ready_port);
        CHECK(fd >= 0);
        for (int i = 0; i < 50 && bridge_get_state(b) != BRIDGE_RUNNING; i++)
                CHECK(sd_event_run(e, 20 * 1000) >= 0);
        CHECK(bridge_get_state(b) == BRIDGE_RUNNING);
        CHECK(now_usec(CLOCK_MONOTONIC) - t0 < 1000000);
        CHECK(bridge_refused_connections(b) == 1);
        close(fd);
        bridge_free(b);
        sd_event_unref(e);
}

static void run_in_child(void (*fn)(void)) {
        int status = 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                fn();
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void child_other_user(void) {
        child_bridge_flow(65534);
}

/* Another user (nobody) connects first: refused as well. */
static void test_other_user(void **state) {
        (void) state;
        if (geteuid() != 0)
                skip();
        run_in_child(child_other_user);
}

static void child_proc_subset_pid(void) {
        CHECK(unshare(CLONE_NEWNS) == 0);
        CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
        CHECK(mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") == 0);
        /* What systemd's ProcSubset=pid gives the service: no /proc/net. */
        CHECK(access("/proc/net/tcp", F_OK) < 0);
        CHECK(access("/proc/self/fd", F_OK) == 0);
        child_bridge_flow(geteuid());
}

/* Issue 13: with ProcSubset=pid the daemon refused its own connection forever. */
static void test_proc_subset_pid(void **state) {
        (void) state;
        if (geteuid() != 0)
                skip();
        run_in_child(child_proc_subset_pid);
}

/* The large-table case: connections held by other processes, each within the usual 20 000 files. */
#define LARGE_TABLE_HOLDERS 7u
#define LARGE_TABLE_PER_HOLDER 9000u

/* A holder: LARGE_TABLE_PER_HOLDER loopback connections, both ends held, as another user (nobody), as
 * in the report; writes one byte when done. */
static void hold_connections(int ready_fd) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        int l;

        CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0);
        /* Gone with the test's child, whatever check stops it (after setresuid(), which clears it). */
        CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (getppid() == 1)
                _exit(1);
        CHECK(l >= 0);
        CHECK(bind(l, (struct sockaddr *) &a, sizeof a) == 0);
        CHECK(listen(l, 128) == 0);
        CHECK(getsockname(l, (struct sockaddr *) &a, &al) == 0);
        for (unsigned i = 0; i < LARGE_TABLE_PER_HOLDER; i++) {
                CHECK(raw_connect(ntohs(a.sin_port)) >= 0);
                CHECK(accept4(l, NULL, NULL, SOCK_CLOEXEC) >= 0);
        }
        CHECK(write(ready_fd, "x", 1) == 1);
        for (;;)
                pause();
}

static void child_large_table(void) {
        struct ifreq ifr = { .ifr_name = "lo" };
        uint64_t t0 = now_usec(CLOCK_MONOTONIC), table = 0;
        pid_t holders[LARGE_TABLE_HOLDERS];
        int p[2], s, fd, status;
        char buf[65536], c;
        ssize_t n;

        /* A network namespace of its own: the table holds this test's sockets only. */
        CHECK(unshare(CLONE_NEWNET) == 0);
        s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHECK(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0);
        ifr.ifr_flags |= IFF_UP;
        CHECK(ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
        close(s);

        CHECK(pipe2(p, O_CLOEXEC) == 0);
        for (unsigned i = 0; i < LARGE_TABLE_HOLDERS; i++) {
                holders[i] = fork();
                CHECK(holders[i] >= 0);
                if (holders[i] == 0) {
                        close(p[0]);
                        hold_connections(p[1]);
                }
        }
        close(p[1]);
        for (unsigned i = 0; i < LARGE_TABLE_HOLDERS; i++)
                CHECK(read(p[0], &c, 1) == 1);
        /* Bounded: the whole set-up within 60 s. */
        CHECK(now_usec(CLOCK_MONOTONIC) - t0 < 60 * 1000000ull);

        /* The table the old check read is past its 16 MiB cap now. */
        fd = open("/proc/net/tcp", O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        while ((n = read(fd, buf, sizeof buf)) > 0)
                table += (uint64_t) n;
        close(fd);
        CHECK(table > 16u * 1024u * 1024u);

        child_bridge_flow(geteuid());
        for (unsigned i = 0; i < LARGE_TABLE_HOLDERS; i++) {
                CHECK(kill(holders[i], SIGKILL) == 0);
                CHECK(waitpid(holders[i], &status, 0) == holders[i]);
        }
}

/* Issue 13: another user's processes holding ~60 000 loopback connections (here 63 000, 126 000
 * sockets) made the table read too large, and the daemon refused its own connection forever. */
static void test_large_table(void **state) {
        (void) state;
        if (geteuid() != 0)
                skip();
        run_in_child(child_large_table);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sock_diag),
                cmocka_unit_test(test_sock_diag_parse),
                cmocka_unit_test(test_only_own_process),
                cmocka_unit_test(test_other_user),
                cmocka_unit_test(test_proc_subset_pid),
                cmocka_unit_test(test_large_table),
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
