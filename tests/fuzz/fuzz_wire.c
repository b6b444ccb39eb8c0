/*
 * fuzz_wire -- libFuzzer harness: bytes from a socket -> message header,
 * OP_MSG / OP_QUERY parsing (sections, document sequences, checksums, BSON
 * validation) and the reply built for it. Must end in a request or a clean
 * error: no crash, no leak, no read outside the input (scripts/fuzz.sh wire;
 * replayed on tests/fuzz/corpus/wire by the test command).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   fuzz_wire_message (data, size);
   return 0;
}
