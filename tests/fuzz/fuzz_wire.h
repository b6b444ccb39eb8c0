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
 * the message is a sanitizer report), OP_COMPRESSED's decompression (into
 * a copy of exactly the original message's size), OP_MSG / OP_QUERY
 * parsing and the reply built for it -- compressed with the request's
 * compressor and decompressed back to the same bytes. */
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
   int compressor = -1;
   if (h.opcode == DJ_OP_COMPRESSED) {
      /* every compressor enabled; the original message replaces msg (a
       * short input stands for a message of that length, as the server
       * reads only whole messages) */
      h.length = (int32_t) len;
      uint8_t *plain;
      dj_wire_header_t inner;
      if (!dj_wire_decompress (&h, msg, (1u << DJ_COMPRESSORS) - 1, &plain, &inner, &compressor, &error)) {
         free (msg);
         return;
      }
      free (msg);
      len = (size_t) inner.length;
      msg = malloc (len);
      memcpy (msg, plain, len);
      bson_free (plain);
      h = inner;
   }
   dj_wire_request_t req;
   if (dj_wire_parse (&h, msg + DJ_WIRE_HEADER, len - DJ_WIRE_HEADER, &req, &error)) {
      dj_buf_t out;
      dj_buf_init (&out);
      dj_wire_reply (&h, &req, req.cmd, 1, &out);
      if (compressor >= 0 && !req.legacy) {
         /* the reply compressed as the server sends it must come back whole
          * (an OP_REPLY is not a message dj_wire_decompress takes in) */
         dj_buf_t plain_copy;
         dj_buf_init (&plain_copy);
         dj_buf_append (&plain_copy, out.data, out.len);
         if (dj_wire_compress (&out, 0, compressor)) {
            dj_wire_header_t rh, back_h;
            uint8_t *back;
            int id;
            if (!dj_wire_read_header (out.data, &rh, &error) || rh.opcode != DJ_OP_COMPRESSED ||
                !dj_wire_decompress (&rh, out.data, 1u << compressor, &back, &back_h, &id, &error)) {
               abort ();
            }
            if (id != compressor || (size_t) back_h.length != plain_copy.len ||
                memcmp (back, plain_copy.data, plain_copy.len)) {
               abort ();
            }
            bson_free (back);
         }
         dj_buf_cleanup (&plain_copy);
      }
      dj_buf_cleanup (&out);
      dj_wire_request_cleanup (&req);
   }
   free (msg);
}

#endif
