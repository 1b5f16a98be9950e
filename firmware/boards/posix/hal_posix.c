/*
 * HAL of the POSIX host build: clock from CLOCK_MONOTONIC (or virtual time in fast mode),
 * samples from a recording or a test signal, the UART on a pseudo-terminal, a tty or stdio.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include "hal_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "se_proto.h"

/* ------------------------------------------------------------------ recordings */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static int wav_open(posix_source *s)
{
    uint8_t riff[12];
    uint8_t chunk[8];
    int have_fmt = 0;
    if (fread(riff, 1, 12, s->file) != 12 || memcmp(riff, "RIFF", 4) != 0 ||
        memcmp(riff + 8, "WAVE", 4) != 0) {
        fprintf(stderr, "not a RIFF/WAVE file\n");
        return -1;
    }
    while (fread(chunk, 1, 8, s->file) == 8) {
        uint32_t size = le32(chunk + 4);
        if (memcmp(chunk, "fmt ", 4) == 0) {
            uint8_t fmt[16];
            if (size < 16 || fread(fmt, 1, 16, s->file) != 16) {
                fprintf(stderr, "WAV: short fmt chunk\n");
                return -1;
            }
            unsigned tag = (unsigned)fmt[0] | ((unsigned)fmt[1] << 8);
            unsigned bits = (unsigned)fmt[14] | ((unsigned)fmt[15] << 8);
            s->file_channels = fmt[2];
            s->file_rate = le32(fmt + 4);
            if ((tag != 1u && tag != 0xFFFEu) || bits != 16u || s->file_channels == 0u) {
                fprintf(stderr, "WAV: only 16-bit PCM is supported (tag %u, %u bits)\n", tag,
                        bits);
                return -1;
            }
            if (fseek(s->file, (long)(size - 16u + (size & 1u)), SEEK_CUR) != 0) {
                return -1;
            }
            have_fmt = 1;
        } else if (memcmp(chunk, "data", 4) == 0) {
            if (!have_fmt) {
                fprintf(stderr, "WAV: data chunk before fmt chunk\n");
                return -1;
            }
            s->data_start = ftell(s->file);
            s->data_bytes = (long)size;
            return 0;
        } else if (fseek(s->file, (long)(size + (size & 1u)), SEEK_CUR) != 0) {
            return -1;
        }
    }
    fprintf(stderr, "WAV: no data chunk\n");
    return -1;
}

/* Read the WFDB header next to a .dat: rate (first line) and gain / ADC zero (first signal). */
static void wfdb_header(posix_source *s, const char *dat_path)
{
    char hea[512];
    char line[256];
    size_t n = strlen(dat_path);
    if (n < 4 || n >= sizeof hea) {
        return;
    }
    memcpy(hea, dat_path, n - 4);
    memcpy(hea + n - 4, ".hea", 5);
    FILE *f = fopen(hea, "r");
    if (f == NULL) {
        return;
    }
    int lineno = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (line[0] == '#') {
            continue;
        }
        if (lineno == 0) {
            unsigned nsig = 0;
            double fs = 0.0;
            if (sscanf(line, "%*s %u %lf", &nsig, &fs) == 2) {
                s->file_channels = (uint8_t)nsig;
                s->file_rate = (uint32_t)(fs + 0.5);
            }
        } else if (lineno == 1) {
            double gain = 0.0;
            int bits = 0;
            int zero = 0;
            if (sscanf(line, "%*s %*d %lf %d %d", &gain, &bits, &zero) == 3) {
                s->file_gain_milli = (uint32_t)(gain * 1000.0 + 0.5);
                s->file_offset = zero;
            }
            break;
        }
        lineno++;
    }
    fclose(f);
}

