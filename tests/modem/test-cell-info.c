/* SPDX-License-Identifier: MIT */
/* %XMONITOR and %NCELLMEAS lines in the formats of the nRF91 AT Commands reference. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cell-info.h"

#define P(s) s, strlen(s)

static void test_xmonitor(void **state) {
        CellMonitor m;
        (void) state;

        /* The reference's example, with the eDRX and PSM timers of mfw 1.3.x. */
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 1,\"EDAV\",\"EDAV\",\"26295\",\"00B7\",7,4,\"00011B07\",7,2300,"
                                               "63,39,\"\",\"11100000\",\"00010011\",\"01001001\""),
                                             &m),
                         0);
        assert_true(m.registered);
        assert_int_equal(m.reg_status, 1);
        assert_int_equal(m.id.mcc, 262);
        assert_int_equal(m.id.mnc, 95);
        assert_int_equal(m.id.tac, 0xB7);
        assert_int_equal(m.id.eci, 0x11B07);
        assert_int_equal(m.act, 7);
        assert_int_equal(m.band, 4);
        assert_int_equal(m.pci, 7);
        assert_int_equal(m.earfcn, 2300);
        assert_int_equal(m.rsrp, 63);
        assert_int_equal(cell_rsrp_to_dbm(m.rsrp), -78);
        assert_int_equal(m.snr, 39);

        /* Roaming, three-digit MNC, no timers. */
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 5,\"\",\"\",\"310410\",\"ffff\",9,12,\"0FFFFFFF\",503,5110,255,127"),
                                             &m),
                         0);
        assert_int_equal(m.id.mcc, 310);
        assert_int_equal(m.id.mnc, 410);
        assert_int_equal(m.id.eci, 0x0FFFFFFF);

        /* Not registered: the status alone. */
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 2"), &m), 0);
        assert_false(m.registered);
        assert_int_equal(m.reg_status, 2);

        assert_int_equal(cell_parse_xmonitor(P("%NCELLMEAS: 1"), &m), -ENOMSG);
        /* A cell id over 28 bits, a bad PLMN, a cut line. */
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 1,\"A\",\"A\",\"26295\",\"00B7\",7,4,\"10000000\",7,2300,63,39"),
                                             &m),
                         -EBADMSG);
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 1,\"A\",\"A\",\"2629\",\"00B7\",7,4,\"00011B07\",7,2300,63,39"),
                                             &m),
                         -EBADMSG);
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 1,\"A\",\"A\",\"26295\",\"00B7\",7,4,\"00011B07\""), &m), -EBADMSG);
        assert_int_equal(cell_parse_xmonitor(P("%XMONITOR: 1,\"A\",\"A\",\"26295\",\"0G\",7,4,\"00011B07\",7,2300,63,39"), &m),
                         -EBADMSG);
}

static void test_ncellmeas(void **state) {
        CellMeasurement m;
        (void) state;

        /* mfw 1.3.1+: two neighbours and the timing advance measurement time last. */
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 0,\"00011B07\",\"26295\",\"00B7\",24,2300,7,63,31,150344527,"
                                                "2300,8,60,29,0,2400,11,55,26,184,150344527"),
                                              &m),
                         0);
        assert_int_equal(m.status, 0);
        assert_true(m.has_serving);
        assert_int_equal(m.id.eci, 0x11B07);
        assert_int_equal(m.id.mcc, 262);
        assert_int_equal(m.id.mnc, 95);
        assert_int_equal(m.id.tac, 0xB7);
        assert_int_equal(m.timing_advance, 24);
        assert_int_equal(m.earfcn, 2300);
        assert_int_equal(m.pci, 7);
        assert_int_equal(m.rsrp, 63);
        assert_int_equal(m.rsrq, 31);
        assert_true(cell_rsrq_to_db(m.rsrq) == -4.0);
        assert_int_equal(m.measurement_time, 150344527);
        assert_int_equal(m.n_neighbours, 2);
        assert_int_equal(m.neighbours[0].earfcn, 2300);
        assert_int_equal(m.neighbours[0].pci, 8);
        assert_int_equal(m.neighbours[0].rsrp, 60);
        assert_int_equal(m.neighbours[0].rsrq, 29);
        assert_int_equal(m.neighbours[1].earfcn, 2400);
        assert_int_equal(m.neighbours[1].time_diff, 184);

        /* Older modem firmware: no timing advance time; no neighbours. */
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 0,\"00011B07\",\"26295\",\"00B7\",65535,2300,7,63,31,1000"), &m), 0);
        assert_int_equal(m.n_neighbours, 0);
        assert_int_equal(m.timing_advance, CELL_TA_UNKNOWN);

        /* Failed and interrupted measurements. */
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 1"), &m), 0);
        assert_int_equal(m.status, 1);
        assert_false(m.has_serving);
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS:2"), &m), 0);
        assert_int_equal(m.status, 2);

        /* Garbled: a neighbour cut short, a status out of range, a PCI over 503. */
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 0,\"00011B07\",\"26295\",\"00B7\",24,2300,7,63,31,1,2300,8,60"), &m),
                         -EBADMSG);
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 3"), &m), -EBADMSG);
        assert_int_equal(cell_parse_ncellmeas(P("%NCELLMEAS: 0,\"00011B07\",\"26295\",\"00B7\",24,2300,504,63,31,1"), &m),
                         -EBADMSG);
        assert_int_equal(cell_parse_ncellmeas(P("%XMONITOR: 0"), &m), -ENOMSG);
}

static void test_ncellmeas_limit(void **state) {
        char line[1024] = "%NCELLMEAS: 0,\"00011B07\",\"26295\",\"00B7\",24,2300,7,63,31,1";
        CellMeasurement m;
        (void) state;

        for (int i = 0; i < 17; i++)
                strcat(line, ",2300,8,60,29,0");
        assert_int_equal(cell_parse_ncellmeas(line, strlen(line), &m), 0);
        assert_int_equal(m.n_neighbours, 17);
        strcat(line, ",99");
        assert_int_equal(cell_parse_ncellmeas(line, strlen(line), &m), 0);
        strcat(line, ",2300,8,60,29");
        assert_int_equal(cell_parse_ncellmeas(line, strlen(line), &m), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_xmonitor),
                cmocka_unit_test(test_ncellmeas),
                cmocka_unit_test(test_ncellmeas_limit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
