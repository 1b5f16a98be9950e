/*
 * spikeedge-fw-host: the firmware's host build. It plays a recording or a test signal through
 * the same device logic as the microcontroller build, into a pseudo-terminal (it prints the
 * path), an existing tty, or stdout, at real-time pace or as fast as the reader takes it.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hal_posix.h"
#include "se_device.h"

static posix_board board;
static se_device device;

static void usage(FILE *out)
{
    fputs("usage: spikeedge-fw-host [options]\n"
          "output (one of):\n"
          "  --pty                 create a pseudo-terminal, print 'PTY <path>' (default)\n"
          "  --tty PATH            write to an existing tty or file\n"
          "  --stdout              frames on stdout, commands on stdin\n"
          "input (one of):\n"
          "  --signal KIND         ramp, sine or ecg test signal (default ecg)\n"
          "  --play FILE           .wav (PCM16), .raw (int16 LE), .csv (Myo), .dat (WFDB 212)\n"
          "stream:\n"
          "  --rate HZ             sample rate (default: the file's, else 360)\n"
          "  --channels N          channels (raw, csv, signal; default 1, csv 8, .dat 2)\n"
          "  --format s8|s16|s32   sample format (default s16, csv s8)\n"
          "  --frame N             samples per channel per frame (default 32)\n"
          "  --count N             signal: samples before the end (default 0 = endless)\n"
          "  --period N            signal period in samples (default rate*4/5 ecg, rate/10 sine)\n"
          "  --amplitude A         signal peak (default 1000)\n"
          "  --gain G --offset Z   calibration put in the HEADER (counts per unit, ADC zero)\n"
          "  --device-id ID --name NAME\n"
          "  --loop                replay the recording endlessly\n"
          "pacing and life:\n"
          "  --fast                as fast as the reader takes it (default: real time)\n"
          "  --max-lag-ms MS       real time: drop samples when this far behind (default 0 = "
          "never)\n"
          "  --autostart           stream from launch without waiting for START\n"
          "  --exit-at-end         exit when the recording ends and the output is read\n",
          out);
}

static int parse_format(const char *s)
{
    if (strcmp(s, "s8") == 0) {
        return SE_FMT_S8;
    }
    if (strcmp(s, "s16") == 0) {
        return SE_FMT_S16;
    }
    if (strcmp(s, "s32") == 0) {
        return SE_FMT_S32;
    }
    return -1;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv)
{
    enum { O_PTY = 1, O_TTY, O_STDOUT, O_SIGNAL, O_PLAY, O_RATE, O_CHANNELS, O_FORMAT, O_FRAME,
           O_COUNT, O_PERIOD, O_AMPLITUDE, O_GAIN, O_OFFSET, O_ID, O_NAME, O_LOOP, O_FAST,
           O_LAG, O_AUTO, O_EXIT, O_HELP };
    static const struct option opts[] = {
        {"pty", no_argument, 0, O_PTY},          {"tty", required_argument, 0, O_TTY},
        {"stdout", no_argument, 0, O_STDOUT},    {"signal", required_argument, 0, O_SIGNAL},
        {"play", required_argument, 0, O_PLAY},  {"rate", required_argument, 0, O_RATE},
        {"channels", required_argument, 0, O_CHANNELS},
        {"format", required_argument, 0, O_FORMAT},
        {"frame", required_argument, 0, O_FRAME}, {"count", required_argument, 0, O_COUNT},
        {"period", required_argument, 0, O_PERIOD},
        {"amplitude", required_argument, 0, O_AMPLITUDE},
        {"gain", required_argument, 0, O_GAIN},  {"offset", required_argument, 0, O_OFFSET},
        {"device-id", required_argument, 0, O_ID}, {"name", required_argument, 0, O_NAME},
        {"loop", no_argument, 0, O_LOOP},        {"fast", no_argument, 0, O_FAST},
        {"max-lag-ms", required_argument, 0, O_LAG},
        {"autostart", no_argument, 0, O_AUTO},   {"exit-at-end", no_argument, 0, O_EXIT},
        {"help", no_argument, 0, O_HELP},        {0, 0, 0, 0},
    };
    int output = O_PTY;
    const char *tty = NULL;
    const char *play = NULL;
    int signal_kind = SE_SIG_ECG;
    long rate = 0;
    long channels = 0;
    int format = 0;
    long frame = 32;
    unsigned long long count = 0;
    long period = 0;
    long amplitude = 1000;
    double gain = -1.0;
    long offset = 0;
    int have_offset = 0;
    unsigned long device_id = 0x5E000001ul;
    const char *name = NULL;
    int loop = 0;
    int fast = 0;
    long lag_ms = 0;
    int autostart = 0;
    int exit_at_end = 0;

    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_PTY: case O_STDOUT: output = opt; break;
        case O_TTY: output = opt; tty = optarg; break;
        case O_SIGNAL:
            if (strcmp(optarg, "ramp") == 0) { signal_kind = SE_SIG_RAMP; }
            else if (strcmp(optarg, "sine") == 0) { signal_kind = SE_SIG_SINE; }
            else if (strcmp(optarg, "ecg") == 0) { signal_kind = SE_SIG_ECG; }
            else { fprintf(stderr, "--signal: ramp, sine or ecg, not %s\n", optarg); return 2; }
            break;
        case O_PLAY: play = optarg; break;
        case O_RATE: rate = strtol(optarg, NULL, 10); break;
        case O_CHANNELS: channels = strtol(optarg, NULL, 10); break;
        case O_FORMAT:
            format = parse_format(optarg);
            if (format < 0) { fprintf(stderr, "--format: s8, s16 or s32\n"); return 2; }
            break;
        case O_FRAME: frame = strtol(optarg, NULL, 10); break;
        case O_COUNT: count = strtoull(optarg, NULL, 10); break;
        case O_PERIOD: period = strtol(optarg, NULL, 10); break;
        case O_AMPLITUDE: amplitude = strtol(optarg, NULL, 10); break;
        case O_GAIN: gain = strtod(optarg, NULL); break;
        case O_OFFSET: offset = strtol(optarg, NULL, 10); have_offset = 1; break;
        case O_ID: device_id = strtoul(optarg, NULL, 0); break;
        case O_NAME: name = optarg; break;
        case O_LOOP: loop = 1; break;
        case O_FAST: fast = 1; break;
        case O_LAG: lag_ms = strtol(optarg, NULL, 10); break;
        case O_AUTO: autostart = 1; break;
        case O_EXIT: exit_at_end = 1; break;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    /* Input. */
    posix_source *src = &board.src;
    int kind = POSIX_SRC_SIGNAL;
    if (play != NULL) {
        kind = ends_with(play, ".wav") ? POSIX_SRC_WAV
             : ends_with(play, ".csv") || ends_with(play, ".txt") ? POSIX_SRC_CSV
             : ends_with(play, ".dat") ? POSIX_SRC_WFDB212 : POSIX_SRC_RAW;
    }
    if (channels == 0) {
        channels = kind == POSIX_SRC_CSV ? 8 : kind == POSIX_SRC_WFDB212 ? 2 : 1;
    }
    if (channels < 1 || channels > (long)SE_MAX_CHANNELS) {
        fprintf(stderr, "--channels: 1..%u\n", SE_MAX_CHANNELS);
        return 2;
    }
    if (posix_source_open(src, kind, play, (uint8_t)channels) != 0) {
        return 1;
    }
    if (kind == POSIX_SRC_WAV || kind == POSIX_SRC_WFDB212) {
        if (src->file_channels != 0u && kind == POSIX_SRC_WAV) {
            src->channels = src->file_channels;
            channels = src->file_channels;
        }
        if (rate == 0) {
            rate = (long)src->file_rate;
        }
        if (gain < 0.0 && src->file_gain_milli != 0u) {
            gain = src->file_gain_milli / 1000.0;
        }
        if (!have_offset) {
            offset = src->file_offset;
        }
    }
    if (rate <= 0) {
        rate = 360;
    }
    if (format == 0) {
        format = kind == POSIX_SRC_CSV ? SE_FMT_S8 : SE_FMT_S16;
    }
    src->loop = (uint8_t)loop;
    src->count = count;
    src->signal.kind = (uint8_t)signal_kind;
    src->signal.format = (uint8_t)format;
    src->signal.channels = (uint8_t)channels;
    src->signal.amplitude = (int32_t)amplitude;
    src->signal.period = (uint32_t)(period > 0 ? period
                                    : signal_kind == SE_SIG_SINE ? rate / 10 : rate * 4 / 5);
    if (src->signal.period < 8u) {
        src->signal.period = 8u;
    }

    /* Output. */
    board.fd_slave = -1;
    board.fast = (uint8_t)fast;
    if (output == O_PTY) {
        if (posix_open_pty(&board) != 0) {
            return 1;
        }
        printf("PTY %s\n", board.pty_path);
        fflush(stdout);
    } else if (output == O_TTY) {
        if (posix_open_tty(&board, tty) != 0) {
            return 1;
        }
    } else {
        board.fd_in = STDIN_FILENO;
        board.fd_out = STDOUT_FILENO;
    }

    se_hal hal;
    posix_hal(&board, &hal);
    se_device_config cfg = {
        .device_id = (uint32_t)device_id,
        .rate_hz = (uint32_t)rate,
        .max_rate_hz = 1000000u,
        .format = (uint8_t)format,
        .channels = (uint8_t)channels,
        .samples_per_frame = (uint16_t)frame,
        .offset = (int32_t)offset,
        .gain_milli = gain > 0.0 ? (uint32_t)(gain * 1000.0 + 0.5) : 0u,
        .max_lag_us = fast ? 0u : (uint32_t)lag_ms * 1000u,
        .autostart = (uint8_t)autostart,
        .name = name != NULL ? name : (play != NULL ? "spikeedge-host replay" : "spikeedge-host"),
    };
    if (frame < 1 || frame > 65535 || se_device_init(&device, &hal, &cfg) != 0) {
        fprintf(stderr, "bad configuration: frame of %ld samples x %ld channels must fit %u "
                "bytes, rate 1..1000000 Hz\n", frame, channels, SE_DATA_MAX_SAMPLE_BYTES);
        return 2;
    }

    for (;;) {
        uint32_t wait = se_device_poll(&device);
        if (device.ended && exit_at_end) {
            /* Let the reader take what is still buffered in the pty (at most 5 s). */
            for (int i = 0; i < 5000 && posix_unread(&board) > 0; i++) {
                usleep(1000);
            }
            break;
        }
        if (wait > 0u) {
            posix_idle(&board, wait);
        }
    }
    fprintf(stderr, "spikeedge-fw-host: %lu frames, %lu samples sent, %lu skipped, %lu rx errors\n",
            (unsigned long)device.stats.frames_sent, (unsigned long)device.stats.samples_sent,
            (unsigned long)device.stats.samples_skipped, (unsigned long)device.stats.rx_errors);
    return 0;
}
