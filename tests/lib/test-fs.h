/* SPDX-License-Identifier: MIT */
#pragma once

/* Removes dir and everything below it (test folders only; no links followed). */
void test_rm_rf(const char *dir);
