/*
 * CRC-32C on ISA-L. crc32_iscsi() neither pre- nor post-inverts: the standard CRC-32C is
 * ~crc32_iscsi(buf, len, ~0). Keeping the inversion outside makes the public value chainable:
 * curve_crc32c(crc, ...) resumes from a finished CRC.
 */
#include "common/crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

/* Largest chunk handed to ISA-L at once (its length parameter is an int). */
#define CRC32C_CHUNK_MAX ((size_t)1 << 30)

uint32_t curve_crc32c(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (len > 0) {
        size_t n = len > CRC32C_CHUNK_MAX ? CRC32C_CHUNK_MAX : len;
        c = crc32_iscsi((unsigned char *)p, (int)n, c);
        p += n;
        len -= n;
    }
    return ~c;
}
