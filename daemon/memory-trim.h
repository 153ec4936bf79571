/* SPDX-License-Identifier: MIT */
#pragma once

#include <systemd/sd-event.h>

/*
 * Gives the heap that a burst of work freed back to the system, once the
 * burst is over.  glibc returns freed memory by itself only from the top of
 * the heap, and a single block still in use above it keeps everything below
 * resident: after 5000 notifications the daemon stayed at 5.3 MiB of private
 * memory instead of 2.1 MiB (docs/performance.md, "Memory of the daemon").
 *
 * memory_trim_schedule() is called when a burst ends (the outbox has become
 * empty); MEMORY_TRIM_DELAY_USEC later, if glibc holds at least
 * MEMORY_TRIM_MIN_FREE bytes of free heap, malloc_trim(0) hands the free
 * pages back.  Nothing is armed while the daemon is idle, so it adds no
 * wakeups then; under steady traffic at most one every MEMORY_TRIM_DELAY_USEC.
 */
#define MEMORY_TRIM_DELAY_USEC (10 * UINT64_C(1000000))
#define MEMORY_TRIM_MIN_FREE (256 * 1024)

void memory_trim_schedule(sd_event *event);
/* Frees the timer (at exit, before the event loop). */
void memory_trim_release(void);
