/* Motorola MC146818A RTC and CMOS NVRAM at ports 0x70/0x71 (0x72/0x73: upper 128 bytes). Wall time starts
 * at the host's UTC and advances with the virtual clock; interrupts on ISA IRQ 8. */
#ifndef DESKVM_RTC_H
#define DESKVM_RTC_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "machine.h"

#define RTC_BASE_PORT 0x70
#define RTC_NMI_DISABLE 0x80

/* Time and calendar registers */
#define RTC_SECONDS 0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES 0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS 0x04
#define RTC_HOURS_ALARM 0x05
#define RTC_DAY_OF_WEEK 0x06
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0A
#define RTC_REG_B 0x0B
#define RTC_REG_C 0x0C
#define RTC_REG_D 0x0D
#define RTC_CENTURY 0x32 /* PC convention (ACPI FADT CENTURY) */

#define RTC_HOUR_PM 0x80
#define RTC_ALARM_DONT_CARE 0xC0 /* an alarm byte with both top bits set matches any value */

/* Register A */
#define RTC_A_UIP 0x80
#define RTC_A_DV_SHIFT 4
#define RTC_A_DV_MASK 0x70
#define RTC_A_DV_32KHZ 2 /* the only divider setting with a running time base (32.768 kHz crystal) */
#define RTC_A_RS_MASK 0x0F
/* Register B */
#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_B_DSE 0x01
/* Register C */
#define RTC_C_IRQF 0x80
#define RTC_C_PF 0x40
#define RTC_C_AF 0x20
#define RTC_C_UF 0x10
/* Register D */
#define RTC_D_VRT 0x80

/* Update-in-progress lasts 244 us (8 periods of 32.768 kHz) before each update. */
#define RTC_UIP_NS 244141

/* PC firmware memory-size fields */
#define RTC_NVRAM_BASE_MEM_LO 0x15 /* base memory in KiB */
#define RTC_NVRAM_BASE_MEM_HI 0x16
#define RTC_NVRAM_EXT_MEM_LO 0x17 /* memory above 1 MiB in KiB, at most 0xFFFF */
#define RTC_NVRAM_EXT_MEM_HI 0x18
#define RTC_NVRAM_CHECKSUM_HI 0x2E /* sum of 0x10..0x2D */
#define RTC_NVRAM_CHECKSUM_LO 0x2F
#define RTC_NVRAM_EXT_MEM2_LO 0x30 /* copy of 0x17/0x18 */
#define RTC_NVRAM_EXT_MEM2_HI 0x31
#define RTC_NVRAM_MEM_16M_LO 0x34 /* memory above 16 MiB (below 4 GiB) in 64 KiB units */
#define RTC_NVRAM_MEM_16M_HI 0x35
#define RTC_NVRAM_MEM_4G_0 0x5B /* memory above 4 GiB in 64 KiB units, 24 bits */
#define RTC_NVRAM_MEM_4G_1 0x5C
#define RTC_NVRAM_MEM_4G_2 0x5D
#define RTC_NVRAM_CPUS_MINUS_1 0x5F

#define RTC_BANK_SIZE 128
#define RTC_CMOS_SIZE 256

struct rtc {
    struct machine *m;
    uint8_t cmos[RTC_CMOS_SIZE]; /* bank 0 (0x70/0x71) then bank 1 (0x72/0x73) */
    uint8_t index;
    uint8_t index_hi;
    bool nmi_disabled;
    /* Wall time: base_time (seconds since the epoch, UTC) held at base_ns; one update per second of the
     * divider chain, whose seconds end at div_base_ns + k s. While the clock is stopped (SET, divider off)
     * the time lives in the registers instead. */
    int64_t base_time;
    int64_t base_ns;
    int64_t div_base_ns;
    int64_t flags_ns; /* events up to this virtual time are reflected in register C */
    bool irq_level;
    struct vtimer timer;
};

extern const struct machine_device rtc_device;

/* Sets the wall clock (UTC seconds); the next update comes one second later. */
void rtc_set_time(struct rtc *rtc, time_t t);
/* The wall clock now (UTC seconds). */
time_t rtc_get_time(struct rtc *rtc);

#endif
