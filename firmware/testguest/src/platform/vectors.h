/* Interrupt vectors this guest assigns (0x20-0x2F stay with the masked 8259). */
#ifndef TESTGUEST_VECTORS_H
#define TESTGUEST_VECTORS_H
#define VECTOR_LAPIC_TIMER 0x40
#define VECTOR_RTC 0x41
#define VECTOR_HPET 0x42
/* Drivers take vectors from here up, one per interrupt source. */
#define VECTOR_DEVICE_FIRST 0x50
#define VECTOR_DEVICE_LAST 0xEF
#endif
