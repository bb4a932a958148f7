/* ACPI fixed-feature hardware (ACPI 6.x, chapter 4.8): PM1a event and control registers, the 3.579545 MHz PM
 * timer and a GPE0 block, at I/O ports ACPI_PM_BASE.. . The FADT (acpi_tables.c) advertises exactly these
 * constants. */
#ifndef DESKVM_ACPI_PM_H
#define DESKVM_ACPI_PM_H

#include <stdbool.h>
#include <stdint.h>

#include "io_bus.h"
#include "machine.h"
#include "vclock.h"

/* Port layout. */
#define ACPI_PM_BASE 0x600
#define ACPI_PM1A_EVT_BLK (ACPI_PM_BASE + 0x00) /* PM1_STS (16 bits), then PM1_EN (16 bits) */
#define ACPI_PM1_EVT_LEN 4
#define ACPI_PM1A_CNT_BLK (ACPI_PM_BASE + 0x04)
#define ACPI_PM1_CNT_LEN 2
#define ACPI_PM_TMR_BLK (ACPI_PM_BASE + 0x08)
#define ACPI_PM_TMR_LEN 4
#define ACPI_GPE0_BLK (ACPI_PM_BASE + 0x20) /* GPE0_STS (4 bytes), then GPE0_EN (4 bytes) */
#define ACPI_GPE0_BLK_LEN 8
#define ACPI_PM_IO_LEN 0x28 /* the whole block, ports 0x600-0x627 */

#define ACPI_SCI_IRQ 9 /* ISA IRQ = GSI 9, level, active high (MADT override) */
#define ACPI_PM_TIMER_HZ 3579545

/* PM1_STS / PM1_EN bits (4.8.3.1). */
#define ACPI_PM1_TMR_STS (1u << 0)
#define ACPI_PM1_BM_STS (1u << 4)
#define ACPI_PM1_GBL_STS (1u << 5)
#define ACPI_PM1_PWRBTN_STS (1u << 8)
#define ACPI_PM1_SLPBTN_STS (1u << 9)
#define ACPI_PM1_RTC_STS (1u << 10)
#define ACPI_PM1_WAK_STS (1u << 15)
#define ACPI_PM1_TMR_EN (1u << 0)
#define ACPI_PM1_GBL_EN (1u << 5)
#define ACPI_PM1_PWRBTN_EN (1u << 8)
#define ACPI_PM1_SLPBTN_EN (1u << 9)
#define ACPI_PM1_RTC_EN (1u << 10)

/* PM1_CNT bits (4.8.3.2.1). */
#define ACPI_PM1_SCI_EN (1u << 0)
#define ACPI_PM1_BM_RLD (1u << 1)
#define ACPI_PM1_GBL_RLS (1u << 2)
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP_MASK (7u << ACPI_PM1_SLP_TYP_SHIFT)
#define ACPI_PM1_SLP_EN (1u << 13)

/* The SLP_TYP value the DSDT's \_S5 names; writing it with SLP_EN powers the machine off. No other sleep
 * state is offered (no \_S1-\_S4). */
#define ACPI_PM_SLP_TYP_S5 5

struct acpi_pm {
    struct machine *m;
    uint16_t pm1_sts; /* event status except TMR_STS, which follows the timer */
    uint16_t pm1_en;
    uint16_t pm1_cnt; /* SLP_TYP and BM_RLD as last written */
    uint32_t gpe0_sts;
    uint32_t gpe0_en;
    /* TMR_STS is set whenever the timer's bit 31 has toggled since it was last cleared: the count of bit-31
     * periods at that time. */
    uint64_t tmr_period_seen;
    int sci_level;
    struct vtimer tmr_timer; /* armed only while TMR_EN is set and TMR_STS clear */
    struct io_guard guard;
};

extern const struct machine_device acpi_pm_device;

/* The power button (QMP system_powerdown): sets PWRBTN_STS, raising the SCI if PWRBTN_EN is set. */
void acpi_pm_press_power_button(struct acpi_pm *pm);
/* The PM timer's current 32-bit value. */
uint32_t acpi_pm_timer_read(struct acpi_pm *pm);

#endif
