/*
 * edge-ecg wire protocol v1: reference frame encoder for microcontroller firmware.
 *
 * Portable C99, no dynamic allocation, no floating point except in the device-info gain field,
 * no dependency beyond <stdint.h>/<stddef.h>/<string.h>. The caller owns every buffer; each
 * function writes one complete message (sync .. CRC) into `out` and returns its length, or a
 * negative ecg_status_t when the arguments or the buffer size are wrong. Byte layout and
 * rationale: ../PROTOCOL.md. The Python host decoder (firmware_bridge/decoder.py) reads it.
 */
#ifndef EDGE_ECG_ENCODER_H
#define EDGE_ECG_ENCODER_H

#include <stddef.h>
#include <stdint.h>

#define ECG_SYNC0 0xA5u
#define ECG_SYNC1 0x5Au
#define ECG_VERSION 1u
#define ECG_HEADER_LEN 8u
#define ECG_DATA_HEADER_LEN 9u
#define ECG_CRC_LEN 4u
#define ECG_FRAME_OVERHEAD (ECG_HEADER_LEN + ECG_DATA_HEADER_LEN + ECG_CRC_LEN)
#define ECG_MAX_BODY_LEN 4096u
#define ECG_MAX_LEADS 32u

/* Message types (envelope byte 3). */
enum { ECG_MSG_DATA = 0x01, ECG_MSG_DEVICE_INFO = 0x02, ECG_MSG_COMMAND = 0x03, ECG_MSG_ACK = 0x04 };
/* Sample formats: value = bytes per sample, two's complement little-endian. */
enum { ECG_FMT_INT16 = 2, ECG_FMT_INT24 = 3 };
/* DATA flags (envelope byte 4). */
enum { ECG_FLAG_STREAM_START = 0x01, ECG_FLAG_LEAD_OFF = 0x02, ECG_FLAG_OVERRUN = 0x04 };
/* Host commands and acknowledgement status. */
enum { ECG_CMD_PING = 0x01, ECG_CMD_START = 0x02, ECG_CMD_STOP = 0x03, ECG_CMD_CONFIGURE = 0x04,
       ECG_CMD_GET_INFO = 0x05 };
enum { ECG_ACK_OK = 0x00, ECG_ACK_UNKNOWN_COMMAND = 0x01, ECG_ACK_BAD_ARGUMENT = 0x02,
       ECG_ACK_BAD_STATE = 0x03 };

typedef enum {
    ECG_ERR_BUFFER = -1,   /* `out` too small: ecg_data_frame_size() tells how much is needed */
    ECG_ERR_ARGUMENT = -2, /* lead count, samples per frame or format out of range */
    ECG_ERR_RANGE = -3,    /* a sample does not fit the format (never wrapped silently) */
    ECG_ERR_CRC = -4,      /* ecg_parse_command: CRC mismatch */
    ECG_ERR_FRAME = -5     /* ecg_parse_command: not a well-formed COMMAND message */
} ecg_status_t;

/* One lead as announced in DEVICE_INFO. */
typedef struct {
    const char *name;      /* "I", "II", "V1", ... (ASCII, at most 255 bytes) */
    float gain;            /* counts per millivolt */
    int32_t baseline;      /* counts at 0 mV */
} ecg_lead_t;

typedef struct {
    uint32_t fs_millihz;   /* sample rate in millihertz: 500000 = 500 Hz */
    uint8_t format;        /* ECG_FMT_INT16 or ECG_FMT_INT24 */
    uint8_t samples_per_frame;
    uint8_t fw_major, fw_minor, fw_patch;
    const char *device;    /* model name, ASCII */
    uint8_t n_leads;
    const ecg_lead_t *leads;
} ecg_device_info_t;

/* A parsed host command. `args` points into the caller's buffer. */
typedef struct {
    uint8_t command;
    uint8_t token;
    const uint8_t *args;
    size_t args_len;
} ecg_command_t;

/* CRC-32/ISO-HDLC, continuable: pass 0 to start, the previous result to continue. */
uint32_t ecg_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Bytes one DATA frame needs; 0 when the arguments are out of range. */
size_t ecg_data_frame_size(uint8_t n_leads, uint8_t samples_per_frame, uint8_t format);

/*
 * One DATA frame. `samples` holds samples_per_frame x n_leads counts, time-major
 * (samples[t * n_leads + lead]). Returns the frame length or a negative ecg_status_t.
 */
int ecg_encode_data(uint8_t *out, size_t out_cap, uint16_t seq, uint32_t timestamp_us,
                    uint8_t flags, uint8_t n_leads, uint8_t samples_per_frame, uint8_t format,
                    const int32_t *samples);

int ecg_encode_device_info(uint8_t *out, size_t out_cap, const ecg_device_info_t *info);

int ecg_encode_ack(uint8_t *out, size_t out_cap, uint8_t command, uint8_t token, uint8_t status);

/*
 * Parse one complete COMMAND message (sync .. CRC) received from the host. The firmware's UART
 * receiver collects bytes from a sync word until 8 + body_len + 4 bytes are in. Returns 0 or
 * a negative ecg_status_t.
 */
int ecg_parse_command(const uint8_t *msg, size_t len, ecg_command_t *cmd);

#endif /* EDGE_ECG_ENCODER_H */
