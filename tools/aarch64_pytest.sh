#!/usr/bin/env bash
# Build the spikeedge package and run its tests on aarch64 (the Raspberry Pi 4/5 architecture)
# under QEMU user-mode emulation, inside an arm64 Debian root made by debootstrap.
#
# This is the full route: the same `pip install .` a user runs on a Pi (Cython + GCC compiling the
# kernels natively for aarch64, inside the emulated root), then `spikeedge info` and pytest. The
# lighter route, tools/aarch64_check.sh, cross-compiles only the C step loop (fast, plus NEON
# disassembly and instruction counts). Wall times printed here are EMULATED: they are not Pi
# timings (see docs/porting.md for the Pi estimate from instruction counts).
#
# Needs root, Debian/Ubuntu packages debootstrap and qemu-user-static, binfmt_misc (mounted and
# registered here if missing), network access to the Debian archive and the Python package index.
#
# Usage: sudo bash tools/aarch64_pytest.sh [PYTEST ARGS...]
#   default pytest selection: the kernel/contract core (bit-exactness, golden vectors, engine,
#   model files, quantizer) plus the sensors package; pass e.g. `-m "not slow"` for everything.
# Environment: A64ROOT (default /tmp/spikeedge-a64root, reused between runs),
#   DEBIAN_MIRROR (default http://deb.debian.org/debian), SUITE (default bookworm).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A64ROOT=${A64ROOT:-/tmp/spikeedge-a64root}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}

[ "$(id -u)" = 0 ] || { echo "needs root (debootstrap, chroot, binfmt_misc)"; exit 2; }
for tool in debootstrap chroot git; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install debootstrap)"; exit 2; }
done
QEMU=$(command -v qemu-aarch64-static || true)
[ -n "$QEMU" ] || { echo "missing qemu-aarch64-static (apt-get install qemu-user-static)"; exit 2; }

echo "== binfmt_misc: run aarch64 ELF binaries through $QEMU"
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -r "$conf" ] || { echo "missing $conf (qemu-user-static's binfmt entry)"; exit 2; }
    # F (fix binary): the interpreter is opened now, so it works inside the chroot too.
    cat "$conf" > /proc/sys/fs/binfmt_misc/register
fi
grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 || { echo "qemu-aarch64 binfmt disabled"; exit 2; }

if [ ! -x "$A64ROOT/usr/bin/python3" ]; then
    echo "== debootstrap arm64 $SUITE into $A64ROOT (first run only; several minutes under emulation)"
    debootstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-dev,python3-venv,python3-pip,build-essential,ca-certificates \
        "$SUITE" "$A64ROOT" "$MIRROR"
fi

cleanup() {
    for m in dev/pts dev proc; do
        mountpoint -q "$A64ROOT/$m" && umount -l "$A64ROOT/$m" || true
    done
}
trap cleanup EXIT
mountpoint -q "$A64ROOT/proc" || mount -t proc proc "$A64ROOT/proc"
mountpoint -q "$A64ROOT/dev" || mount --bind /dev "$A64ROOT/dev"
mountpoint -q "$A64ROOT/dev/pts" || mount --bind /dev/pts "$A64ROOT/dev/pts"
cp -L /etc/resolv.conf "$A64ROOT/etc/resolv.conf"
[ -r /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$A64ROOT/etc/ssl/certs/"

echo "== copy the committed tree (git archive HEAD) to $A64ROOT/src"
rm -rf "$A64ROOT/src" && mkdir -p "$A64ROOT/src"
git -C "$ROOT" archive HEAD | tar -x -C "$A64ROOT/src"
# Recordings for the tests that use them, read-only, if this machine has them.
if [ -d "$ROOT/../shared/data" ]; then
    mkdir -p "$A64ROOT/shared/data"
    mountpoint -q "$A64ROOT/shared/data" || mount --bind -o ro "$ROOT/../shared/data" "$A64ROOT/shared/data"
    trap 'umount -l "$A64ROOT/shared/data" || true; cleanup' EXIT
fi

if [ "$#" = 0 ]; then
    set -- tests/test_bitexact.py tests/test_golden.py tests/test_engine.py tests/test_contract.py \
        tests/test_modelfile.py tests/test_network_quantize.py tests/sensors
fi
printf '%q ' "$@" > "$A64ROOT/src/.pytest-args"

echo "== inside the arm64 root: $(chroot "$A64ROOT" uname -m), build and test"
chroot "$A64ROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin \
    PIP_DISABLE_PIP_VERSION_CHECK=1 LANG=C.UTF-8 /bin/bash -euo pipefail -c '
cd /src
python3 --version; gcc --version | head -1
[ -x /venv/bin/python ] || python3 -m venv /venv
/venv/bin/pip install -q --upgrade pip
start=$(date +%s)
/venv/bin/pip install -q "numpy>=1.24,<2.4" "scipy>=1.10" "pyserial>=3.5" "paho-mqtt>=2" \
    "Cython>=3.0" "setuptools>=68" wheel "pytest>=7" "hypothesis>=6.80" "wfdb>=4.1"
echo "dependencies (aarch64 wheels): $(( $(date +%s) - start )) s"
start=$(date +%s)
/venv/bin/pip install -q . --no-build-isolation --no-deps --force-reinstall
echo "build + install (emulated wall time, not a Pi timing): $(( $(date +%s) - start )) s"
cd /tmp
/venv/bin/spikeedge info --json | /venv/bin/python -c "import json,sys; d=json.load(sys.stdin); import platform; print(\"machine:\", platform.machine(), \"backend:\", d[\"backend\"], d[\"build\"][\"module\"]); sys.exit(d[\"backend\"] != \"compiled\")"
cd /src
eval "set -- $(cat .pytest-args)"
start=$(date +%s)
SPIKEEDGE_DATA=/shared/data /venv/bin/python -m pytest -q -p no:cacheprovider "$@"
echo "pytest (emulated wall time, not a Pi timing): $(( $(date +%s) - start )) s"
'
