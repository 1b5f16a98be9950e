#!/usr/bin/env bash
# aarch64 (Raspberry Pi 4/5) check of the compiled kernels, under QEMU user-mode emulation.
#
# Route: the lighter one. The step loop the Cython kernel runs (cython_kernels/lif_kernel.h
# + lif_ops.h, the same source, not a copy) is cross-compiled with gcc-aarch64-linux-gnu into
# a static C harness (tools/aarch64/harness.c) that runs the golden vectors (tests/golden)
# and short runs of the four standard networks, and compares spikes and the final state with
# the golden NumPy reference bit for bit, under qemu-aarch64-static. It does not build the
# Python package or run pytest on aarch64 (that needs an arm64 Debian root made with
# debootstrap and a Python + NumPy + Cython build inside it, too slow for CI under emulation).
#
# Also: (1) disassembly of the cross-compiled step loop, counting Advanced SIMD (NEON) vector
# instructions, to show that the hot loops vectorize on aarch64 (plus the x86-64 build for
# comparison); (2) aarch64 instructions executed per simulation step (QEMU -singlestep exec
# log, instructions inside se_steps only), the input of a Raspberry Pi estimate. Emulated wall
# times are printed by the harness but are NOT Pi timings.
#
# Needs (Debian/Ubuntu): apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# qemu-user-static; a Python with spikeedge installed (to write the golden cases).
# Usage: bash tools/aarch64_check.sh [--no-count]     (not part of the default test suite)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
CC_A64=${CC_A64:-aarch64-linux-gnu-gcc}
OBJDUMP_A64=${OBJDUMP_A64:-aarch64-linux-gnu-objdump}
QEMU=${QEMU:-$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)}
COUNT=1
[ "${1:-}" = "--no-count" ] && COUNT=0

for tool in "$CC_A64" "$OBJDUMP_A64" cc; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)"; exit 2; }
done
[ -n "$QEMU" ] || { echo "missing qemu-aarch64-static (apt-get install qemu-user-static)"; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
INC="-I$ROOT/cython_kernels"
CFLAGS="-O3 -std=c99 -Wall -Wextra"

echo "== golden cases (spikeedge reference)"
"$PY" "$ROOT/tools/aarch64/export_cases.py" "$WORK/cases" >/dev/null
ls "$WORK/cases"

echo "== x86-64 (host) build, sanity"
cc $CFLAGS $INC "$ROOT/tools/aarch64/harness.c" -o "$WORK/harness_host"
"$WORK/harness_host" "$WORK"/cases/*.case

status=0
for cpu in generic cortex-a72 cortex-a76; do
    # generic: the portable armv8-a build a wheel gets; cortex-a72 = Pi 4, cortex-a76 = Pi 5
    echo "== aarch64 build -mcpu=$cpu, run under $(basename "$QEMU") ($("$QEMU" --version | head -1))"
    "$CC_A64" $CFLAGS -mcpu=$cpu -static $INC "$ROOT/tools/aarch64/harness.c" -o "$WORK/harness_$cpu"
    "$QEMU" "$WORK/harness_$cpu" "$WORK"/cases/*.case || status=1
done

echo "== vectorization: Advanced SIMD instructions in the aarch64 step loop (se_steps, -mcpu=generic)"
"$OBJDUMP_A64" -d --no-show-raw-insn "$WORK/harness_generic" |
    awk '/^[0-9a-f]+ <se_steps>:/{f=1; next} /^[0-9a-f]+ </{f=0} f' > "$WORK/se_steps.s"
total=$(grep -cE '^\s+[0-9a-f]+:' "$WORK/se_steps.s" || true)
vec=$(grep -cE '\bv[0-9]+\.(16b|8b|8h|4h|4s|2s|2d)\b' "$WORK/se_steps.s" || true)
echo "se_steps: $total instructions, $vec with vector (NEON) operands"
echo "most frequent vector instructions:"
{ grep -E '\bv[0-9]+\.(16b|8b|8h|4h|4s|2s|2d)\b' "$WORK/se_steps.s" || true; } |
    awk '{print $2}' | sort | uniq -c | sort -rn | head -12
echo "x86-64 build for comparison (SIMD clones of se_steps):"
cc $CFLAGS -fPIC $INC -c "$ROOT/tools/aarch64/harness.c" -o "$WORK/host.o"
for clone in se_steps.default se_steps.avx2 se_steps.arch_x86_64_v4; do
    n=$(objdump -d --no-show-raw-insn "$WORK/host.o" |
        awk -v c="<$clone>:" '$2==c{f=1; next} /^[0-9a-f]+ </{f=0} f' |
        grep -cE '%(x|y|z)mm' || true)
    echo "  $clone: $n instructions on xmm/ymm/zmm registers"
done

if [ "$COUNT" = 1 ]; then
    echo "== aarch64 instructions executed per step (inside se_steps; QEMU -singlestep, -mcpu=generic)"
    for case in net_kws net_shd net_stdp net_cuba; do
        steps=$("$QEMU" "$WORK/harness_generic" "$WORK/cases/$case.case" |
                awk '/steps/{for(i=1;i<=NF;i++) if($i=="steps") print $(i+1)}')
        "$QEMU" -singlestep -d exec,nochain -D "$WORK/exec.log" "$WORK/harness_generic" \
            "$WORK/cases/$case.case" >/dev/null
        n=$(grep -c ' se_steps$' "$WORK/exec.log" || true)
        echo "$case: $n instructions over $steps steps = $((n / steps)) per step"
        rm -f "$WORK/exec.log"
    done
fi
exit $status
