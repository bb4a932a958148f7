/* The compiled-C workload of test-emu-exec (emu-workload.c). */
#ifndef DESKVM_TEST_EMU_WORKLOAD_H
#define DESKVM_TEST_EMU_WORKLOAD_H

#include <stdint.h>

/* Runs the workload on a 64 KiB scratch buffer and returns a hash of everything it computed. */
uint64_t emu_workload(uint8_t *buf);

#endif
