#include "string.h"

void *memset(void *d, int c, size_t n) {
	unsigned char *p = d;
	while (n--) *p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n) {
	unsigned char *p = d;
	const unsigned char *q = s;
	while (n--) *p++ = *q++;
	return d;
}

void *memmove(void *d, const void *s, size_t n) {
	unsigned char *p = d;
	const unsigned char *q = s;
	if (p < q) {
		while (n--) *p++ = *q++;
	} else {
		while (n--) p[n] = q[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n) {
	const unsigned char *p = a, *q = b;
	for (size_t i = 0; i < n; i++)
		if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s) {
	size_t n = 0;
	while (s[n]) n++;
	return n;
}

int strcmp(const char *a, const char *b) {
	while (*a && *a == *b) { a++; b++; }
	return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char *a, const char *b, size_t n) {
	for (size_t i = 0; i < n; i++) {
		if (a[i] != b[i]) return (unsigned char)a[i] - (unsigned char)b[i];
		if (!a[i]) return 0;
	}
	return 0;
}

int parse_u64(const char *s, size_t len, uint64_t *out) {
	uint64_t v = 0;
	size_t i = 0;
	unsigned base = 10;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { base = 16; i = 2; }
	if (i == len) return 0;
	for (; i < len; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F') d = (unsigned)(c - 'A' + 10);
		else return 0;
		v = v * base + d;
	}
	*out = v;
	return 1;
}
