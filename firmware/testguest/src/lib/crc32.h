/* CRC-32 as zlib and ISO-HDLC define it (reflected polynomial 0xEDB88320, init and final xor all ones). */
#ifndef TESTGUEST_CRC32_H
#define TESTGUEST_CRC32_H
#include <stddef.h>
#include <stdint.h>
/* Continues a CRC: start with crc32_update(0, ...), feed the previous result back for more bytes. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);
#endif
