/* CRC-32C (Castagnoli), hardware-accelerated through ISA-L. */
#ifndef CURVE_COMMON_CRC32C_H
#define CURVE_COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Standard CRC-32C of `len` bytes, chainable: curve_crc32c(curve_crc32c(0, a, n), b, m) equals
 * the CRC of a||b. curve_crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t curve_crc32c(uint32_t crc, const void *data, size_t len);

#endif
