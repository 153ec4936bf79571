/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A scripted port for driving the core in unit tests and fuzzers: output is
 * captured, time is fake, the modem and the network do what a test says.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nrf91.h"

#define FAKE_OUT_MAX (1u << 20)

struct fake_port {
        struct nrf91_core core;

        /* Serial output and the flags of its last write. */
        uint8_t out[FAKE_OUT_MAX];
        size_t out_len;
        unsigned finals; /* writes flagged NRF91_OUT_FINAL */

        uint64_t now_ms;

        /* Modem: the last command as received, and URCs to emit during the next call. */
        char modem_cmd[8192];
        size_t modem_cmd_len;
        unsigned modem_calls;
        const char *modem_urc_during; /* emitted from inside modem_at() */

        /* Sockets. */
        int connect_result;  /* returned by sock_connect (-NRF91_EINPROGRESS: async) */
        int send_result;     /* 0: all bytes sent; else returned as is */
        bool sock_open[NRF91_MAX_SOCKETS];
        bool recv_enabled[NRF91_MAX_SOCKETS];
        char hostname[NRF91_MAX_SOCKETS][NRF91_HOSTNAME_MAX + 1];
        uint8_t sent[16384];
        size_t sent_len;

        /* Downloads. */
        int download_result;
        int last_download_id;
        char last_url[NRF91_URL_MAX + 1];
        uint32_t last_offset;
        unsigned cancels;
        int last_cancel_id;

        /*
         * FOTA image store, with MCUboot's test/confirm/revert: a reset
         * keeps a partial image, boots a scheduled application as a test
         * image and reverts a test image that was not confirmed.
         */
        unsigned fota_ops; /* NRF91_FOTA_OP_* (application and modem delta by default) */
        enum nrf91_image_type fota_type;
        char fota_url[NRF91_URL_MAX + 1];
        uint32_t fota_total;
        uint8_t fota_image[65536];
        size_t fota_len;
        bool fota_writing, fota_finished, fota_aborted;
        struct nrf91_fota_store store;
        struct nrf91_fota_result boot_result;

        unsigned resets, modem_resets;
};

extern const struct nrf91_port fake_port_ops;

/* Initialises and boots the core; the output is cleared after "Ready". */
void fake_port_start(struct fake_port *p);
void fake_port_clear(struct fake_port *p);
/* Feeds everything (the core must not stay BUSY). */
void fake_port_input(struct fake_port *p, const void *data, size_t len);
void fake_port_input_str(struct fake_port *p, const char *s);
/* Output as a NUL-terminated string (binary zeros stay in place). */
const char *fake_port_output(struct fake_port *p);
