/*
 * fuzz_wire -- libFuzzer harness: bytes from a socket -> message header,
 * OP_MSG / OP_QUERY parsing (sections, document sequences, checksums, BSON
 * validation) and the reply built for it. Must end in a request or a clean
 * error: no crash, no leak, no read outside the input (scripts/fuzz.sh wire;
 * replayed on tests/fuzz/corpus/wire by the test command).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dj_wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   dj_wire_header_t h;
   bson_error_t error;
   if (size < DJ_WIRE_HEADER || !dj_wire_read_header (data, &h, &error)) {
      return 0;
   }
   /* as the server does: exactly `length` bytes, header and body together
    * (a copy, so a read past the message is a sanitizer report) */
   size_t len = (size_t) h.length <= size ? (size_t) h.length : size;
   uint8_t *msg = malloc (len);
   memcpy (msg, data, len);
   dj_wire_request_t req;
   if (dj_wire_parse (&h, msg + DJ_WIRE_HEADER, len - DJ_WIRE_HEADER, &req, &error)) {
      dj_buf_t out;
      dj_buf_init (&out);
      dj_wire_reply (&h, &req, req.cmd, 1, &out);
      dj_buf_cleanup (&out);
      dj_wire_request_cleanup (&req);
   }
   free (msg);
   return 0;
}
