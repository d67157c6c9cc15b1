#include "suite.h"
#include <stdarg.h>
#include "../lib/print.h"

static const char *current = "none";
static int passed, failed;

int check(int ok, const char *fmt, ...) {
	va_list ap;
	print("TESTGUEST %s %s ", current, ok ? "PASS" : "FAIL");
	va_start(ap, fmt);
	vprint(fmt, ap);
	va_end(ap);
	print("\n");
	if (ok) passed++; else failed++;
	return ok;
}

int suite_run(const struct suite *s, const char *options) {
	current = s->name;
	passed = failed = 0;
	s->run(options);
	print("TESTGUEST %s DONE pass=%d fail=%d\n", s->name, passed, failed);
	return failed;
}
