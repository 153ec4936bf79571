#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Compiles every file of the portable core (firmware_nrf91/src/*.c) for the
# nRF91's application core, a Cortex-M33, with Debian's bare-metal GCC and
# newlib headers, exactly as the issue fixes it:
#     arm-none-eabi-gcc -mcpu=cortex-m33 -mthumb -Os -ffreestanding
# and prints arm-none-eabi-size of the objects.  A warning is an error: the
# core must stay free of OS headers and host assumptions.
#
# Usage: m33-size.sh [OUTDIR]     (default: a temporary directory)
# Needs: gcc-arm-none-eabi, libnewlib-arm-none-eabi, binutils-arm-none-eabi
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src="$here/../src"
out=${1:-}
if [[ -z "$out" ]]; then
        out=$(mktemp -d)
        trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

for tool in arm-none-eabi-gcc arm-none-eabi-size; do
        if ! command -v "$tool" >/dev/null; then
                echo "m33-size: $tool not found (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi)" >&2
                exit 1
        fi
done

cflags=(-mcpu=cortex-m33 -mthumb -Os -ffreestanding
        -std=c11 -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wstrict-prototypes
        -Wswitch-enum -Wcast-align -Wstack-usage=2048
        -ffunction-sections -fdata-sections -fstack-usage)

objs=()
for c in "$src"/*.c; do
        o="$out/$(basename "${c%.c}").o"
        arm-none-eabi-gcc "${cflags[@]}" -c "$c" -o "$o"
        objs+=("$o")
done

# The RAM of one core instance, which a port allocates statically.
printf '#include "nrf91.h"\nstruct nrf91_core nrf91_core_instance;\n' >"$out/core-instance.c"
arm-none-eabi-gcc "${cflags[@]}" -I"$src" -fno-common -c "$out/core-instance.c" -o "$out/core-instance.o"
objs+=("$out/core-instance.o")

echo "Cortex-M33 (arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -mcpu=cortex-m33 -mthumb -Os -ffreestanding):"
arm-none-eabi-size -t "${objs[@]}" | sed "s|$out/||"
echo "Deepest stack frames:"
cat "$out"/*.su | grep -v core-instance | sort -t$'\t' -k2 -n -r | sed -n '1,5{s|^.*/||;p}'
