/* libFuzzer target for the software CPU's instruction decoder, which parses guest bytes: every input is decoded in
 * 16-, 32- and 64-bit mode with every available length. Beyond sanitizer findings it traps when the decoder reads
 * past what it was given (the length must not depend on later bytes), reports a length outside 1..15, or gives a
 * different answer for the same bytes with more bytes after them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "emu/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 32)
        size = 32;
    static const enum x86_mode modes[] = {X86_MODE_16, X86_MODE_32, X86_MODE_64};
    for (size_t m = 0; m < 3; m++) {
        struct x86_insn full;
        int len = x86_decode(data, size, modes[m], &full);
        if (len > 0 && (len > X86_MAX_INSN_LEN || (size_t)len > size))
            __builtin_trap();
        if (len <= 0)
            continue;
        /* Exactly the instruction's bytes give the same decoding; any fewer say "need more". */
        struct x86_insn exact;
        if (x86_decode(data, (size_t)len, modes[m], &exact) != len || memcmp(&exact, &full, sizeof(full)) != 0)
            __builtin_trap();
        for (int cut = 0; cut < len; cut++) {
            struct x86_insn part;
            if (x86_decode(data, (size_t)cut, modes[m], &part) != X86_DECODE_NEED_MORE)
                __builtin_trap();
        }
    }
    return 0;
}
