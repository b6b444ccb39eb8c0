/*
 * dj_bson_depth.c -- the iterative nesting check (see dj_bson_depth.h).
 *
 * BSON framing: https://bsonspec.org/spec.html. Each element is a type
 * byte, a NUL-terminated key and a value whose size follows from its type;
 * a document is int32 length, elements, 0x00.
 */
#include "dj_bson_depth.h"
#include "dj_buf.h"

#include <string.h>


/* A string value at p (int32 length counting the NUL, bytes, NUL) within
 * [p, end): its total size, or 0 when it does not fit. */
static size_t
string_size (const uint8_t *p, const uint8_t *end)
{
   if (end - p < 5) {
      return 0;
   }
   int32_t n = dj_le32_read (p);
   if (n < 1 || (size_t) n > (size_t) (end - p) - 4) {
      return 0;
   }
   return 4 + (size_t) n;
}

/* The size of a value of type t when the type fixes it, else -1. */
static int
fixed_size (uint8_t t)
{
   switch (t) {
   case 0x06: /* undefined */
   case 0x0A: /* null */
   case 0x7F: /* maxKey */
   case 0xFF: /* minKey */ return 0;
   case 0x08: /* bool */ return 1;
   case 0x10: /* int32 */ return 4;
   case 0x01: /* double */
   case 0x09: /* datetime */
   case 0x11: /* timestamp */
   case 0x12: /* int64 */ return 8;
   case 0x07: /* ObjectId */ return 12;
   case 0x13: /* decimal128 */ return 16;
   default: return -1;
   }
}

bool
dj_bson_depth_ok (const uint8_t *data, size_t len, int max_depth)
{
   const uint8_t *ends[DJ_BSON_MAX_DEPTH + 1]; /* where each open document ends */
   int depth = 0;                              /* index of the innermost open document */

   if (max_depth > DJ_BSON_MAX_DEPTH || len < 5 || len > INT32_MAX || (size_t) dj_le32_read (data) != len) {
      return false;
   }
   ends[0] = data + len;
   const uint8_t *p = data + 4;
   for (;;) {
      const uint8_t *end = ends[depth];
      if (p >= end) {
         return false;
      }
      uint8_t type = *p++;
      if (type == 0) { /* the document's terminator must be its last byte */
         if (p != end) {
            return false;
         }
         if (depth-- == 0) {
            return true;
         }
         continue;
      }
      const uint8_t *nul = memchr (p, 0, (size_t) (end - p));
      if (!nul) {
         return false;
      }
      p = nul + 1;
      size_t avail = (size_t) (end - p), n = 0, s;
      int fixed = fixed_size (type);
      switch (fixed >= 0 ? 0 : type) { /* type 0 (the terminator) was handled above */
      case 0: n = (size_t) fixed; break;
      case 0x02: /* string */
      case 0x0D: /* JavaScript code */
      case 0x0E: /* symbol */
         if (!(n = string_size (p, end))) {
            return false;
         }
         break;
      case 0x0C: /* DBPointer: string, ObjectId */
         if (!(s = string_size (p, end)) || avail - s < 12) {
            return false;
         }
         n = s + 12;
         break;
      case 0x05: /* binary: int32 length, subtype, bytes */
         if (avail < 5 || dj_le32_read (p) < 0 || (size_t) dj_le32_read (p) > avail - 5) {
            return false;
         }
         n = 5 + (size_t) dj_le32_read (p);
         break;
      case 0x0B: { /* regex: two C strings */
         const uint8_t *a = memchr (p, 0, avail);
         const uint8_t *b = a ? memchr (a + 1, 0, (size_t) (end - a - 1)) : NULL;
         if (!b) {
            return false;
         }
         n = (size_t) (b + 1 - p);
         break;
      }
      case 0x03: /* document */
      case 0x04: /* array */
      case 0x0F: { /* code with scope: int32 total, string, document */
         const uint8_t *doc = p;
         const uint8_t *stop = end;
         if (type == 0x0F) {
            if (avail < 4 || dj_le32_read (p) < 14 || (size_t) dj_le32_read (p) > avail || !(s = string_size (p + 4, p + dj_le32_read (p)))) {
               return false;
            }
            stop = p + dj_le32_read (p);
            doc = p + 4 + s;
         }
         if (stop - doc < 5 || dj_le32_read (doc) < 5 || dj_le32_read (doc) > stop - doc || (type == 0x0F && doc + dj_le32_read (doc) != stop)) {
            return false;
         }
         if (depth >= max_depth) {
            return false;
         }
         ends[++depth] = doc + dj_le32_read (doc);
         p = doc + 4;
         continue;
      }
      default: return false;
      }
      if (n > avail) {
         return false;
      }
      p += n;
   }
}
