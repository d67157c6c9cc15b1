/* The console is COM1. Output turns "\n" into "\r\n" for terminals. */
#ifndef TESTGUEST_CONSOLE_H
#define TESTGUEST_CONSOLE_H
void console_init(void);
void console_putc(char c);
void console_write(const char *s);
/* Blocks (polling) until a byte arrives. */
int console_getc(void);
#endif
