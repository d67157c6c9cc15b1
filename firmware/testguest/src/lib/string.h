/* The few C string and memory routines the guest uses (GCC may also emit calls to mem*). */
#ifndef TESTGUEST_STRING_H
#define TESTGUEST_STRING_H
#include <stddef.h>
#include <stdint.h>
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
/* Parses a decimal or 0x-prefixed hexadecimal unsigned number; returns 0 on bad input. */
int parse_u64(const char *s, size_t len, uint64_t *out);
#endif
