/* Proves the AML writer's encodings byte for byte: integers, name strings, PkgLengths, blocks, EISA IDs and
 * resource templates, and that misuse marks the output failed instead of producing bad AML. */
#include <string.h>

#include <glib.h>

#include "aml.h"
#include "guest_memory.h"

static void assert_bytes(const struct aml *a, const uint8_t *want, size_t n)
{
    g_assert_false(a->failed);
    g_assert_cmpmem(a->data, a->len, want, n);
}

static void test_integer_encodings(void)
{
    static const struct {
        uint64_t v;
        uint8_t bytes[9];
        size_t n;
    } cases[] = {
        {0, {AML_ZERO_OP}, 1},
        {1, {AML_ONE_OP}, 1},
        {2, {AML_BYTE_PREFIX, 2}, 2},
        {0xFF, {AML_BYTE_PREFIX, 0xFF}, 2},
        {0x100, {AML_WORD_PREFIX, 0x00, 0x01}, 3},
        {0xFFFF, {AML_WORD_PREFIX, 0xFF, 0xFF}, 3},
        {0x10000, {AML_DWORD_PREFIX, 0x00, 0x00, 0x01, 0x00}, 5},
        {0xFFFFFFFF, {AML_DWORD_PREFIX, 0xFF, 0xFF, 0xFF, 0xFF}, 5},
        {1ull << 32, {AML_QWORD_PREFIX, 0, 0, 0, 0, 1, 0, 0, 0}, 9},
        {0xFFFFFFFFFFFFFFFEull, {AML_QWORD_PREFIX, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 9},
        {UINT64_MAX, {AML_ONES_OP}, 1},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct aml a;
        aml_init(&a);
        aml_integer(&a, cases[i].v);
        assert_bytes(&a, cases[i].bytes, cases[i].n);
        aml_free(&a);
    }
}

static void test_name_strings(void)
{
    static const struct {
        const char *path;
        const char *bytes;
        size_t n;
    } cases[] = {
        {"\\", "\x5C\x00", 2},
        {"", "\x00", 1},
        {"_SB", "_SB_", 4},
        {"A", "A___", 4},
        {"PCI0", "PCI0", 4},
        {"\\_SB", "\\_SB_", 5},
        {"\\_SB.PCI0", "\\\x2E_SB_PCI0", 10},
        {"\\_SB.PCI0.COM1", "\\\x2F\x03_SB_PCI0COM1", 15},
        {"^FOO", "^FOO_", 5},
        {"^^X.Y", "^^\x2EX___Y___", 11},
        {"_S5", "_S5_", 4},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct aml a;
        aml_init(&a);
        aml_name_string(&a, cases[i].path);
        assert_bytes(&a, (const uint8_t *)cases[i].bytes, cases[i].n);
        aml_free(&a);
    }
}

static void test_name_strings_bad(void)
{
    static const char *const bad[] = {"1ABC", "ABCDE", "abc", "A..B", "A.", ".A", "\\\\A", "A-B", "\\^A"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        struct aml a;
        aml_init(&a);
        aml_name_string(&a, bad[i]);
        g_assert_true(a.failed);
        aml_free(&a);
    }
}

static void test_pkglength_forms(void)
{
    static const struct {
        uint64_t body;
        size_t n;
        uint8_t bytes[4];
    } cases[] = {
        {0, 1, {0x01}},
        {62, 1, {0x3F}},
        {63, 2, {0x41, 0x04}},    /* 65 */
        {0xFFD, 2, {0x4F, 0xFF}}, /* 0xFFF */
        {0xFFE, 3, {0x81, 0x00, 0x01}},
        {0xFFFFC, 3, {0x8F, 0xFF, 0xFF}},
        {0xFFFFD, 4, {0xC1, 0x00, 0x00, 0x01}},
        {0x0FFFFFFB, 4, {0xCF, 0xFF, 0xFF, 0xFF}},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint8_t out[4] = {0};
        g_assert_cmpuint(aml_pkglength_encode(cases[i].body, out), ==, cases[i].n);
        g_assert_cmpmem(out, cases[i].n, cases[i].bytes, cases[i].n);
    }
    uint8_t out[4];
    g_assert_cmpuint(aml_pkglength_encode(0x0FFFFFFC, out), ==, 0);
}

/* A Scope whose body has `body` bytes (its name "X___" included) gets the PkgLength form for that size. */
static void test_pkglength_in_blocks(void)
{
    static const struct {
        size_t body;
        size_t pkglen_bytes;
    } cases[] = {{4, 1}, {62, 1}, {63, 2}, {0xFFD, 2}, {0xFFE, 3}, {0xFFFFC, 3}, {0xFFFFD, 4}};
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct aml a;
        aml_init(&a);
        aml_scope_begin(&a, "X");
        uint8_t *fill = g_malloc0(cases[i].body - 4);
        aml_raw(&a, fill, cases[i].body - 4);
        g_free(fill);
        aml_end(&a);
        g_assert_false(a.failed);
        g_assert_cmpuint(a.depth, ==, 0);
        g_assert_cmpuint(a.len, ==, 1 + cases[i].pkglen_bytes + cases[i].body);
        g_assert_cmphex(a.data[0], ==, AML_SCOPE_OP);
        uint8_t want[4];
        g_assert_cmpuint(aml_pkglength_encode(cases[i].body, want), ==, cases[i].pkglen_bytes);
        g_assert_cmpmem(a.data + 1, cases[i].pkglen_bytes, want, cases[i].pkglen_bytes);
        g_assert_cmpmem(a.data + 1 + cases[i].pkglen_bytes, 4, "X___", 4);
        aml_free(&a);
    }
}

