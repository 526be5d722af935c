/*
 * encoder_demo: read integer samples (text, time-major, whitespace separated) on stdin and write
 * a DEVICE_INFO message followed by DATA frames on stdout: the reference encoder end to end,
 * for round-trip tests against the Python decoder and for piping into a serial port.
 *
 * usage: encoder_demo N_LEADS SAMPLES_PER_FRAME FORMAT(16|24) [FIRST_SEQ [FS_HZ [GAIN]]]
 * A final partial frame is sent with fewer samples (its samples_per_frame field says so).
 * Static buffers only, as on the microcontroller.
 */
#include <stdio.h>
#include <stdlib.h>

#include "encoder.h"

#define MAX_FRAME (ECG_HEADER_LEN + ECG_MAX_BODY_LEN + ECG_CRC_LEN)

static int32_t samples[ECG_MAX_BODY_LEN];
static uint8_t frame[MAX_FRAME];
static const char *const lead_names[ECG_MAX_LEADS] = {
    "I", "II", "V1", "V2", "V3", "V4", "V5", "V6", "III", "aVR", "aVL", "aVF",
    "L13", "L14", "L15", "L16", "L17", "L18", "L19", "L20", "L21", "L22", "L23", "L24",
    "L25", "L26", "L27", "L28", "L29", "L30", "L31", "L32"};
static ecg_lead_t leads[ECG_MAX_LEADS];

static int emit(int len)
{
    if (len < 0) {
        fprintf(stderr, "encoder_demo: encoder error %d\n", len);
        return 1;
    }
    if (fwrite(frame, 1, (size_t)len, stdout) != (size_t)len) {
        fprintf(stderr, "encoder_demo: write failed\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    long n_leads, spf, bits, fs_hz = 500;
    unsigned long seq = 0;
    double gain = 1000.0;
    uint8_t format;
    uint64_t frame_index = 0;
    ecg_device_info_t info;
    long k;

    if (argc < 4) {
        fprintf(stderr, "usage: %s N_LEADS SAMPLES_PER_FRAME 16|24 [FIRST_SEQ [FS_HZ [GAIN]]]\n",
                argv[0]);
        return 2;
    }
    n_leads = strtol(argv[1], NULL, 10);
    spf = strtol(argv[2], NULL, 10);
    bits = strtol(argv[3], NULL, 10);
    if (argc > 4) seq = strtoul(argv[4], NULL, 10);
    if (argc > 5) fs_hz = strtol(argv[5], NULL, 10);
    if (argc > 6) gain = strtod(argv[6], NULL);
    format = (bits == 16) ? ECG_FMT_INT16 : ECG_FMT_INT24;
    if ((bits != 16 && bits != 24) || fs_hz < 1 ||
        ecg_data_frame_size((uint8_t)n_leads, (uint8_t)spf, format) == 0u || n_leads > 255 ||
        spf > 255) {
        fprintf(stderr, "encoder_demo: bad arguments (leads 1..32, spf 1..255, format 16|24)\n");
        return 2;
    }
    for (k = 0; k < n_leads; k++) {
        leads[k].name = lead_names[k];
        leads[k].gain = (float)gain;
        leads[k].baseline = 0;
    }
    info.fs_millihz = (uint32_t)(fs_hz * 1000);
    info.format = format;
    info.samples_per_frame = (uint8_t)spf;
    info.fw_major = 1;
    info.fw_minor = 0;
    info.fw_patch = 0;
    info.device = "edge-ecg reference encoder";
    info.n_leads = (uint8_t)n_leads;
    info.leads = leads;
    if (emit(ecg_encode_device_info(frame, sizeof frame, &info)) != 0) {
        return 1;
    }

    for (;;) {
        long got = 0, need = n_leads * spf;
        int eof = 0;
        while (got < need) {
            long v;
            if (scanf("%ld", &v) != 1) {
                eof = 1;
                break;
            }
            samples[got++] = (int32_t)v;
        }
        if (got % n_leads != 0) {
            fprintf(stderr, "encoder_demo: input ends inside a sample (%ld values)\n", got);
            return 1;
        }
        if (got > 0) {
            uint64_t ts = frame_index * (uint64_t)spf * 1000000u / (uint64_t)fs_hz;
            uint8_t flags = (frame_index == 0u) ? ECG_FLAG_STREAM_START : 0u;
            if (emit(ecg_encode_data(frame, sizeof frame, (uint16_t)(seq & 0xFFFFu),
                                     (uint32_t)(ts & 0xFFFFFFFFu), flags, (uint8_t)n_leads,
                                     (uint8_t)(got / n_leads), format, samples)) != 0) {
                return 1;
            }
            seq++;
            frame_index++;
        }
        if (eof) {
            break;
        }
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
