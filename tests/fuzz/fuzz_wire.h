/*
 * fuzz_wire.h -- what the wire harnesses (fuzz_wire.c, fuzz_wire_bson.c)
 * share: one message through the server's reader, as the server takes it.
 */
#ifndef FUZZ_WIRE_H
#define FUZZ_WIRE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dj_wire.h"

/* Header, then exactly `length` bytes (a copy of that size, so a read past
 * the message is a sanitizer report), OP_MSG / OP_QUERY parsing and the
 * reply built for it. */
static inline void
fuzz_wire_message (const uint8_t *data, size_t size)
{
   dj_wire_header_t h;
   bson_error_t error;
   if (size < DJ_WIRE_HEADER || !dj_wire_read_header (data, &h, &error)) {
      return;
   }
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
}

#endif