static void test_package(void)
{
    struct aml a;
    aml_init(&a);
    aml_package_begin(&a, 2);
    aml_integer(&a, 1);
    aml_integer(&a, 0x100);
    aml_end(&a);
    static const uint8_t want[] = {AML_PACKAGE_OP, 0x06, 0x02, AML_ONE_OP, AML_WORD_PREFIX, 0x00, 0x01};
    assert_bytes(&a, want, sizeof(want));
    aml_free(&a);
}

static void test_nested_blocks(void)
{
    struct aml a;
    aml_init(&a);
    aml_device_begin(&a, "DEV");
    aml_method_begin(&a, "_STA", 0, false);
    aml_return(&a);
    aml_integer(&a, 0x0F);
    aml_end(&a);
    aml_end(&a);
    /* Device(DEV) { Method(_STA, 0, NotSerialized) { Return(0x0F) } } */
    static const char want[] = "\x5B\x82\x0F"
                               "DEV_"
                               "\x14\x09"
                               "_STA"
                               "\x00\xA4\x0A\x0F";
    assert_bytes(&a, (const uint8_t *)want, sizeof(want) - 1);
    aml_free(&a);

    aml_init(&a);
    aml_method_begin(&a, "M", 3, true);
    aml_end(&a);
    static const uint8_t want2[] = {AML_METHOD_OP, 0x06, 'M', '_', '_', '_', 0x0B};
    assert_bytes(&a, want2, sizeof(want2));
    aml_free(&a);
}

static void test_buffer_and_string(void)
{
    struct aml a;
    aml_init(&a);
    aml_buffer_begin(&a);
    aml_raw(&a, "\xAA\xBB\xCC", 3);
    aml_end(&a);
    static const uint8_t want[] = {AML_BUFFER_OP, 0x06, AML_BYTE_PREFIX, 0x03, 0xAA, 0xBB, 0xCC};
    assert_bytes(&a, want, sizeof(want));
    aml_free(&a);

    aml_init(&a);
    aml_buffer_begin(&a);
    aml_end(&a);
    static const uint8_t empty[] = {AML_BUFFER_OP, 0x02, AML_ZERO_OP};
    assert_bytes(&a, empty, sizeof(empty));
    aml_free(&a);

    aml_init(&a);
    aml_name_str(&a, "_HID", "ACPI0007");
    static const uint8_t str[] = {AML_NAME_OP, '_', 'H', 'I', 'D', AML_STRING_PREFIX, 'A', 'C', 'P', 'I',
                                  '0',         '0', '0', '7', 0};
    assert_bytes(&a, str, sizeof(str));
    aml_free(&a);
}

