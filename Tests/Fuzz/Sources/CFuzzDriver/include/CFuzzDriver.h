#ifndef FUSEKIT_CFUZZDRIVER_H
#define FUSEKIT_CFUZZDRIVER_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's entry point for programs that keep their own `main` (libclang_rt.fuzzer, linked by
// `-sanitize=fuzzer`): it parses libFuzzer's flags from argv and calls `callback` per input.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
