/*
 * nce_device: what the 1NCE blueprints do, on libcoap.
 *
 *   1. onboarding (the SDK's os_auth): plain CoAP GET /bootstrap -> "ICCID,PSK[,coaps URL]"
 *   2. every INTERVAL seconds: a reading packed by the encoder generated from the Energy Saver
 *      template (examples/blueprint-template.json), POSTed over CoAP with DTLS 1.2 PSK
 *      (identity = ICCID, key = the PSK's ASCII bytes).
 *
 * Build: make -C firmware_examples/c      (needs Debian's libcoap3-dev)
 * Run:   ./nce_device -h 127.0.0.1 -p 5683 -s 5684 -a 127.0.0.10 -n 3 -i 1 -t sensors
 */
#include <arpa/inet.h>
#include <coap3/coap.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SDK_URI_HOST "coap.os.1nce.com" /* the SDK names 1NCE's host; the gateway ignores it */
#define WAIT_MS 15000

/* ---- the payload: packed by the encoder generated from the template ---------------------
 * build/gen/blueprint.[ch] are written by `nce-gateway template codegen` from
 * examples/blueprint-template.json (see the Makefile), the template the gateway translates
 * with: the firmware and the gateway cannot disagree about the bytes. */
#include "blueprint.h"

/* ---- one request at a time over a libcoap session ------------------------------------- */

static int done;
static coap_pdu_code_t answer_code;
static uint8_t answer[512];
static size_t answer_len;

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent, const coap_pdu_t *received,
                                   const coap_mid_t mid) {
    (void)session; (void)sent; (void)mid;
    size_t len = 0;
    const uint8_t *data = NULL;
    answer_code = coap_pdu_get_code(received);
    answer_len = 0;
    if (coap_get_data(received, &len, &data) && data) {
        answer_len = len < sizeof(answer) - 1 ? len : sizeof(answer) - 1;
        memcpy(answer, data, answer_len);
    }
    answer[answer_len] = 0;
    done = 1;
    return COAP_RESPONSE_OK;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent, const coap_nack_reason_t reason,
                    const coap_mid_t mid) {
    (void)session; (void)sent; (void)mid;
    fprintf(stderr, "request failed (libcoap NACK reason %d)\n", (int)reason);
    done = -1;
}

static int request(coap_context_t *ctx, coap_session_t *session, coap_pdu_type_t type, coap_pdu_code_t code,
                   const char *host, const char *path, const char *query, const uint8_t *payload, size_t len) {
    uint8_t token[8];
    size_t token_len;
    coap_pdu_t *pdu = coap_pdu_init(type, code, coap_new_message_id(session), coap_session_max_pdu_size(session));
    if (!pdu) return -1;
    coap_session_new_token(session, &token_len, token);
    coap_add_token(pdu, token_len, token);
    if (host) coap_add_option(pdu, COAP_OPTION_URI_HOST, strlen(host), (const uint8_t *)host);
    if (path) coap_add_option(pdu, COAP_OPTION_URI_PATH, strlen(path), (const uint8_t *)path);
    if (query) coap_add_option(pdu, COAP_OPTION_URI_QUERY, strlen(query), (const uint8_t *)query);
    if (payload && len) coap_add_data(pdu, len, payload);
    done = 0;
    if (coap_send(session, pdu) == COAP_INVALID_MID) return -1;
    for (int waited = 0; !done && waited < WAIT_MS; waited += 100) coap_io_process(ctx, 100);
    return done == 1 ? 0 : -1;
}

static int address(coap_address_t *addr, const char *ip, uint16_t port) {
    coap_address_init(addr);
    addr->size = sizeof(struct sockaddr_in);
    addr->addr.sin.sin_family = AF_INET;
    addr->addr.sin.sin_port = htons(port);
    return inet_pton(AF_INET, ip, &addr->addr.sin.sin_addr) == 1 ? 0 : -1;
}

static void usage(void) {
    fprintf(stderr, "usage: nce_device -h HOST -a SOURCE_IP [-p COAP_PORT] [-s COAPS_PORT] [-n COUNT] "
                    "[-i INTERVAL_S] [-t TOPIC]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *host = NULL, *source = NULL, *topic = NULL;
    int coap_port = 5683, coaps_port = 5684, count = 1, interval = 10, opt;
    while ((opt = getopt(argc, argv, "h:a:p:s:n:i:t:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'a': source = optarg; break;
        case 'p': coap_port = atoi(optarg); break;
        case 's': coaps_port = atoi(optarg); break;
        case 'n': count = atoi(optarg); break;
        case 'i': interval = atoi(optarg); break;
        case 't': topic = optarg; break;
        default: usage();
        }
    }
    if (!host || !source) usage();

    coap_address_t local, plain, secure;
    if (address(&local, source, 0) || address(&plain, host, coap_port) || address(&secure, host, coaps_port)) {
        fprintf(stderr, "bad address\n");
        return 2;
    }
    coap_startup();
    coap_set_log_level(LOG_WARNING);
    coap_context_t *ctx = coap_new_context(NULL);
    coap_register_response_handler(ctx, on_response);
    coap_register_nack_handler(ctx, on_nack);

    /* 1. onboarding, like os_auth: NON GET /bootstrap with the SDK's Uri-Host */
    coap_session_t *session = coap_new_client_session(ctx, &local, &plain, COAP_PROTO_UDP);
    if (!session || request(ctx, session, COAP_MESSAGE_NON, COAP_REQUEST_CODE_GET, SDK_URI_HOST, "bootstrap",
                            NULL, NULL, 0) != 0) {
        fprintf(stderr, "onboarding failed: no answer\n");
        return 1;
    }
    if (answer_code != COAP_RESPONSE_CODE(205)) {
        fprintf(stderr, "onboarding failed: %d.%02d %s\n", answer_code >> 5, answer_code & 31, answer);
        return 1;
    }
    coap_session_release(session);
    char *iccid = strtok((char *)answer, ","), *psk = strtok(NULL, ",");
    if (!iccid || !psk) {
        fprintf(stderr, "onboarding answer is not ICCID,PSK\n");
        return 1;
    }
    static char identity[32], key[64];
    snprintf(identity, sizeof(identity), "%s", iccid);
    snprintf(key, sizeof(key), "%s", psk);
    printf("onboarded: ICCID %s, PSK of %zu characters\n", identity, strlen(key));

    /* 2. CoAP over DTLS with the PSK */
    coap_dtls_cpsk_t setup;
    memset(&setup, 0, sizeof(setup));
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    setup.psk_info.identity.s = (const uint8_t *)identity;
    setup.psk_info.identity.length = strlen(identity);
    setup.psk_info.key.s = (const uint8_t *)key;
    setup.psk_info.key.length = strlen(key);
    session = coap_new_client_session_psk2(ctx, &local, &secure, COAP_PROTO_DTLS, &setup);
    if (!session) {
        fprintf(stderr, "DTLS session could not be created\n");
        return 1;
    }
    char query[300];
    if (topic) snprintf(query, sizeof(query), "t=%s", topic);
    int failures = 0;
    for (int i = 0; i < count; i++) {
        /* the SDK blueprint's Energy Saver reading: selector 1, battery %, signal, firmware version */
        blueprint_values_t reading;
        memset(&reading, 0, sizeof(reading));
        reading.sel_0 = 1;
        reading.battery_level = (uint8_t)(99 - i);
        reading.signal_strength = 84;
        memcpy(reading.software_version, "2.2.1", sizeof(reading.software_version));
        uint8_t payload[BLUEPRINT_MAX_LENGTH];
        int encoded = blueprint_encode(&reading, payload, sizeof(payload));
        if (encoded < 0) {
            fprintf(stderr, "reading %d: the values do not fit the template (error %d)\n", i, encoded);
            failures++;
            continue;
        }
        size_t len = (size_t)encoded;
        if (request(ctx, session, COAP_MESSAGE_CON, COAP_REQUEST_CODE_POST, NULL, NULL, topic ? query : NULL,
                    payload, len) != 0) {
            fprintf(stderr, "reading %d: no answer\n", i);
            failures++;
        } else {
            printf("reading %d: %zu bytes -> %d.%02d\n", i, len, answer_code >> 5, answer_code & 31);
            if (answer_code != COAP_RESPONSE_CODE(204)) failures++;
        }
        if (i + 1 < count) sleep((unsigned)interval);
    }
    coap_session_release(session);
    coap_free_context(ctx);
    coap_cleanup();
    return failures ? 1 : 0;
}
