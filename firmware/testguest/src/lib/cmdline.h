/*
 * The guest command line: space-separated key=value tokens (a bare word is a key with
 * an empty value). A value may itself be a comma list "name,k=v,k=v" (test=power,how=s5).
 */
#ifndef TESTGUEST_CMDLINE_H
#define TESTGUEST_CMDLINE_H
#include <stddef.h>
#include <stdint.h>
void cmdline_init(const char *text);
/* The value of the first token named key, or NULL when absent. */
const char *cmdline_get(const char *key);
uint64_t cmdline_get_u64(const char *key, uint64_t fallback);
/* The raw command line as received. */
const char *cmdline_text(void);
/* First element of a comma list, copied into out. */
void optlist_head(const char *list, char *out, size_t size);
/* The value of key=... inside a comma list, copied into out; returns 0 if absent. */
int optlist_get(const char *list, const char *key, char *out, size_t size);
uint64_t optlist_get_u64(const char *list, const char *key, uint64_t fallback);
#endif
