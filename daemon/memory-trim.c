/* SPDX-License-Identifier: MIT */
#include <malloc.h>

#include "log.h"
#include "memory-trim.h"

static sd_event_source *trim_timer;

static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        struct mallinfo2 mi = mallinfo2();

        (void) s;
        (void) usec;
        (void) userdata;
        if (mi.fordblks < MEMORY_TRIM_MIN_FREE)
                return 0;
        (void) malloc_trim(0);
        log_debug("Gave the free heap back to the system (%zu KiB free of %zu KiB)", mi.fordblks / 1024,
                  mi.arena / 1024);
        return 0;
}

void memory_trim_schedule(sd_event *event) {
        int enabled = SD_EVENT_OFF;
        uint64_t now;
        int r;

        if (trim_timer) {
                if (sd_event_source_get_enabled(trim_timer, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                        return; /* armed already: it runs after the first end of a burst, not the last */
                r = sd_event_now(event, CLOCK_MONOTONIC, &now);
                if (r >= 0)
                        r = sd_event_source_set_time(trim_timer, now + MEMORY_TRIM_DELAY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(trim_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(event, &trim_timer, CLOCK_MONOTONIC, MEMORY_TRIM_DELAY_USEC,
                                               MEMORY_TRIM_DELAY_USEC / 2, on_trim, NULL);
        if (r < 0)
                log_debug_errno(r, "Failed to arm the heap trim, ignoring: %m");
}

void memory_trim_release(void) {
        trim_timer = sd_event_source_disable_unref(trim_timer);
}
