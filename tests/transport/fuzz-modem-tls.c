/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the modem TLS socket with arbitrary modem output: a connected socket
 * on the AT engine's fake loop gets the input in chunks, and between chunks
 * the "bridge" sends, pauses, resumes, lets time pass or reopens, as the
 * input's bytes choose.  The bridge upcalls only count.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fake-loop.h"
#include "log.h"
#include "modem-tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static Bridge *const BRIDGE = (Bridge *) 1;
static size_t received;

void bridge_remote_connected(Bridge *b) {
        (void) b;
}

int bridge_remote_recv(Bridge *b, const uint8_t *data, size_t len) {
        (void) b, (void) data;
        received += len;
        return 0;
}

void bridge_remote_writable(Bridge *b) {
        (void) b;
}

void bridge_remote_closed(Bridge *b, int error) {
        (void) b, (void) error;
}

static void feed_str(AtEngine *e, const char *s) {
        at_engine_feed(e, s, strlen(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const uint8_t payload[MODEM_TLS_SEND_MAX + 10];
        FakeLoop loop = { .deadline = UINT64_MAX };
        AtEngine *e = NULL;
        ModemTls *t = NULL;
        size_t i = 0;

        log_set_max_level(LOG_CRIT);
        if (at_engine_new(&fake_ops, &loop, &e) < 0)
                return 0;
        if (modem_tls_new(e, 16842753, &t) < 0) {
                at_engine_free(e);
                return 0;
        }
        /* Connected first, with the first-open sweep answered, so the input meets a live socket. */
        (void) modem_tls_ops.open(t, BRIDGE, "localhost", 8883);
        for (int h = 0; h < MODEM_TLS_SOCKETS_MAX; h++)
                feed_str(e, "\r\n+CME ERROR: 9\r\n");
        feed_str(e, "\r\n#XSSOCKET: 0,1,258\r\n\r\nOK\r\n\r\nOK\r\n\r\nOK\r\n\r\n#XCONNECT: 0,1\r\n\r\nOK\r\n");

        while (i < size) {
                uint8_t op = data[i++];
                size_t n = MIN((size_t) (op >> 3) + 1, size - i);

                loop.written_len = 0; /* what the socket wrote is not checked here */
                switch (op & 7) {
                case 0:
                        (void) modem_tls_ops.send(t, payload, (size_t) (op >> 3) * 200 + 1);
                        break;
                case 1:
                        modem_tls_ops.pause_recv(t, true);
                        break;
                case 2:
                        modem_tls_ops.pause_recv(t, false);
                        break;
                case 3:
                        fake_advance(&loop, e, 1000000);
                        break;
                case 4:
                        if (modem_tls_get_state(t) == MODEM_TLS_CLOSED)
                                (void) modem_tls_ops.open(t, BRIDGE, "localhost", 8883);
                        break;
                case 5:
                        if (op == 0xfd)
                                modem_tls_link_lost(t, -ECONNRESET);
                        break;
                default:
                        break;
                }
                at_engine_feed(e, data + i, n);
                i += n;
        }
        modem_tls_ops.close(t);
        modem_tls_free(t);
        at_engine_free(e);
        return 0;
}
