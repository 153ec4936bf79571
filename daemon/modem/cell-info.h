/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Pure parsers of the nRF91's LTE cell reports (nRF91 AT Commands reference,
 * "Modem monitor %XMONITOR" and "Neighboring cell measurement %NCELLMEAS";
 * field order as Nordic's lte_link_control reads them, docs/location.md):
 *
 *   %XMONITOR: <reg_status>[,<full_name>,<short_name>,<plmn>,<tac>,<AcT>,<band>,
 *              <cell_id>,<phys_cell_id>,<EARFCN>,<rsrp>,<snr>,<eDRX>,<Active-Time>,
 *              <Periodic-TAU-ext>,<Periodic-TAU>]
 *   %NCELLMEAS: <status>[,<cell_id>,<plmn>,<tac>,<timing_advance>,<earfcn>,
 *              <phys_cell_id>,<rsrp>,<rsrq>,<measurement_time>,
 *              [<n_earfcn>,<n_phys_cell_id>,<n_rsrp>,<n_rsrq>,<time_diff>]...
 *              [,<timing_advance_measurement_time>]]
 *
 * No loop, no allocation, no logging.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CELL_NEIGHBOURS_MAX 17u       /* the most %NCELLMEAS reports */
#define CELL_RSRP_UNKNOWN 255
#define CELL_RSRQ_UNKNOWN 255
#define CELL_TA_UNKNOWN 65535         /* the modem's "not valid" timing advance */
#define CELL_ECI_MAX 0x0fffffffu      /* 28 bits (3GPP TS 36.413 §9.2.1.38) */

/* A serving cell, as both reports name it. */
typedef struct CellId {
        uint16_t mcc;
        uint16_t mnc;
        uint32_t tac;
        uint32_t eci; /* E-UTRAN cell id */
} CellId;

typedef struct CellMonitor {
        unsigned reg_status;  /* +CEREG's <stat> */
        bool registered;      /* the cell fields below are present */
        CellId id;
        unsigned act;         /* 7 LTE-M, 9 NB-IoT */
        unsigned band;
        uint32_t pci;
        uint32_t earfcn;
        int rsrp;             /* index, CELL_RSRP_UNKNOWN if not known */
        int snr;              /* index (dB = index - 24), 127 if not known */
} CellMonitor;

typedef struct CellNeighbour {
        uint32_t earfcn;
        uint32_t pci;
        int rsrp;             /* index */
        int rsrq;             /* index */
        uint32_t time_diff;   /* ms */
} CellNeighbour;

typedef struct CellMeasurement {
        unsigned status;      /* 0 ok, 1 failed, 2 incomplete */
        bool has_serving;     /* the serving cell fields are present */
        CellId id;
        uint32_t timing_advance; /* CELL_TA_UNKNOWN if not known */
        uint32_t earfcn;
        uint32_t pci;
        int rsrp;
        int rsrq;
        uint64_t measurement_time;
        CellNeighbour neighbours[CELL_NEIGHBOURS_MAX];
        size_t n_neighbours;
} CellMeasurement;

/* One "%XMONITOR: ..." line (without terminator).  0, -ENOMSG (another prefix) or -EBADMSG. */
int cell_parse_xmonitor(const char *line, size_t len, CellMonitor *ret);
/* One "%NCELLMEAS: ..." URC.  0, -ENOMSG (another prefix) or -EBADMSG. */
int cell_parse_ncellmeas(const char *line, size_t len, CellMeasurement *ret);

/* "26295" → 262, 95.  -EBADMSG unless 5 or 6 digits. */
int cell_parse_plmn(const char *s, size_t len, uint16_t *ret_mcc, uint16_t *ret_mnc);
bool cell_id_equal(const CellId *a, const CellId *b);

/* Index → dBm (3GPP TS 36.133 §9.1.4: index 0 is below -140 dBm, as nrf_modem_info maps it). */
int cell_rsrp_to_dbm(int index);
/* Index → dB (3GPP TS 36.133 §9.1.7: index 0 is below -19.5 dB), in half dB steps. */
double cell_rsrq_to_db(int index);
