/* Vector table and reset handler of the Cortex-M3 (MPS2 AN385): copy .data, zero .bss, main. */
#include <stdint.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern int main(void);
void Reset_Handler(void);
void SysTick_Handler(void);
void Default_Handler(void);

void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0u;
    }
    (void)main();
    for (;;) {
    }
}

typedef void (*vector)(void);

/* Cortex-M vector table: initial stack pointer, then the exception handlers 1..15. */
__attribute__((section(".vectors"), used)) static const vector VECTORS[16] = {
    (vector)(uintptr_t)&_estack,
    Reset_Handler,   /* 1 reset */
    Default_Handler, /* 2 NMI */
    Default_Handler, /* 3 hard fault */
    Default_Handler, /* 4 memory management fault */
    Default_Handler, /* 5 bus fault */
    Default_Handler, /* 6 usage fault */
    0, 0, 0, 0,      /* 7-10 reserved */
    Default_Handler, /* 11 SVCall */
    Default_Handler, /* 12 debug monitor */
    0,               /* 13 reserved */
    Default_Handler, /* 14 PendSV */
    SysTick_Handler, /* 15 SysTick */
};
