/* edge-ecg wire protocol v1: reference encoder. See encoder.h and ../PROTOCOL.md. */
#include "encoder.h"

#include <string.h>

/* CRC-32/ISO-HDLC: poly 0x04C11DB7, processed reflected (0xEDB88320), init/xorout ~0. */
#define CRC_POLY_REFLECTED 0xEDB88320u

/* One table entry, computed on the fly (8 shift/xor steps): no RAM table needed. */
static uint32_t crc32_entry(uint32_t c)
{
    int k;
    for (k = 0; k < 8; k++) {
        c = (c & 1u) ? (CRC_POLY_REFLECTED ^ (c >> 1)) : (c >> 1);
    }
    return c;
}

uint32_t ecg_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    /* Bitwise per byte through crc32_entry: 8 shifts per byte, no RAM table. A firmware with
     * flash to spare swaps in a 256-entry table or the MCU's CRC unit; the result is the same. */
    size_t i;
    crc = ~crc;
    for (i = 0; i < len; i++) {
        crc = crc32_entry((crc ^ data[i]) & 0xFFu) ^ (crc >> 8);
    }
    return ~crc;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static size_t put_header(uint8_t *out, uint8_t type, uint8_t flags, uint16_t body_len)
{
    out[0] = ECG_SYNC0;
    out[1] = ECG_SYNC1;
    out[2] = ECG_VERSION;
    out[3] = type;
    out[4] = flags;
    out[5] = 0u; /* reserved */
    put_u16(out + 6, body_len);
    return ECG_HEADER_LEN;
}

/* Append the CRC over out[2 .. len) and return the full message length. */
static int finish(uint8_t *out, size_t len)
{
    put_u32(out + len, ecg_crc32(0u, out + 2, len - 2u));
    return (int)(len + ECG_CRC_LEN);
}

size_t ecg_data_frame_size(uint8_t n_leads, uint8_t samples_per_frame, uint8_t format)
{
    size_t body;
    if (n_leads < 1u || n_leads > ECG_MAX_LEADS || samples_per_frame < 1u ||
        (format != ECG_FMT_INT16 && format != ECG_FMT_INT24)) {
        return 0u;
    }
    body = ECG_DATA_HEADER_LEN + (size_t)n_leads * samples_per_frame * format;
    if (body > ECG_MAX_BODY_LEN) {
        return 0u;
    }
    return ECG_HEADER_LEN + body + ECG_CRC_LEN;
}

int ecg_encode_data(uint8_t *out, size_t out_cap, uint16_t seq, uint32_t timestamp_us,
                    uint8_t flags, uint8_t n_leads, uint8_t samples_per_frame, uint8_t format,
                    const int32_t *samples)
{
    size_t total = ecg_data_frame_size(n_leads, samples_per_frame, format);
    size_t n = (size_t)n_leads * samples_per_frame;
    size_t i, pos;
    int32_t lo = (format == ECG_FMT_INT16) ? -32768 : -8388608;
    int32_t hi = (format == ECG_FMT_INT16) ? 32767 : 8388607;

    if (total == 0u || samples == NULL) {
        return ECG_ERR_ARGUMENT;
    }
    if (out == NULL || out_cap < total) {
        return ECG_ERR_BUFFER;
    }
    for (i = 0; i < n; i++) {
        if (samples[i] < lo || samples[i] > hi) {
            return ECG_ERR_RANGE;
        }
    }
    pos = put_header(out, ECG_MSG_DATA, flags, (uint16_t)(total - ECG_HEADER_LEN - ECG_CRC_LEN));
    put_u16(out + pos, seq);
    put_u32(out + pos + 2, timestamp_us);
    out[pos + 6] = n_leads;
    out[pos + 7] = samples_per_frame;
    out[pos + 8] = format;
    pos += ECG_DATA_HEADER_LEN;
    for (i = 0; i < n; i++) {
        /* Two's complement little-endian: the low `format` bytes of the 32-bit value. */
        uint32_t v = (uint32_t)samples[i];
        out[pos++] = (uint8_t)(v & 0xFFu);
        out[pos++] = (uint8_t)((v >> 8) & 0xFFu);
        if (format == ECG_FMT_INT24) {
            out[pos++] = (uint8_t)((v >> 16) & 0xFFu);
        }
    }
    return finish(out, pos);
}

