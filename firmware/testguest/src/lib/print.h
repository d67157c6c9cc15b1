/*
 * Formatted output: a small printf subset (%d %u %x %X %p %s %c %%, flags '0' and '-',
 * a width, length modifiers l/ll/z). print() writes to the console (COM1).
 */
#ifndef TESTGUEST_PRINT_H
#define TESTGUEST_PRINT_H
#include <stdarg.h>
#include <stddef.h>
void print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vprint(const char *fmt, va_list ap);
/* Like snprintf: always NUL-terminates, returns the length it would have written. */
int format(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif
