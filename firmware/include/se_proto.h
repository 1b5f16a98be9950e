/*
 * spikeedge serial protocol, version 1 (docs/protocol.md is the specification).
 *
 * On the wire every packet is COBS(payload || CRC-32(payload) little-endian) followed by 0x00.
 * The first payload byte is the packet type; all multi-byte fields are little-endian.
 *
 *   HEADER  0x01  device -> host  stream description (rate, channels, format, device id)
 *   DATA    0x02  device -> host  seq, first-sample index and timestamp, samples
 *   COMMAND 0x10  host -> device  START, STOP, SET_RATE, IDENTIFY
 *   ACK     0x11  device -> host  answer to a COMMAND (same token and opcode)
 *
 * This module only builds and parses byte buffers: no I/O, no allocation.
 */
#ifndef SE_PROTO_H
#define SE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "se_cobs.h"

#define SE_PROTO_VERSION 1u

enum se_packet_type {
    SE_PKT_HEADER = 0x01,
    SE_PKT_DATA = 0x02,
    SE_PKT_COMMAND = 0x10,
    SE_PKT_ACK = 0x11,
};

/* Sample formats: signed integers, little-endian, channels interleaved sample by sample. */
enum se_sample_format {
    SE_FMT_S8 = 1,
    SE_FMT_S16 = 2,
    SE_FMT_S32 = 3,
};

enum se_opcode {
    SE_OP_START = 1,    /* (re)start streaming: ACK, HEADER, then DATA from seq 0 */
    SE_OP_STOP = 2,     /* stop streaming; a partly filled frame is discarded */
    SE_OP_SET_RATE = 3, /* argument u32 rate in Hz; ACK value is the rate now in use */
    SE_OP_IDENTIFY = 4, /* ACK, then a HEADER describing the current configuration */
};

enum se_ack_status {
    SE_ACK_OK = 0,
    SE_ACK_UNKNOWN_OPCODE = 1,
    SE_ACK_BAD_ARGUMENT = 2,
    SE_ACK_BAD_LENGTH = 3,
};

/* DATA flags */
#define SE_DATA_FLAG_OVERRUN 0x01u /* the device lost samples before this frame (index jumps) */
#define SE_DATA_FLAG_END 0x02u     /* last frame of a finite recording */

#define SE_HEADER_FIXED_LEN 24u
#define SE_HEADER_NAME_MAX 32u
#define SE_DATA_FIXED_LEN 24u
#define SE_DATA_MAX_SAMPLE_BYTES 1024u
#define SE_COMMAND_MAX_LEN 7u
#define SE_ACK_LEN 8u
#define SE_CRC_LEN 4u

/* Largest payload (DATA with a full sample area) and largest wire size with delimiter. */
#define SE_MAX_PAYLOAD (SE_DATA_FIXED_LEN + SE_DATA_MAX_SAMPLE_BYTES)
#define SE_MAX_WIRE (SE_COBS_MAX_ENCODED(SE_MAX_PAYLOAD + SE_CRC_LEN) + 1u)

typedef struct se_header {
    uint8_t version;
    uint8_t stream;
    uint8_t format;
    uint8_t channels;
    uint16_t samples_per_frame;
    uint32_t device_id;
    uint32_t rate_hz;
    int32_t offset;      /* ADC count that means zero physical units */
    uint32_t gain_milli; /* ADC counts per physical unit, times 1000; 0 = raw counts */
    uint8_t name_len;
    char name[SE_HEADER_NAME_MAX];
} se_header;

typedef struct se_data {
    uint8_t stream;
    uint8_t flags;
    uint8_t format;
    uint8_t channels;
    uint16_t n;            /* samples per channel in this frame */
    uint32_t seq;          /* frame counter of the stream, from 0 */
    uint32_t sample_index; /* index of the first sample in the stream (mod 2^32) */
    uint64_t t_us;         /* device time of the first sample, microseconds since START */
    const uint8_t *samples; /* parse: points into the payload; build: the packed samples */
} se_data;

typedef struct se_command {
    uint8_t token;  /* echoed in the ACK */
    uint8_t opcode; /* enum se_opcode */
    uint32_t arg;   /* SET_RATE: rate in Hz; otherwise 0 */
} se_command;

typedef struct se_ack {
    uint8_t token;
    uint8_t opcode;
    uint8_t status; /* enum se_ack_status */
    uint32_t value;
} se_ack;

/* Result of se_proto_unframe / parse functions. */
enum se_proto_error {
    SE_OK = 0,
    SE_ERR_COBS = -1,      /* not valid COBS */
    SE_ERR_CRC = -2,       /* CRC mismatch */
    SE_ERR_MALFORMED = -3, /* valid CRC but an unknown type, a bad length or a bad field */
    SE_ERR_SPACE = -4,     /* output buffer too small */
};

/* Bytes per sample of a format (0 for an unknown format). */
unsigned se_format_size(uint8_t format);

/* Packed sample value helpers (little-endian, sign-extended on read). */
void se_sample_put(uint8_t *dst, uint8_t format, int32_t value);
int32_t se_sample_get(const uint8_t *src, uint8_t format);

/*
 * Builders: write payload bytes (without CRC) into out, return the payload length or a
 * negative se_proto_error. Then se_proto_frame() turns a payload into wire bytes.
 */
int se_build_header(const se_header *h, uint8_t *out, size_t cap);
int se_build_data(const se_data *d, uint8_t *out, size_t cap);
int se_build_command(const se_command *c, uint8_t *out, size_t cap);
int se_build_ack(const se_ack *a, uint8_t *out, size_t cap);

/*
 * Frame a payload for the wire: appends the CRC, COBS-encodes and appends the 0x00 delimiter.
 * scratch must hold payload_len + 4 bytes. Returns the wire length or SE_ERR_SPACE.
 */
long se_proto_frame(const uint8_t *payload, size_t payload_len, uint8_t *scratch,
                    size_t scratch_cap, uint8_t *out, size_t out_cap);

/*
 * Undo se_proto_frame for one packet (the bytes between two delimiters, delimiter excluded):
 * COBS-decode into out, check and strip the CRC. Returns the payload length or a negative
 * se_proto_error (SE_ERR_COBS, SE_ERR_CRC, SE_ERR_MALFORMED for an empty payload).
 */
long se_proto_unframe(const uint8_t *wire, size_t n, uint8_t *out, size_t cap);

/* Parsers of a payload (after se_proto_unframe). Return SE_OK or SE_ERR_MALFORMED. */
int se_parse_header(const uint8_t *p, size_t n, se_header *h);
int se_parse_data(const uint8_t *p, size_t n, se_data *d);
int se_parse_command(const uint8_t *p, size_t n, se_command *c);
int se_parse_ack(const uint8_t *p, size_t n, se_ack *a);

#endif /* SE_PROTO_H */