static void test_eisaid(void)
{
    uint32_t v = 0;
    g_assert_true(aml_eisaid_encode("PNP0A08", &v));
    g_assert_cmphex(v, ==, 0x080AD041);
    g_assert_true(aml_eisaid_encode("PNP0A03", &v));
    g_assert_cmphex(v, ==, 0x030AD041);
    g_assert_true(aml_eisaid_encode("PNP0501", &v));
    g_assert_cmphex(v, ==, 0x0105D041);
    static const char *const bad[] = {"PNP0A0", "PNP0A088", "pnp0A08", "PN00A08", "PNP0a08", "PNP0G08", ""};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        g_assert_false(aml_eisaid_encode(bad[i], &v));

    struct aml a;
    aml_init(&a);
    aml_eisaid(&a, "PNP0A08");
    static const uint8_t want[] = {AML_DWORD_PREFIX, 0x41, 0xD0, 0x0A, 0x08};
    assert_bytes(&a, want, sizeof(want));
    aml_eisaid(&a, "bad");
    g_assert_true(a.failed);
    aml_free(&a);
}

static uint8_t sum_bytes(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static void test_resource_template_small(void)
{
    struct aml a;
    aml_init(&a);
    aml_resources_begin(&a);
    aml_res_io(&a, 0x3F8, 0x3F8, 1, 8);
    aml_res_irq_noflags(&a, 4);
    aml_resources_end(&a);
    /* IO(Decode16, 0x3F8, 0x3F8, 1, 8), IRQNoFlags(){4}, EndTag */
    static const uint8_t body[] = {0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, 0x22, 0x10, 0x00, 0x79};
    g_assert_false(a.failed);
    g_assert_cmpuint(a.len, ==, 4 + sizeof(body) + 1);
    g_assert_cmphex(a.data[0], ==, AML_BUFFER_OP);
    g_assert_cmphex(a.data[1], ==, 3 + sizeof(body) + 1); /* PkgLength */
    g_assert_cmphex(a.data[2], ==, AML_BYTE_PREFIX);
    g_assert_cmphex(a.data[3], ==, sizeof(body) + 1); /* BufferSize */
    g_assert_cmpmem(a.data + 4, sizeof(body), body, sizeof(body));
    g_assert_cmphex(sum_bytes(a.data + 4, sizeof(body) + 1), ==, 0);
    g_assert_cmphex(a.data[a.len - 1], ==, (uint8_t)-sum_bytes(body, sizeof(body)));
    aml_free(&a);
}

static void test_resource_template_address_spaces(void)
{
    struct aml a;
    aml_init(&a);
    aml_resources_begin(&a);
    aml_res_word_bus_number(&a, 0, 255);
    aml_res_word_io(&a, 0x0D00, 0xFFFF);
    aml_res_dword_memory(&a, AML_MEM_NON_CACHEABLE, 0xC0000000, 0xFEBFFFFF);
    aml_res_qword_memory(&a, AML_MEM_CACHEABLE, 0x8000000000ull, 0xFFFFFFFFFFull);
    aml_res_memory32_fixed(&a, true, 0xB0000000, 0x10000000);
    aml_res_interrupt(&a, AML_INT_CONSUMER, 9);
    aml_resources_end(&a);
    g_assert_false(a.failed);
    /* a 2-byte PkgLength and a BufferSize Byte: the descriptors start at 5 */
    const uint8_t *p = a.data + 5;
    size_t n = a.len - 5;
    g_assert_cmphex(a.data[3], ==, AML_BYTE_PREFIX);
    g_assert_cmpuint(a.data[4], ==, n);
    static const uint8_t bus[] = {0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00, 0,    0,
                                  0x00, 0x00, 0xFF, 0x00, 0,    0,    0x00, 0x01};
    g_assert_cmpmem(p, sizeof(bus), bus, sizeof(bus));
    p += sizeof(bus);
    static const uint8_t io[] = {0x88, 0x0D, 0x00, 0x01, 0x0C, 0x03, 0,    0,
                                 0x00, 0x0D, 0xFF, 0xFF, 0,    0,    0x00, 0xF3};
    g_assert_cmpmem(p, sizeof(io), io, sizeof(io));
    p += sizeof(io);
    static const uint8_t mem32[] = {0x87, 0x17, 0x00, 0x00, 0x0C, 0x01, 0, 0, 0, 0,    0x00, 0x00, 0x00,
                                    0xC0, 0xFF, 0xFF, 0xBF, 0xFE, 0,    0, 0, 0, 0x00, 0x00, 0xC0, 0x3E};
    g_assert_cmpmem(p, sizeof(mem32), mem32, sizeof(mem32));
    p += sizeof(mem32);
    g_assert_cmphex(p[0], ==, 0x8A);
    g_assert_cmphex(p[1], ==, 0x2B);
    g_assert_cmphex(p[5], ==, 0x03); /* read-write, cacheable */
    g_assert_cmphex(le64_load(p + 14), ==, 0x8000000000ull);
    g_assert_cmphex(le64_load(p + 22), ==, 0xFFFFFFFFFFull);
    g_assert_cmphex(le64_load(p + 38), ==, 0x8000000000ull);
    p += 3 + 43;
    static const uint8_t fixed[] = {0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xB0, 0x00, 0x00, 0x00, 0x10};
    g_assert_cmpmem(p, sizeof(fixed), fixed, sizeof(fixed));
    p += sizeof(fixed);
    static const uint8_t irq[] = {0x89, 0x06, 0x00, 0x01, 0x01, 0x09, 0x00, 0x00, 0x00};
    g_assert_cmpmem(p, sizeof(irq), irq, sizeof(irq));
    p += sizeof(irq);
    g_assert_cmphex(p[0], ==, AML_RES_END_TAG);
    g_assert_true(p + 2 == a.data + a.len);
    g_assert_cmphex(sum_bytes(a.data + 5, n), ==, 0);
    aml_free(&a);
}

static void test_misuse_fails(void)
{
    struct aml a;
    aml_init(&a);
    aml_end(&a); /* nothing open */
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_res_io(&a, 0x60, 0x60, 1, 1); /* outside a template */
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_resources_begin(&a);
    aml_end(&a); /* a template must be closed with its end tag */
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_scope_begin(&a, "X");
    aml_resources_end(&a); /* not a template */
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    for (int i = 0; i <= AML_MAX_DEPTH; i++)
        aml_scope_begin(&a, "X");
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_package_begin(&a, 256);
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_method_begin(&a, "M", 8, false);
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_resources_begin(&a);
    aml_res_irq_noflags(&a, 16);
    g_assert_true(a.failed);
    aml_free(&a);

    aml_init(&a);
    aml_resources_begin(&a);
    aml_res_dword_memory(&a, AML_MEM_CACHEABLE, 0x2000, 0x1000); /* max below min */
    g_assert_true(a.failed);
    aml_free(&a);

    /* once failed, nothing more is written */
    aml_init(&a);
    aml_name_string(&a, "bad!");
    size_t len = a.len;
    aml_integer(&a, 5);
    g_assert_cmpuint(a.len, ==, len);
    aml_free(&a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/aml/integer/shortest-encoding", test_integer_encodings);
    g_test_add_func("/aml/name-string/prefixes-and-padding", test_name_strings);
    g_test_add_func("/aml/name-string/malformed-fails", test_name_strings_bad);
    g_test_add_func("/aml/pkglength/one-to-four-bytes", test_pkglength_forms);
    g_test_add_func("/aml/pkglength/blocks-use-shortest-form", test_pkglength_in_blocks);
    g_test_add_func("/aml/package/count-and-elements", test_package);
    g_test_add_func("/aml/blocks/device-and-method", test_nested_blocks);
    g_test_add_func("/aml/buffer/size-and-string", test_buffer_and_string);
    g_test_add_func("/aml/eisaid/compressed-id", test_eisaid);
    g_test_add_func("/aml/resources/small-items-and-checksum", test_resource_template_small);
    g_test_add_func("/aml/resources/address-space-descriptors", test_resource_template_address_spaces);
    g_test_add_func("/aml/misuse/marks-failed", test_misuse_fails);
    return g_test_run();
}
