/* POSIX "board": the host build of the firmware (recordings or test signals into a pty). */
#ifndef HAL_POSIX_H
#define HAL_POSIX_H

#include <stdint.h>
#include <stdio.h>

#include "se_hal.h"
#include "se_signal.h"

#define SE_MAX_CHANNELS_POSIX 16u

enum posix_source_kind {
    POSIX_SRC_SIGNAL = 0, /* se_signal generator */
    POSIX_SRC_WAV = 1,    /* PCM 16-bit WAV, any channel count */
    POSIX_SRC_RAW = 2,    /* headerless int16 little-endian, channels interleaved */
    POSIX_SRC_CSV = 3,    /* Myo CSV: integer columns per line, the first `channels` are used */
    POSIX_SRC_WFDB212 = 4 /* WFDB format 212 .dat (two 12-bit samples in three bytes) */
};

typedef struct posix_source {
    int kind;
    uint8_t channels;
    uint8_t loop;       /* rewind at the end instead of ending */
    uint64_t count;     /* SIGNAL: samples before the end (0 = endless) */
    uint64_t taken;
    se_signal signal;
    FILE *file;
    long data_start;    /* file offset of the first sample */
    long data_bytes;    /* WAV: size of the data chunk (-1 = to end of file) */
    long data_read;
    uint32_t file_rate; /* rate found in the file (WAV, WFDB header), 0 if none */
    int32_t file_offset;
    uint32_t file_gain_milli;
    uint8_t file_channels;
    int pending;        /* WFDB 212: second sample of a pair kept for the next call */
    int32_t pending_values[2];
} posix_source;

typedef struct posix_board {
    posix_source src;
    int fd_in;          /* command bytes from the host */
    int fd_out;         /* frames to the host */
    int fd_slave;       /* pty mode: our own handle on the slave side (keeps it raw and open) */
    uint8_t fast;       /* virtual time: as fast as the reader takes the bytes */
    uint64_t virtual_us;
    char pty_path[128];
} posix_board;

/* Open a recording; returns 0 or -1 with a message on stderr. */
int posix_source_open(posix_source *s, int kind, const char *path, uint8_t channels);

/* Create a pseudo-terminal in raw mode; fd_in = fd_out = the master. Returns 0 or -1. */
int posix_open_pty(posix_board *b);

/* Open an existing tty (or any file) for writing frames and reading commands. */
int posix_open_tty(posix_board *b, const char *path);

/* Fill the HAL table for this board. */
void posix_hal(posix_board *b, se_hal *hal);

/* Wait up to wait_us for command bytes (or advance virtual time in fast mode). */
void posix_idle(posix_board *b, uint32_t wait_us);

/* Bytes written to the pty that the reader has not taken yet (0 when not a pty). */
int posix_unread(posix_board *b);

#endif /* HAL_POSIX_H */