static int put_pstring(uint8_t *out, size_t cap, size_t *pos, const char *s)
{
    size_t n = (s == NULL) ? 0u : strlen(s);
    if (n > 255u) {
        return ECG_ERR_ARGUMENT;
    }
    if (*pos + 1u + n > cap) {
        return ECG_ERR_BUFFER;
    }
    out[(*pos)++] = (uint8_t)n;
    if (n > 0u) {
        memcpy(out + *pos, s, n);
    }
    *pos += n;
    return 0;
}

int ecg_encode_device_info(uint8_t *out, size_t out_cap, const ecg_device_info_t *info)
{
    size_t pos = ECG_HEADER_LEN;
    uint8_t k;
    int rc;

    if (info == NULL || info->n_leads < 1u || info->n_leads > ECG_MAX_LEADS ||
        info->leads == NULL) {
        return ECG_ERR_ARGUMENT;
    }
    if (out == NULL || out_cap < ECG_HEADER_LEN + 10u + ECG_CRC_LEN) {
        return ECG_ERR_BUFFER;
    }
    put_u32(out + pos, info->fs_millihz);
    out[pos + 4] = info->n_leads;
    out[pos + 5] = info->format;
    out[pos + 6] = info->samples_per_frame;
    out[pos + 7] = info->fw_major;
    out[pos + 8] = info->fw_minor;
    out[pos + 9] = info->fw_patch;
    pos += 10u;
    if ((rc = put_pstring(out, out_cap, &pos, info->device)) != 0) {
        return rc;
    }
    for (k = 0; k < info->n_leads; k++) {
        uint32_t gain_bits;
        if ((rc = put_pstring(out, out_cap, &pos, info->leads[k].name)) != 0) {
            return rc;
        }
        if (pos + 8u + ECG_CRC_LEN > out_cap) {
            return ECG_ERR_BUFFER;
        }
        /* IEEE-754 binary32 little-endian; memcpy is the portable type pun. */
        memcpy(&gain_bits, &info->leads[k].gain, sizeof gain_bits);
        put_u32(out + pos, gain_bits);
        put_u32(out + pos + 4, (uint32_t)info->leads[k].baseline);
        pos += 8u;
    }
    if (pos - ECG_HEADER_LEN > ECG_MAX_BODY_LEN || pos + ECG_CRC_LEN > out_cap) {
        return ECG_ERR_BUFFER;
    }
    put_header(out, ECG_MSG_DEVICE_INFO, 0u, (uint16_t)(pos - ECG_HEADER_LEN));
    return finish(out, pos);
}

int ecg_encode_ack(uint8_t *out, size_t out_cap, uint8_t command, uint8_t token, uint8_t status)
{
    size_t pos;
    if (out == NULL || out_cap < ECG_HEADER_LEN + 3u + ECG_CRC_LEN) {
        return ECG_ERR_BUFFER;
    }
    pos = put_header(out, ECG_MSG_ACK, 0u, 3u);
    out[pos] = command;
    out[pos + 1] = token;
    out[pos + 2] = status;
    return finish(out, pos + 3u);
}

int ecg_parse_command(const uint8_t *msg, size_t len, ecg_command_t *cmd)
{
    size_t body_len;
    uint32_t crc;
    if (msg == NULL || cmd == NULL || len < ECG_HEADER_LEN + 2u + ECG_CRC_LEN) {
        return ECG_ERR_FRAME;
    }
    if (msg[0] != ECG_SYNC0 || msg[1] != ECG_SYNC1 || msg[2] != ECG_VERSION ||
        msg[3] != ECG_MSG_COMMAND || msg[5] != 0u) {
        return ECG_ERR_FRAME;
    }
    body_len = (size_t)msg[6] | ((size_t)msg[7] << 8);
    if (body_len < 2u || len != ECG_HEADER_LEN + body_len + ECG_CRC_LEN) {
        return ECG_ERR_FRAME;
    }
    crc = (uint32_t)msg[len - 4] | ((uint32_t)msg[len - 3] << 8) | ((uint32_t)msg[len - 2] << 16) |
          ((uint32_t)msg[len - 1] << 24);
    if (crc != ecg_crc32(0u, msg + 2, ECG_HEADER_LEN - 2u + body_len)) {
        return ECG_ERR_CRC;
    }
    cmd->command = msg[ECG_HEADER_LEN];
    cmd->token = msg[ECG_HEADER_LEN + 1];
    cmd->args = msg + ECG_HEADER_LEN + 2;
    cmd->args_len = body_len - 2u;
    return 0;
}
