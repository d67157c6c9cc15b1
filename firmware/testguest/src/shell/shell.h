/* shell: an interactive prompt on COM1 ("testguest> "). Never returns. */
#ifndef TESTGUEST_SHELL_H
#define TESTGUEST_SHELL_H
void shell_run(void) __attribute__((noreturn));
#endif
