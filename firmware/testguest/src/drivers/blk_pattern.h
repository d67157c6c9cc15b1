/*
 * The data the block tests write: every 512-byte sector carries its own LBA, so a sector
 * read back from the wrong place, or a stale one, is told apart. Word k (of 128 little-endian
 * 32-bit words) of sector `lba` under `seed`:
 *   k = 0, 1: the LBA's low and high halves; k = 2: the seed;
 *   otherwise a mix of (lba, k, seed), recomputed by the host tests (test/firmware/blk-pattern.ts).
 */
#ifndef TESTGUEST_BLK_PATTERN_H
#define TESTGUEST_BLK_PATTERN_H
#include <stdint.h>

static inline uint32_t blk_pattern_word(uint64_t lba, uint32_t k, uint32_t seed) {
	if (k == 0) return (uint32_t)lba;
	if (k == 1) return (uint32_t)(lba >> 32);
	if (k == 2) return seed;
	uint32_t x = ((uint32_t)lba * 0x9E3779B1u) ^ (k * 0x85EBCA77u) ^ seed;
	x ^= x >> 15;
	x *= 0x2C1B3C6Du;
	x ^= x >> 12;
	return x;
}

/* Fills `sectors` sectors starting at lba. */
static inline void blk_pattern_fill(void *buf, uint64_t lba, uint32_t sectors, uint32_t seed) {
	uint32_t *w = buf;
	for (uint32_t s = 0; s < sectors; s++)
		for (uint32_t k = 0; k < 128; k++) *w++ = blk_pattern_word(lba + s, k, seed);
}

/* The number of sectors that differ from the pattern. */
static inline uint32_t blk_pattern_check(const void *buf, uint64_t lba, uint32_t sectors, uint32_t seed) {
	const uint32_t *w = buf;
	uint32_t bad = 0;
	for (uint32_t s = 0; s < sectors; s++) {
		int ok = 1;
		for (uint32_t k = 0; k < 128; k++) ok &= *w++ == blk_pattern_word(lba + s, k, seed);
		bad += !ok;
	}
	return bad;
}
#endif
