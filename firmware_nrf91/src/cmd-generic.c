/* SPDX-License-Identifier: MIT */
/* #XUUID, #XSMVER, #XRESET, #XMODEMRESET. */
#include "core-internal.h"

int cmd_xuuid(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        char uuid[NRF91_UUID_STR_LEN + 1], buf[64];
        struct fmt f;
        int r;

        (void) cmd, (void) args;
        r = c->port->device_uuid(c->ctx, uuid);
        if (r < 0)
                return r == -NRF91_EINVAL ? -NRF91_EIO : r;
        uuid[NRF91_UUID_STR_LEN] = '\0';
        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XUUID: ");
        fmt_str(&f, uuid);
        core_line(c, buf, f.len);
        return 0;
}

int cmd_xsmver(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        char app[NRF91_VERSION_MAX], sdk[NRF91_VERSION_MAX], buf[2 * NRF91_VERSION_MAX + 16];
        struct fmt f;
        int r;

        (void) cmd, (void) args;
        r = c->port->versions(c->ctx, app, sdk);
        if (r < 0)
                return r == -NRF91_EINVAL ? -NRF91_EIO : r;
        app[NRF91_VERSION_MAX - 1] = sdk[NRF91_VERSION_MAX - 1] = '\0';
        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XSMVER: \"");
        fmt_str(&f, app);
        fmt_str(&f, "\",\"");
        fmt_str(&f, sdk);
        fmt_str(&f, "\"");
        core_line(c, buf, f.len);
        return 0;
}

int cmd_xreset(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        (void) cmd, (void) args;
        /* OK first; the reset happens once the response is out (execute_line). */
        c->reset_requested = true;
        return 0;
}

int cmd_xmodemreset(struct nrf91_core *c, const struct at_cmd *cmd, const struct at_args *args) {
        struct nrf91_fota_result res = { .valid = false };
        char buf[32];
        struct fmt f;
        int r;

        (void) cmd, (void) args;
        /* The modem's sockets and transfers do not survive its restart. */
        sockets_drop_all(c, -NRF91_ENETDOWN);
        downloads_drop_all(c, -NRF91_ENETDOWN);

        r = c->port->modem_reset(c->ctx, &res);
        if (r >= 0)
                core_modem_setup(c);
        if (res.valid)
                fota_result_line(c, &res, false);
        fmt_init(&f, buf, sizeof buf);
        fmt_str(&f, "#XMODEMRESET: ");
        if (r < 0) {
                fmt_str(&f, "1,");
                fmt_int(&f, r);
        } else {
                fmt_str(&f, "0");
        }
        core_line(c, buf, f.len);
        return 0;
}
