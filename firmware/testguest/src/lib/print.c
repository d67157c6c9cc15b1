#include "print.h"
#include <stdint.h>
#include "../platform/console.h"

struct sink {
	char *buf;	/* NULL: write to the console */
	size_t size;
	size_t len;
};

static void emit(struct sink *s, char c) {
	if (!s->buf) {
		console_putc(c);
	} else if (s->len + 1 < s->size) {
		s->buf[s->len] = c;
	}
	s->len++;
}

static void emit_number(struct sink *s, uint64_t v, unsigned base, int upper, int negative, int width, char pad, int left) {
	char digits[24];
	int n = 0;
	const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	do { digits[n++] = set[v % base]; v /= base; } while (v);
	int total = n + negative;
	if (!left && pad == '0' && negative) emit(s, '-');
	if (!left) for (int i = total; i < width; i++) emit(s, pad);
	if (negative && !(pad == '0' && !left)) emit(s, '-');
	while (n) emit(s, digits[--n]);
	if (left) for (int i = total; i < width; i++) emit(s, ' ');
}

static void run_format(struct sink *s, const char *fmt, va_list ap) {
	for (; *fmt; fmt++) {
		if (*fmt != '%') { emit(s, *fmt); continue; }
		fmt++;
		char pad = ' ';
		int left = 0, width = 0, lng = 0;
		for (;; fmt++) {
			if (*fmt == '0') pad = '0';
			else if (*fmt == '-') left = 1;
			else break;
		}
		while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') { lng++; fmt++; }
		switch (*fmt) {
		case 'd': case 'i': {
			int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			emit_number(s, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, 0, v < 0, width, pad, left);
			break;
		}
		case 'u': case 'x': case 'X': {
			uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			emit_number(s, v, *fmt == 'u' ? 10 : 16, *fmt == 'X', 0, width, pad, left);
			break;
		}
		case 'p':
			emit(s, '0'); emit(s, 'x');
			emit_number(s, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, 0, 0, width, pad, left);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str) str = "(null)";
			int n = 0;
			while (str[n]) n++;
			if (!left) for (int i = n; i < width; i++) emit(s, ' ');
			for (int i = 0; i < n; i++) emit(s, str[i]);
			if (left) for (int i = n; i < width; i++) emit(s, ' ');
			break;
		}
		case 'c': emit(s, (char)va_arg(ap, int)); break;
		case '%': emit(s, '%'); break;
		case '\0': return;
		default: emit(s, '%'); emit(s, *fmt); break;
		}
	}
}

void vprint(const char *fmt, va_list ap) {
	struct sink s = { 0, 0, 0 };
	run_format(&s, fmt, ap);
}

void print(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vprint(fmt, ap);
	va_end(ap);
}

int format(char *buf, size_t size, const char *fmt, ...) {
	struct sink s = { buf, size, 0 };
	va_list ap;
	va_start(ap, fmt);
	run_format(&s, fmt, ap);
	va_end(ap);
	if (size) buf[s.len < size ? s.len : size - 1] = '\0';
	return (int)s.len;
}
