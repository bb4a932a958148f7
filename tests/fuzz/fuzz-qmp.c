/* libFuzzer target for everything a QMP client feeds deskvm: stream framing (json_stream), JSON parsing,
 * envelope and argument checks (qmp_dispatch) and the VM commands (qmp_vm). The input is split at 0xff bytes into
 * separate reads to exercise texts that span reads. */
#include <stdint.h>
#include <string.h>

#include "json_stream.h"
#include "log.h"
#include "qmp_dispatch.h"
#include "qmp_vm.h"
#include "vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
    struct qmp_dispatcher *d;
    struct qmp_session session;
    size_t responses;
};

static void on_text(void *opaque, const char *text, size_t len, const char *error)
{
    struct fuzz_ctx *ctx = opaque;
    JsonNode *resp = qmp_dispatcher_handle(ctx->d, &ctx->session, text, len, error);
    size_t n;
    char *line = qmp_to_line(resp, &n);
    /* Every response is one line of JSON: the framing promise QMP clients rely on. */
    if (!line || memchr(line, '\n', n - 1) || !(JSON_NODE_HOLDS_OBJECT(resp)))
        __builtin_trap();
    g_free(line);
    json_node_unref(resp);
    ctx->responses++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_LEVEL_ERROR);
        quiet = true;
    }
    struct vm *vm = vm_new("fuzz", false);
    struct fuzz_ctx ctx = {.d = qmp_dispatcher_new()};
    struct qmp_vm *q = qmp_vm_attach(vm, ctx.d, NULL);
    struct json_stream js;
    json_stream_init(&js, 4096, 32, on_text, &ctx);

    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || data[i] == 0xff) {
            json_stream_feed(&js, (const char *)data + start, i - start);
            start = i + 1;
        }
    }
    json_stream_feed(&js, "\n", 1);
    /* Run what commands deferred (quit). */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    json_stream_destroy(&js);
    qmp_vm_detach(q);
    qmp_dispatcher_free(ctx.d);
    vm_free(vm);
    return 0;
}
