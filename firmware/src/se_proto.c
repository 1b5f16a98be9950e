/* Packet builders and parsers of the spikeedge serial protocol; see se_proto.h. */
#include "se_proto.h"

#include "se_crc32.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (unsigned i = 0u; i < 4u; i++) {
        p[i] = (uint8_t)((v >> (8u * i)) & 0xFFu);
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0u; i < 8u; i++) {
        p[i] = (uint8_t)((v >> (8u * i)) & 0xFFu);
    }
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] | (uint16_t)((uint16_t)p[1] << 8));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0u;
    for (unsigned i = 0u; i < 4u; i++) {
        v |= (uint32_t)p[i] << (8u * i);
    }
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0u;
    for (unsigned i = 0u; i < 8u; i++) {
        v |= (uint64_t)p[i] << (8u * i);
    }
    return v;
}

unsigned se_format_size(uint8_t format)
{
    switch (format) {
    case SE_FMT_S8:
        return 1u;
    case SE_FMT_S16:
        return 2u;
    case SE_FMT_S32:
        return 4u;
    default:
        return 0u;
    }
}

void se_sample_put(uint8_t *dst, uint8_t format, int32_t value)
{
    /* Two's complement bytes of the value: the conversion to unsigned is defined in C. */
    uint32_t u = (uint32_t)value;
    unsigned size = se_format_size(format);
    for (unsigned i = 0u; i < size; i++) {
        dst[i] = (uint8_t)((u >> (8u * i)) & 0xFFu);
    }
}

int32_t se_sample_get(const uint8_t *src, uint8_t format)
{
    switch (format) {
    case SE_FMT_S8:
        return (int32_t)(int8_t)src[0];
    case SE_FMT_S16:
        return (int32_t)(int16_t)get_u16(src);
    case SE_FMT_S32: {
        uint32_t u = get_u32(src);
        /* Sign-extend without implementation-defined conversion of large unsigned values. */
        return (u & 0x80000000u) ? -(int32_t)(~u) - 1 : (int32_t)u;
    }
    default:
        return 0;
    }
}

static int data_valid(uint8_t format, uint8_t channels, uint16_t n)
{
    unsigned size = se_format_size(format);
    return size != 0u && channels != 0u &&
           (uint32_t)n * channels * size <= SE_DATA_MAX_SAMPLE_BYTES;
}

int se_build_header(const se_header *h, uint8_t *out, size_t cap)
{
    size_t len = SE_HEADER_FIXED_LEN + h->name_len;
    if (h->name_len > SE_HEADER_NAME_MAX || se_format_size(h->format) == 0u ||
        h->channels == 0u) {
        return SE_ERR_MALFORMED;
    }
    if (cap < len) {
        return SE_ERR_SPACE;
    }
    out[0] = SE_PKT_HEADER;
    out[1] = h->version;
    out[2] = h->stream;
    out[3] = h->format;
    out[4] = h->channels;
    out[5] = h->name_len;
    put_u16(out + 6, h->samples_per_frame);
    put_u32(out + 8, h->device_id);
    put_u32(out + 12, h->rate_hz);
    put_u32(out + 16, (uint32_t)h->offset);
    put_u32(out + 20, h->gain_milli);
    for (size_t i = 0u; i < h->name_len; i++) {
        out[SE_HEADER_FIXED_LEN + i] = (uint8_t)h->name[i];
    }
    return (int)len;
}

int se_build_data(const se_data *d, uint8_t *out, size_t cap)
{
    if (!data_valid(d->format, d->channels, d->n)) {
        return SE_ERR_MALFORMED;
    }
    size_t nbytes = (size_t)d->n * d->channels * se_format_size(d->format);
    size_t len = SE_DATA_FIXED_LEN + nbytes;
    if (cap < len) {
        return SE_ERR_SPACE;
    }
    out[0] = SE_PKT_DATA;
    out[1] = d->stream;
    out[2] = d->flags;
    out[3] = d->format;
    out[4] = d->channels;
    out[5] = 0u;
    put_u16(out + 6, d->n);
    put_u32(out + 8, d->seq);
    put_u32(out + 12, d->sample_index);
    put_u64(out + 16, d->t_us);
    /* The caller may already have packed the samples in place (d->samples == out + 24). */
    if (d->samples != out + SE_DATA_FIXED_LEN) {
        for (size_t i = 0u; i < nbytes; i++) {
            out[SE_DATA_FIXED_LEN + i] = d->samples[i];
        }
    }
    return (int)len;
}

int se_build_command(const se_command *c, uint8_t *out, size_t cap)
{
    size_t len = c->opcode == SE_OP_SET_RATE ? 7u : 3u;
    if (cap < len) {
        return SE_ERR_SPACE;
    }
    out[0] = SE_PKT_COMMAND;
    out[1] = c->token;
    out[2] = c->opcode;
    if (len == 7u) {
        put_u32(out + 3, c->arg);
    }
    return (int)len;
}

