/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

bool ratelimit_below(RateLimit *rl, uint64_t now, uint64_t *ret_suppressed) {
        if (rl->burst == 0 || rl->begin == 0 || now < rl->begin || now - rl->begin >= rl->interval_usec) {
                rl->begin = now ? now : 1;
                rl->num = 0;
        }
        if (rl->burst > 0 && rl->num >= rl->burst) {
                rl->suppressed++;
                return false;
        }
        rl->num++;
        if (ret_suppressed)
                *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}
