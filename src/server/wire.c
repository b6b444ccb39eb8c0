/*
 * wire.c -- OP_MSG / OP_QUERY in, OP_MSG / OP_REPLY out (see dj_wire.h).
 * All integers on the wire are little-endian.
 */
#include <string.h>

#include "dj_bson_depth.h"
#include "dj_wire.h"

static int32_t
rd32 (const uint8_t *p)
{
   return (int32_t) ((uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
}

static void
put32 (dj_buf_t *b, int32_t v)
{
   uint8_t x[4] = {(uint8_t) v, (uint8_t) (v >> 8), (uint8_t) (v >> 16), (uint8_t) (v >> 24)};
   dj_buf_append (b, x, 4);
}

static void
set32 (uint8_t *p, int32_t v)
{
   p[0] = (uint8_t) v;
   p[1] = (uint8_t) (v >> 8);
   p[2] = (uint8_t) (v >> 16);
   p[3] = (uint8_t) (v >> 24);
}

uint32_t
dj_wire_crc32c (const uint8_t *p, size_t n)
{
   /* bitwise: checksums are optional and drivers do not send them by
    * default, so a table (and its initialisation) is not worth it */
   uint32_t crc = 0xFFFFFFFFu;
   for (size_t i = 0; i < n; i++) {
      crc ^= p[i];
      for (int k = 0; k < 8; k++) {
         crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
      }
   }
   return ~crc;
}

bool
dj_wire_read_header (const uint8_t *p, dj_wire_header_t *h, bson_error_t *error)
{
   h->length = rd32 (p);
   h->request_id = rd32 (p + 4);
   h->response_to = rd32 (p + 8);
   h->opcode = rd32 (p + 12);
   if (h->length < DJ_WIRE_HEADER) {
      return dj_err (error, DJ_FailedToParse, "message length %d is shorter than a header", h->length);
   }
   if (h->length > DJ_WIRE_MAX_MESSAGE) {
      return dj_err (error, DJ_BSONObjectTooLarge, "message length %d is over the maximum message size %d",
                     h->length, DJ_WIRE_MAX_MESSAGE);
   }
   return true;
}

/* A BSON document at p (at most `avail` bytes): *len its length. */
static bool
read_doc (const uint8_t *p, size_t avail, bson_t *doc, uint32_t *len, bson_error_t *error)
{
   if (avail < 5) {
      return dj_err (error, DJ_FailedToParse, "truncated document in message");
   }
   int32_t n = rd32 (p);
   if (n < 5 || (size_t) n > avail) {
      return dj_err (error, DJ_FailedToParse, "document length %d does not fit the message", n);
   }
   if (n > DJ_WIRE_MAX_DOCUMENT) {
      return dj_err (error, DJ_BSONObjectTooLarge, "document of %d bytes is over the maximum size", n);
   }
   /* the nesting is bounded first: bson_validate() recurses once per level,
    * and this runs before the client has authenticated */
   if (!dj_bson_depth_ok (p, (size_t) n, DJ_BSON_MAX_DEPTH)) {
      return dj_err (error, 22 /* InvalidBSON */, "invalid BSON in message, or nested deeper than %d levels",
                     DJ_BSON_MAX_DEPTH);
   }
   if (!bson_init_static (doc, p, (size_t) n) || !bson_validate (doc, BSON_VALIDATE_NONE, NULL)) {
      return dj_err (error, 22 /* InvalidBSON */, "invalid BSON in message");
   }
   *len = (uint32_t) n;
   return true;
}

static bool
parse_msg (const uint8_t *body, size_t len, dj_wire_request_t *out, bson_error_t *error)
{
   if (len < 4) {
      return dj_err (error, DJ_FailedToParse, "OP_MSG without flag bits");
   }
   uint32_t flags = (uint32_t) rd32 (body);
   /* bits 0-15 are required to be understood: we know checksumPresent and moreToCome */
   if (flags & 0xFFFCu) {
      return dj_err (error, DJ_FailedToParse, "OP_MSG has unknown required flag bits 0x%x", flags & 0xFFFFu);
   }
   if (flags & DJ_MSG_CHECKSUM) {
      if (len < 8) {
         return dj_err (error, DJ_FailedToParse, "OP_MSG too short for its checksum");
      }
      len -= 4;
      /* the checksum covers the header too: callers pass body = header + 16 */
      uint32_t want = (uint32_t) rd32 (body + len);
      uint32_t got = dj_wire_crc32c (body - DJ_WIRE_HEADER, len + DJ_WIRE_HEADER);
      if (want != got) {
         return dj_err (error, DJ_FailedToParse, "OP_MSG checksum mismatch");
      }
   }
   size_t pos = 4;
   bson_t main_doc;
   bool have_body = false;
   bson_t seqs = BSON_INITIALIZER; /* {identifier: [docs]} */
   while (pos < len) {
      uint8_t kind = body[pos++];
      uint32_t n;
      if (kind == 0) {
         if (have_body) {
            bson_destroy (&seqs);
            return dj_err (error, DJ_FailedToParse, "OP_MSG with two body sections");
         }
         if (!read_doc (body + pos, len - pos, &main_doc, &n, error)) {
            bson_destroy (&seqs);
            return false;
         }
         have_body = true;
         pos += n;
      } else if (kind == 1) {
         if (len - pos < 4) {
            bson_destroy (&seqs);
            return dj_err (error, DJ_FailedToParse, "truncated document sequence");
         }
         int32_t size = rd32 (body + pos);
         if (size < 5 || (size_t) size > len - pos) {
            bson_destroy (&seqs);
            return dj_err (error, DJ_FailedToParse, "document sequence length %d does not fit the message", size);
         }
         const uint8_t *end = body + pos + size, *p = body + pos + 4;
         const uint8_t *nul = memchr (p, 0, (size_t) (end - p));
         if (!nul || nul == p || !bson_utf8_validate ((const char *) p, (size_t) (nul - p), false)) {
            bson_destroy (&seqs);
            return dj_err (error, DJ_FailedToParse, "document sequence without a valid identifier");
         }
         const char *ident = (const char *) p;
         bson_iter_t dup;
         if (bson_iter_init_find (&dup, &seqs, ident)) {
            bson_destroy (&seqs);
            return dj_err (error, DJ_FailedToParse, "duplicate document sequence '%s'", ident);
         }
         bson_t arr;
         uint32_t k = 0;
         bson_append_array_begin (&seqs, ident, -1, &arr);
         for (p = nul + 1; p < end; p += n) {
            bson_t d;
            char kb[16];
            const char *key;
            if (!read_doc (p, (size_t) (end - p), &d, &n, error)) {
               bson_append_array_end (&seqs, &arr);
               bson_destroy (&seqs);
               return false;
            }
            bson_uint32_to_string (k++, &key, kb, sizeof kb);
            bson_append_document (&arr, key, -1, &d);
         }
         bson_append_array_end (&seqs, &arr);
         pos += (size_t) size;
      } else {
         bson_destroy (&seqs);
         return dj_err (error, DJ_FailedToParse, "OP_MSG section kind %u is unknown", kind);
      }
   }
   if (!have_body) {
      bson_destroy (&seqs);
      return dj_err (error, DJ_FailedToParse, "OP_MSG without a body section");
   }
   bson_iter_t it;
   if (!bson_iter_init_find (&it, &main_doc, "$db") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      bson_destroy (&seqs);
      return dj_err (error, 40571, "OP_MSG requests require a $db argument");
   }
   uint32_t dblen;
   const char *db = bson_iter_utf8 (&it, &dblen);
   if (dblen == 0 || dblen >= sizeof out->db) {
      bson_destroy (&seqs);
      return dj_err (error, DJ_InvalidNamespace, "Invalid database name");
   }
   if (strlen (db) != dblen) { /* "x\0y" would otherwise be taken as "x" */
      bson_destroy (&seqs);
      return dj_err (error, DJ_InvalidNamespace, "namespaces cannot have embedded null characters");
   }
   memcpy (out->db, db, dblen + 1);
   out->cmd = bson_copy (&main_doc);
   bson_iter_init (&it, &seqs);
   while (bson_iter_next (&it)) {
      bson_iter_t dup;
      if (bson_iter_init_find (&dup, &main_doc, bson_iter_key (&it))) {
         /* the message first: the key lives in seqs */
         dj_err (error, DJ_FailedToParse, "'%s' is both in the body and a document sequence", bson_iter_key (&it));
         bson_destroy (out->cmd);
         out->cmd = NULL;
         bson_destroy (&seqs);
         return false;
      }
      bson_append_iter (out->cmd, NULL, 0, &it);
   }
   bson_destroy (&seqs);
   out->flags = flags;
   return true;
}

static bool
parse_query (const uint8_t *body, size_t len, dj_wire_request_t *out, bson_error_t *error)
{
   if (len < 4) {
      return dj_err (error, DJ_FailedToParse, "truncated OP_QUERY");
   }
   const uint8_t *name = body + 4, *nul = memchr (name, 0, len - 4);
   if (!nul) {
      return dj_err (error, DJ_FailedToParse, "OP_QUERY without a collection name");
   }
   size_t nlen = (size_t) (nul - name);
   if (nlen < 6 || memcmp (nul - 5, ".$cmd", 5) || nlen - 5 >= sizeof out->db) {
      return dj_err (error, DJ_CommandNotSupported,
                     "OP_QUERY is supported only for commands on <db>.$cmd (the legacy handshake)");
   }
   size_t pos = (size_t) (nul - body) + 1 + 8; /* numberToSkip, numberToReturn */
   bson_t q;
   uint32_t n;
   if (pos > len || !read_doc (body + pos, len - pos, &q, &n, error)) {
      return error->code ? false : dj_err (error, DJ_FailedToParse, "truncated OP_QUERY");
   }
   memcpy (out->db, name, nlen - 5);
   out->db[nlen - 5] = 0;
   bson_iter_t it;
   /* {$query: {...}, $readPreference: ...} wraps the command in old drivers */
   if (bson_iter_init_find (&it, &q, "$query") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      uint32_t l;
      const uint8_t *d;
      bson_t inner;
      bson_iter_document (&it, &l, &d);
      bson_init_static (&inner, d, l);
      out->cmd = bson_copy (&inner);
   } else {
      out->cmd = bson_copy (&q);
   }
   out->legacy = true;
   return true;
}

bool
dj_wire_parse (const dj_wire_header_t *h, const uint8_t *body, size_t len, dj_wire_request_t *out, bson_error_t *error)
{
   memset (out, 0, sizeof *out);
   switch (h->opcode) {
   case DJ_OP_MSG:
      return parse_msg (body, len, out, error);
   case DJ_OP_QUERY:
      return parse_query (body, len, out, error);
   case DJ_OP_COMPRESSED:
      return dj_err (error, DJ_CommandNotSupported, "OP_COMPRESSED: this server offers no compression");
   default:
      return dj_err (error, DJ_CommandNotSupported, "unsupported wire opcode %d", h->opcode);
   }
}

void
dj_wire_request_cleanup (dj_wire_request_t *r)
{
   if (r->cmd) {
      bson_destroy (r->cmd);
      r->cmd = NULL;
   }
}

void
dj_wire_reply (const dj_wire_header_t *h, const dj_wire_request_t *r, const bson_t *reply, int32_t request_id,
               dj_buf_t *out)
{
   dj_wire_reply_to (r, reply, request_id, h->request_id, false, out);
}

void
dj_wire_reply_to (const dj_wire_request_t *r, const bson_t *reply, int32_t request_id, int32_t response_to,
                  bool more_to_come, dj_buf_t *out)
{
   size_t start = out->len;
   put32 (out, 0); /* length, set below */
   put32 (out, request_id);
   put32 (out, response_to);
   if (r && r->legacy) {
      put32 (out, DJ_OP_REPLY);
      put32 (out, 0); /* responseFlags */
      put32 (out, 0); /* cursorID (8 bytes) */
      put32 (out, 0);
      put32 (out, 0); /* startingFrom */
      put32 (out, 1); /* numberReturned */
   } else {
      put32 (out, DJ_OP_MSG);
      put32 (out, more_to_come ? (int32_t) DJ_MSG_MORE_TO_COME : 0); /* flagBits */
      dj_buf_putc (out, 0);
   }
   dj_buf_append (out, bson_get_data (reply), reply->len);
   set32 (out->data + start, (int32_t) (out->len - start));
}
