/*
 * Physical page allocation: a bump allocator over the largest RAM range of the PVH memory
 * map that lies above this image (identity mapped, so physical = virtual, and
 * user-accessible, so ring-3 drivers use the pages as DMA buffers directly).
 */
#ifndef TESTGUEST_PAGES_H
#define TESTGUEST_PAGES_H
#include <stdint.h>

#define PAGE_SIZE 4096u

void pages_init(void);
/* count zeroed pages aligned to align_pages pages, or NULL when exhausted. */
void *pages_alloc(uint64_t count, uint64_t align_pages);
uint64_t pages_free_bytes(void);
uint64_t pages_region_start(void);
#endif
