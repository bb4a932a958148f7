/* PC system control ports: 0x61 (port B: PIT counter 2 gate, speaker, refresh toggle), 0x92 (port A: fast
 * A20, reset), 0xCF9 (reset control) and the POST code port 0x80. */
#ifndef DESKVM_SYSCTL_PORTS_H
#define DESKVM_SYSCTL_PORTS_H

#include <stdint.h>

#include "machine.h"

/* Port 0x61 */
#define SYSCTL_PORTB 0x61
#define SYSCTL_PORTB_TIMER2_GATE 0x01
#define SYSCTL_PORTB_SPEAKER_DATA 0x02
#define SYSCTL_PORTB_PARITY_CHECK_DISABLE 0x04
#define SYSCTL_PORTB_IOCHK_DISABLE 0x08
#define SYSCTL_PORTB_REFRESH 0x10
#define SYSCTL_PORTB_TIMER2_OUT 0x20
#define SYSCTL_PORTB_IOCHK 0x40
#define SYSCTL_PORTB_PARITY_ERROR 0x80
#define SYSCTL_PORTB_WRITABLE 0x0F
/* The refresh request bit toggles once per DRAM refresh period (15.085 us). */
#define SYSCTL_REFRESH_PERIOD_NS 15085

/* Port 0x92 */
#define SYSCTL_PORTA 0x92
#define SYSCTL_PORTA_FAST_RESET 0x01
#define SYSCTL_PORTA_A20 0x02

/* Port 0xCF9 (PIIX/ICH reset control register) */
#define SYSCTL_RCR 0xCF9
#define SYSCTL_RCR_SYS_RST 0x02
#define SYSCTL_RCR_RST_CPU 0x04
#define SYSCTL_RCR_FULL_RST 0x08

#define SYSCTL_POST 0x80

struct sysctl_ports {
    struct machine *m;
    uint8_t port_b; /* writable bits of port 0x61 */
    uint8_t port_a;
    uint8_t rcr;
    uint8_t post_code;
    bool rcr_registered; /* false when the PCI host bridge owns 0xCF8-0xCFB and forwards byte 0xCF9 here */
    bool portb_absent;   /* no PIT of ours: the CPU backend's in-kernel PIT decodes port 0x61 */
};

/* Uses the PIT when there is one: list it after pit_device in the board's device table. Without it (KVM's
 * in-kernel PIT) port 0x61 is left to the CPU backend. */
extern const struct machine_device sysctl_ports_device;

/* The reset control register, for a PCI host bridge that decodes 0xCF8-0xCFB and must forward byte accesses
 * to 0xCF9 (the two overlap on real chipsets too). */
uint8_t sysctl_ports_rcr_read(struct sysctl_ports *s);
void sysctl_ports_rcr_write(struct sysctl_ports *s, uint8_t value);

#endif