int se_build_ack(const se_ack *a, uint8_t *out, size_t cap)
{
    if (cap < SE_ACK_LEN) {
        return SE_ERR_SPACE;
    }
    out[0] = SE_PKT_ACK;
    out[1] = a->token;
    out[2] = a->opcode;
    out[3] = a->status;
    put_u32(out + 4, a->value);
    return (int)SE_ACK_LEN;
}

long se_proto_frame(const uint8_t *payload, size_t payload_len, uint8_t *scratch,
                    size_t scratch_cap, uint8_t *out, size_t out_cap)
{
    if (scratch_cap < payload_len + SE_CRC_LEN) {
        return SE_ERR_SPACE;
    }
    if (scratch != payload) {
        for (size_t i = 0u; i < payload_len; i++) {
            scratch[i] = payload[i];
        }
    }
    put_u32(scratch + payload_len, se_crc32(scratch, payload_len));
    size_t enc = se_cobs_encode(scratch, payload_len + SE_CRC_LEN, out, out_cap);
    if (enc == 0u || enc >= out_cap) {
        return SE_ERR_SPACE;
    }
    out[enc] = 0u;
    return (long)(enc + 1u);
}

long se_proto_unframe(const uint8_t *wire, size_t n, uint8_t *out, size_t cap)
{
    long len = se_cobs_decode(wire, n, out, cap);
    if (len < 0) {
        return SE_ERR_COBS;
    }
    if ((size_t)len < SE_CRC_LEN + 1u) {
        /* Too short to hold a type byte and a CRC: counts as a CRC failure, as on the host. */
        return SE_ERR_CRC;
    }
    size_t plen = (size_t)len - SE_CRC_LEN;
    if (get_u32(out + plen) != se_crc32(out, plen)) {
        return SE_ERR_CRC;
    }
    return (long)plen;
}

int se_parse_header(const uint8_t *p, size_t n, se_header *h)
{
    if (n < SE_HEADER_FIXED_LEN || p[0] != SE_PKT_HEADER) {
        return SE_ERR_MALFORMED;
    }
    h->version = p[1];
    h->stream = p[2];
    h->format = p[3];
    h->channels = p[4];
    h->name_len = p[5];
    h->samples_per_frame = get_u16(p + 6);
    h->device_id = get_u32(p + 8);
    h->rate_hz = get_u32(p + 12);
    h->offset = (int32_t)se_sample_get(p + 16, SE_FMT_S32);
    h->gain_milli = get_u32(p + 20);
    if (h->name_len > SE_HEADER_NAME_MAX || n != SE_HEADER_FIXED_LEN + h->name_len ||
        h->version != SE_PROTO_VERSION || se_format_size(h->format) == 0u || h->channels == 0u ||
        h->rate_hz == 0u) {
        return SE_ERR_MALFORMED;
    }
    for (size_t i = 0u; i < h->name_len; i++) {
        h->name[i] = (char)p[SE_HEADER_FIXED_LEN + i];
    }
    return SE_OK;
}

int se_parse_data(const uint8_t *p, size_t n, se_data *d)
{
    if (n < SE_DATA_FIXED_LEN || p[0] != SE_PKT_DATA) {
        return SE_ERR_MALFORMED;
    }
    d->stream = p[1];
    d->flags = p[2];
    d->format = p[3];
    d->channels = p[4];
    d->n = get_u16(p + 6);
    d->seq = get_u32(p + 8);
    d->sample_index = get_u32(p + 12);
    d->t_us = get_u64(p + 16);
    d->samples = p + SE_DATA_FIXED_LEN;
    if (p[5] != 0u || !data_valid(d->format, d->channels, d->n) ||
        n != SE_DATA_FIXED_LEN + (size_t)d->n * d->channels * se_format_size(d->format)) {
        return SE_ERR_MALFORMED;
    }
    return SE_OK;
}

int se_parse_command(const uint8_t *p, size_t n, se_command *c)
{
    if (n < 3u || p[0] != SE_PKT_COMMAND) {
        return SE_ERR_MALFORMED;
    }
    c->token = p[1];
    c->opcode = p[2];
    c->arg = 0u;
    if (c->opcode == SE_OP_SET_RATE) {
        if (n != 7u) {
            return SE_ERR_MALFORMED;
        }
        c->arg = get_u32(p + 3);
    } else if (n != 3u) {
        return SE_ERR_MALFORMED;
    }
    return SE_OK;
}

int se_parse_ack(const uint8_t *p, size_t n, se_ack *a)
{
    if (n != SE_ACK_LEN || p[0] != SE_PKT_ACK) {
        return SE_ERR_MALFORMED;
    }
    a->token = p[1];
    a->opcode = p[2];
    a->status = p[3];
    a->value = get_u32(p + 4);
    return SE_OK;
}
