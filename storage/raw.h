/* raw format driver: the image file is the disk, byte for byte; sparse-aware (holes read as zeros). */
#ifndef DESKVM_RAW_H
#define DESKVM_RAW_H

#include "block.h"

extern const struct block_driver raw_driver;

#endif