int posix_source_open(posix_source *s, int kind, const char *path, uint8_t channels)
{
    s->kind = kind;
    s->channels = channels;
    s->data_start = 0;
    s->data_bytes = -1;
    if (kind == POSIX_SRC_SIGNAL) {
        return 0;
    }
    s->file = fopen(path, kind == POSIX_SRC_CSV ? "r" : "rb");
    if (s->file == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (kind == POSIX_SRC_WAV && wav_open(s) != 0) {
        fprintf(stderr, "%s: cannot play this WAV file\n", path);
        return -1;
    }
    if (kind == POSIX_SRC_WFDB212) {
        wfdb_header(s, path);
    }
    return 0;
}

static void source_rewind(void *ctx)
{
    posix_source *s = &((posix_board *)ctx)->src;
    s->taken = 0u;
    s->signal.k = 0u;
    s->data_read = 0;
    s->pending = 0;
    if (s->file != NULL) {
        fseek(s->file, s->data_start, SEEK_SET);
    }
}

static int read_csv(posix_source *s, int32_t *values)
{
    char line[512];
    while (fgets(line, sizeof line, s->file) != NULL) {
        char *p = line;
        unsigned c = 0u;
        while (c < s->channels) {
            char *end = NULL;
            long v = strtol(p, &end, 10);
            if (end == p) {
                break;
            }
            values[c++] = (int32_t)v;
            p = end;
            while (*p == ',' || *p == ' ' || *p == '\t') {
                p++;
            }
        }
        if (c == s->channels) {
            return 1;
        }
        /* Blank or short lines are skipped. */
    }
    return 0;
}

static int read_wfdb212(posix_source *s, int32_t *values)
{
    /* Format 212 packs sample pairs (any channels, interleaved) in 3 bytes:
     * a = b0 | (b1 & 0x0F) << 8, b = b2 | (b1 & 0xF0) << 4, both 12-bit two's complement. */
    for (unsigned c = 0u; c < s->channels; c++) {
        if (s->pending) {
            values[c] = s->pending_values[1];
            s->pending = 0;
            continue;
        }
        uint8_t b[3];
        if (fread(b, 1, 3, s->file) != 3) {
            return 0;
        }
        int32_t a = (int32_t)b[0] | ((int32_t)(b[1] & 0x0Fu) << 8);
        int32_t v = (int32_t)b[2] | ((int32_t)(b[1] & 0xF0u) << 4);
        values[c] = a >= 2048 ? a - 4096 : a;
        s->pending_values[1] = v >= 2048 ? v - 4096 : v;
        s->pending = 1;
    }
    return 1;
}

static int read_int16(posix_source *s, int32_t *values)
{
    uint8_t b[2 * SE_MAX_CHANNELS_POSIX];
    size_t need = 2u * s->channels;
    if (s->data_bytes >= 0 && s->data_read + (long)need > s->data_bytes) {
        return 0;
    }
    if (fread(b, 1, need, s->file) != need) {
        return 0;
    }
    s->data_read += (long)need;
    for (unsigned c = 0u; c < s->channels; c++) {
        values[c] = (int32_t)(int16_t)(uint16_t)((unsigned)b[2u * c] | ((unsigned)b[2u * c + 1u] << 8));
    }
    return 1;
}

static int source_read_once(posix_source *s, int32_t *values)
{
    switch (s->kind) {
    case POSIX_SRC_SIGNAL:
        if (s->count != 0u && s->taken >= s->count) {
            return 0;
        }
        se_signal_next(&s->signal, values);
        s->taken++;
        return 1;
    case POSIX_SRC_CSV:
        return read_csv(s, values);
    case POSIX_SRC_WFDB212:
        return read_wfdb212(s, values);
    default:
        return read_int16(s, values);
    }
}

static int source_read(void *ctx, int32_t *values)
{
    posix_source *s = &((posix_board *)ctx)->src;
    int r = source_read_once(s, values);
    if (r == 0 && s->loop) {
        source_rewind(ctx);
        r = source_read_once(s, values);
    }
    return r;
}

/* ------------------------------------------------------------------ clock */

static uint64_t clock_now_us(void *ctx)
{
    posix_board *b = ctx;
    if (b->fast) {
        return b->virtual_us;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void posix_idle(posix_board *b, uint32_t wait_us)
{
    if (b->fast && wait_us != UINT32_MAX) {
        b->virtual_us += wait_us;
        return;
    }
    if (wait_us > 1000u) {
        wait_us = 1000u; /* stay responsive to commands */
    }
    struct timespec ts = {0, (long)wait_us * 1000L};
    fd_set rd;
    FD_ZERO(&rd);
    if (b->fd_in >= 0) {
        FD_SET(b->fd_in, &rd);
    }
    (void)pselect(b->fd_in + 1, &rd, NULL, NULL, &ts, NULL);
}

/* ------------------------------------------------------------------ UART */

static long uart_read(void *ctx, uint8_t *buf, size_t cap)
{
    posix_board *b = ctx;
    if (b->fd_in < 0) {
        return 0;
    }
    struct pollfd p = {b->fd_in, POLLIN, 0};
    if (poll(&p, 1u, 0) <= 0 || !(p.revents & POLLIN)) {
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            if (b->fd_in != b->fd_out) {
                b->fd_in = -1; /* stdin closed: no more commands */
            }
        }
        return 0;
    }
    ssize_t n = read(b->fd_in, buf, cap);
    if (n <= 0) {
        if (n == 0 && b->fd_in != b->fd_out) {
            b->fd_in = -1;
        }
        return 0;
    }
    return (long)n;
}

static int uart_write(void *ctx, const uint8_t *buf, size_t len)
{
    posix_board *b = ctx;
    while (len > 0u) {
        ssize_t n = write(b->fd_out, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                struct pollfd p = {b->fd_out, POLLOUT, 0};
                (void)poll(&p, 1u, 100);
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int make_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0) {
        return -1;
    }
    cfmakeraw(&t);
    return tcsetattr(fd, TCSANOW, &t);
}

int posix_open_pty(posix_board *b)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
        perror("posix_openpt");
        return -1;
    }
    const char *name = ptsname(m);
    if (name == NULL || strlen(name) >= sizeof b->pty_path) {
        return -1;
    }
    strcpy(b->pty_path, name);
    /* Hold the slave open ourselves: it stays in raw mode (no echo, no CR/LF translation of
     * our binary frames) and the master does not see a hang-up between host connections. */
    b->fd_slave = open(b->pty_path, O_RDWR | O_NOCTTY);
    if (b->fd_slave < 0 || make_raw(b->fd_slave) != 0 || make_raw(m) != 0) {
        perror(b->pty_path);
        return -1;
    }
    b->fd_in = m;
    b->fd_out = m;
    return 0;
}

int posix_open_tty(posix_board *b, const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY);
    if (fd < 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    if (isatty(fd)) {
        (void)make_raw(fd);
    }
    b->fd_in = fd;
    b->fd_out = fd;
    return 0;
}

int posix_unread(posix_board *b)
{
    int n = 0;
    if (b->fd_slave < 0 || ioctl(b->fd_slave, FIONREAD, &n) != 0) {
        return 0;
    }
    return n;
}

void posix_hal(posix_board *b, se_hal *hal)
{
    hal->ctx = b;
    hal->now_us = clock_now_us;
    hal->read_sample = source_read;
    hal->restart = source_rewind;
    hal->uart_read = uart_read;
    hal->uart_write = uart_write;
}
