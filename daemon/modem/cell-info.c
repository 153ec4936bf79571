/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "at-line.h"
#include "cell-info.h"
#include "util.h"

int cell_parse_plmn(const char *s, size_t len, uint16_t *ret_mcc, uint16_t *ret_mnc) {
        unsigned mcc = 0, mnc = 0;

        if (len != 5 && len != 6)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                if (i < 3)
                        mcc = mcc * 10 + (unsigned) (s[i] - '0');
                else
                        mnc = mnc * 10 + (unsigned) (s[i] - '0');
        }
        *ret_mcc = (uint16_t) mcc;
        *ret_mnc = (uint16_t) mnc;
        return 0;
}

/* A quoted hex field of 1..digits digits ("00B7", "00011B07") no greater than max. */
static int cursor_hex(AtCursor *c, size_t digits, uint32_t max, uint32_t *ret) {
        const char *s;
        size_t len;
        uint32_t v = 0;
        int r;

        r = at_cursor_string(c, &s, &len);
        if (r < 0)
                return r;
        if (len == 0 || len > digits)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                int d = unhexchar(s[i]);
                if (d < 0)
                        return -EBADMSG;
                v = v * 16 + (uint32_t) d;
        }
        if (v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int cursor_plmn(AtCursor *c, CellId *id) {
        const char *s;
        size_t len;
        int r;

        r = at_cursor_string(c, &s, &len);
        if (r < 0)
                return r;
        return cell_parse_plmn(s, len, &id->mcc, &id->mnc);
}

static int cursor_u32(AtCursor *c, uint32_t max, uint32_t *ret) {
        uint64_t v;
        int r = at_cursor_uint(c, max, &v);
        if (r < 0)
                return r;
        *ret = (uint32_t) v;
        return 0;
}

static int cursor_index(AtCursor *c, int max, int *ret) {
        uint64_t v;
        int r = at_cursor_uint(c, (uint64_t) max, &v);
        if (r < 0)
                return r;
        *ret = (int) v;
        return 0;
}

static int cursor_skip(AtCursor *c) {
        const char *s;
        size_t len;
        return at_cursor_string(c, &s, &len);
}

int cell_parse_xmonitor(const char *line, size_t len, CellMonitor *ret) {
        CellMonitor m = { .rsrp = CELL_RSRP_UNKNOWN, .snr = 127 };
        AtCursor c;
        uint32_t v;
        int r;

        r = at_cursor_init(&c, line, len, "%XMONITOR");
        if (r < 0)
                return r;
        if (cursor_u32(&c, 255, &v) < 0)
                return -EBADMSG;
        m.reg_status = v;
        if (at_cursor_at_end(&c)) {
                *ret = m;
                return 0;
        }
        /* <full_name>, <short_name>: free text, not needed. */
        if (cursor_skip(&c) < 0 || cursor_skip(&c) < 0 || cursor_plmn(&c, &m.id) < 0 ||
            cursor_hex(&c, 4, 0xffff, &m.id.tac) < 0 || cursor_u32(&c, 255, &v) < 0)
                return -EBADMSG;
        m.act = v;
        if (cursor_u32(&c, 255, &v) < 0 || cursor_hex(&c, 8, CELL_ECI_MAX, &m.id.eci) < 0 ||
            cursor_u32(&c, 503, &m.pci) < 0 || cursor_u32(&c, 262143, &m.earfcn) < 0 ||
            cursor_index(&c, 255, &m.rsrp) < 0 || cursor_index(&c, 255, &m.snr) < 0)
                return -EBADMSG;
        m.band = v;
        /* eDRX and PSM timers follow; newer modem firmware may add more. */
        m.registered = true;
        *ret = m;
        return 0;
}

int cell_parse_ncellmeas(const char *line, size_t len, CellMeasurement *ret) {
        CellMeasurement m = { .rsrp = CELL_RSRP_UNKNOWN, .rsrq = CELL_RSRQ_UNKNOWN, .timing_advance = CELL_TA_UNKNOWN };
        uint64_t rest[CELL_NEIGHBOURS_MAX * 5 + 1];
        size_t n = 0;
        AtCursor c;
        uint64_t v;
        int r;

        r = at_cursor_init(&c, line, len, "%NCELLMEAS");
        if (r < 0)
                return r;
        if (at_cursor_uint(&c, 2, &v) < 0)
                return -EBADMSG;
        m.status = (unsigned) v;
        if (at_cursor_at_end(&c)) {
                *ret = m;
                return 0;
        }
        if (cursor_hex(&c, 8, CELL_ECI_MAX, &m.id.eci) < 0 || cursor_plmn(&c, &m.id) < 0 ||
            cursor_hex(&c, 4, 0xffff, &m.id.tac) < 0 || cursor_u32(&c, CELL_TA_UNKNOWN, &m.timing_advance) < 0 ||
            cursor_u32(&c, 262143, &m.earfcn) < 0 || cursor_u32(&c, 503, &m.pci) < 0 ||
            cursor_index(&c, 255, &m.rsrp) < 0 || cursor_index(&c, 255, &m.rsrq) < 0 ||
            at_cursor_uint(&c, UINT64_MAX, &m.measurement_time) < 0)
                return -EBADMSG;
        m.has_serving = true;

        /* Then five numbers per neighbour, and (mfw 1.3.1 and later) one more at the end. */
        while (!at_cursor_at_end(&c)) {
                if (n >= sizeof rest / sizeof rest[0])
                        return -EBADMSG;
                if (at_cursor_uint(&c, UINT32_MAX, &rest[n]) < 0)
                        return -EBADMSG;
                n++;
        }
        if (n % 5 > 1)
                return -EBADMSG;
        m.n_neighbours = n / 5;
        for (size_t i = 0; i < m.n_neighbours; i++) {
                const uint64_t *f = &rest[i * 5];
                if (f[0] > 262143 || f[1] > 503 || f[2] > 255 || f[3] > 255)
                        return -EBADMSG;
                m.neighbours[i] = (CellNeighbour){
                        .earfcn = (uint32_t) f[0], .pci = (uint32_t) f[1], .rsrp = (int) f[2], .rsrq = (int) f[3],
                        .time_diff = (uint32_t) f[4],
                };
        }
        *ret = m;
        return 0;
}

bool cell_id_equal(const CellId *a, const CellId *b) {
        return a->mcc == b->mcc && a->mnc == b->mnc && a->tac == b->tac && a->eci == b->eci;
}

int cell_rsrp_to_dbm(int index) {
        return index - 141;
}

double cell_rsrq_to_db(int index) {
        return (index - 39) / 2.0;
}
