/*
 * Self-checking test suites. Each check prints one line
 *   TESTGUEST <suite> PASS|FAIL <details>
 * and the run ends with
 *   TESTGUEST <suite> DONE pass=N fail=M
 * Adding a suite: one file defining a `const struct suite`, one line in suites/registry.c.
 */
#ifndef TESTGUEST_SUITE_H
#define TESTGUEST_SUITE_H

struct suite {
	const char *name;
	const char *summary;
	/* options: the comma list after the suite name (test=power,how=s5 -> "how=s5"). */
	void (*run)(const char *options);
};

extern const struct suite *const suites[];
const struct suite *suite_find(const char *name);

/* Records and prints one check; returns ok so callers can skip dependent checks. */
int check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs one suite and prints its DONE line. Returns the number of failures. */
int suite_run(const struct suite *s, const char *options);
#endif
