/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

#include "bridge.h"

/* A real OpenSSL client socket standing in for the nRF91's TLS socket in tests. */
typedef struct TlsRemote TlsRemote;

extern const RemoteSocketOps tls_remote_ops;

int tls_remote_new(sd_event *event, const char *ca, const char *cert, const char *key, TlsRemote **ret);
TlsRemote *tls_remote_free(TlsRemote *t);
