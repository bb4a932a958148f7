/* A small AML (ACPI Machine Language) byte-code writer for the DSDT, following the ACPI 6.x spec, chapters
 * 19-20 (AML grammar) and 6.4 (resource descriptors). */
#ifndef DESKVM_AML_H
#define DESKVM_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* AML opcodes and prefixes (ACPI 6.x, 20.2). */
#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0A
#define AML_WORD_PREFIX 0x0B
#define AML_DWORD_PREFIX 0x0C
#define AML_STRING_PREFIX 0x0D
#define AML_QWORD_PREFIX 0x0E
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_METHOD_OP 0x14
#define AML_DUAL_NAME_PREFIX 0x2E
#define AML_MULTI_NAME_PREFIX 0x2F
#define AML_EXT_OP_PREFIX 0x5B
#define AML_EXT_DEVICE_OP 0x82
#define AML_ROOT_CHAR 0x5C
#define AML_PARENT_PREFIX_CHAR 0x5E
#define AML_RETURN_OP 0xA4
#define AML_ONES_OP 0xFF

/* The largest value a PkgLength can hold (28 bits). */
#define AML_PKGLENGTH_MAX 0x0FFFFFFFu
#define AML_MAX_DEPTH 16

/* Resource descriptor bits (ACPI 6.x, 6.4.3 and 6.4.3.5). */
#define AML_RES_END_TAG 0x79
#define AML_RES_IRQ_NOFLAGS 0x22 /* small item 4, length 2 */
#define AML_RES_IO 0x47          /* small item 8, length 7 */
#define AML_RES_MEMORY32_FIXED 0x86
#define AML_RES_DWORD_ADDRESS 0x87
#define AML_RES_WORD_ADDRESS 0x88
#define AML_RES_EXT_INTERRUPT 0x89
#define AML_RES_QWORD_ADDRESS 0x8A

#define AML_ADDR_SPACE_MEMORY 0
#define AML_ADDR_SPACE_IO 1
#define AML_ADDR_SPACE_BUS_NUMBER 2

/* Address space descriptor general flags. */
#define AML_ADDR_CONSUMER (1u << 0) /* clear: the device produces (bridges) the range */
#define AML_ADDR_MIN_FIXED (1u << 2)
#define AML_ADDR_MAX_FIXED (1u << 3)

/* Memory range type-specific flags: _RW and _MEM. */
enum aml_mem_cache {
    AML_MEM_NON_CACHEABLE = 0,
    AML_MEM_CACHEABLE = 1,
    AML_MEM_WRITE_COMBINING = 2,
    AML_MEM_PREFETCHABLE = 3,
};

/* Extended interrupt descriptor flags. */
#define AML_INT_CONSUMER (1u << 0)
#define AML_INT_EDGE (1u << 1)
#define AML_INT_ACTIVE_LOW (1u << 2)
#define AML_INT_SHARED (1u << 3)

/* The bytes written so far and the blocks (Scope, Device, Method, Package, Buffer) still open. A block's
 * PkgLength is inserted when it is closed, in its shortest form. Any misuse (bad name, too deep, too long)
 * sets `failed`; later calls then do nothing and the output must be discarded. */
struct aml {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;
    unsigned depth;
    struct {
        size_t mark; /* where the PkgLength goes */
        uint8_t kind;
    } open[AML_MAX_DEPTH];
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);

void aml_raw(struct aml *a, const void *bytes, size_t n);
void aml_u8(struct aml *a, uint8_t v);
void aml_u16(struct aml *a, uint16_t v);
void aml_u32(struct aml *a, uint32_t v);
void aml_u64(struct aml *a, uint64_t v);

/* PkgLength for a block whose contents after the PkgLength are body_len bytes: writes 1-4 bytes to out and
 * returns how many, or 0 if it does not fit in 28 bits. */
size_t aml_pkglength_encode(uint64_t body_len, uint8_t out[4]);

/* A NameString such as "\\_SB.PCI0", "^FOO" or "_S5": segments are padded to 4 characters with '_'. */
void aml_name_string(struct aml *a, const char *path);
/* An Integer in its shortest encoding: ZeroOp, OneOp, OnesOp (all 64 bits set), or a Byte/Word/DWord/QWord.
 */
void aml_integer(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
/* The 32-bit compressed EISA ID of "AAA####" (3 upper-case letters, 4 hex digits). False for a malformed id.
 */
bool aml_eisaid_encode(const char *id, uint32_t *out);
void aml_eisaid(struct aml *a, const char *id);

/* Name(name, <next object>) and Return(<next object>): the caller writes the value right after. */
void aml_name(struct aml *a, const char *name);
void aml_return(struct aml *a);
/* Shorthands for Name(name, value). */
void aml_name_integer(struct aml *a, const char *name, uint64_t v);
void aml_name_eisaid(struct aml *a, const char *name, const char *id);
void aml_name_str(struct aml *a, const char *name, const char *s);

/* Blocks: each *_begin is closed by aml_end. */
void aml_scope_begin(struct aml *a, const char *name);
void aml_device_begin(struct aml *a, const char *name);
void aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized);
void aml_package_begin(struct aml *a, unsigned nelements);
void aml_buffer_begin(struct aml *a);
void aml_end(struct aml *a);

/* ResourceTemplate(): a Buffer of resource descriptors closed by an end tag whose checksum makes the
 * template's bytes sum to zero. Descriptors may only be written inside one. */
void aml_resources_begin(struct aml *a);
void aml_resources_end(struct aml *a);
void aml_res_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void aml_res_dword_memory(struct aml *a, enum aml_mem_cache cache, uint32_t min, uint32_t max);
void aml_res_qword_memory(struct aml *a, enum aml_mem_cache cache, uint64_t min, uint64_t max);
void aml_res_memory32_fixed(struct aml *a, bool writable, uint32_t base, uint32_t len);
void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi);
void aml_res_irq_noflags(struct aml *a, unsigned irq);

#endif
