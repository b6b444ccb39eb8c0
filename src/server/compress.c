/*
 * compress.c -- wire compression: OP_COMPRESSED (opcode 2012) in and out,
 * the handshake's negotiation and the serverStatus counters.
 *
 * https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/#op_compressed
 * https://github.com/mongodb/specifications/blob/master/source/compression/OP_COMPRESSED.md
 *
 * An OP_COMPRESSED body is originalOpcode (int32), uncompressedSize (int32:
 * the original message's size less its 16-byte header), compressorId
 * (uint8: 0 noop, 1 snappy, 2 zlib, 3 zstd) and the compressed bytes. The
 * original message is rebuilt -- header (the same ids, the original opcode
 * and length uncompressedSize + 16) then the decompressed body -- so an
 * OP_MSG checksum is checked over what the client summed.
 *
 * Hostile input: uncompressedSize is bounded by the maximum message size
 * before anything is allocated, and each codec writes into a buffer of
 * exactly that size and must fill it: a "bomb" that would expand further,
 * or a body shorter than it claims, is an error, never a larger buffer.
 */
#include <string.h>
#include <strings.h>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "server-private.h"

static const char *const names[DJ_COMPRESSORS] = {"noop", "snappy", "zlib", "zstd"};

const char *
dj_compressor_name (int id)
{
   return id >= 0 && id < DJ_COMPRESSORS ? names[id] : NULL;
}

int
dj_compressor_id (const char *name)
{
   for (int i = 0; i < DJ_COMPRESSORS; i++) {
      if (!strcmp (name, names[i])) {
         return i;
      }
   }
   return -1;
}

/* The codec: n bytes at src into exactly usize bytes at dst. */
static bool
decode (int id, const uint8_t *src, size_t n, uint8_t *dst, size_t usize, bson_error_t *error)
{
   switch (id) {
   case DJ_COMPRESSOR_NOOP:
      if (n != usize) {
         break;
      }
      memcpy (dst, src, n);
      return true;
   case DJ_COMPRESSOR_SNAPPY: {
      size_t want, got = usize;
      if (snappy_uncompressed_length ((const char *) src, n, &want) != SNAPPY_OK) {
         return dj_err (error, DJ_BadValue, "OP_COMPRESSED: invalid snappy data");
      }
      if (want != usize) {
         break;
      }
      if (snappy_uncompress ((const char *) src, n, (char *) dst, &got) != SNAPPY_OK) {
         return dj_err (error, DJ_BadValue, "OP_COMPRESSED: invalid snappy data");
      }
      if (got != usize) {
         break;
      }
      return true;
   }
   case DJ_COMPRESSOR_ZLIB: {
      uLongf got = (uLongf) usize;
      int rc = uncompress (dst, &got, src, (uLong) n);
      if (rc == Z_BUF_ERROR) {
         break; /* more (or fewer, truncated) bytes than uncompressedSize */
      }
      if (rc != Z_OK) {
         return dj_err (error, DJ_BadValue, "OP_COMPRESSED: invalid zlib data");
      }
      if (got != usize) {
         break;
      }
      return true;
   }
   case DJ_COMPRESSOR_ZSTD: {
      size_t got = ZSTD_decompress (dst, usize, src, n);
      if (ZSTD_isError (got)) {
         if (ZSTD_getErrorCode (got) == ZSTD_error_dstSize_tooSmall) {
            break;
         }
         return dj_err (error, DJ_BadValue, "OP_COMPRESSED: invalid zstd data: %s", ZSTD_getErrorName (got));
      }
      if (got != usize) {
         break;
      }
      return true;
   }
   default:
      return dj_err (error, DJ_BadValue, "OP_COMPRESSED: unknown compressorId %d", id);
   }
   return dj_err (error, DJ_BadValue, "OP_COMPRESSED: the %s data does not decompress to uncompressedSize %zu bytes",
                  names[id], usize);
}

bool
dj_wire_decompress (const dj_wire_header_t *h, const uint8_t *msg, unsigned allowed, uint8_t **out,
                    dj_wire_header_t *inner, int *compressor, bson_error_t *error)
{
   size_t len = (size_t) h->length;
   if (len < DJ_WIRE_HEADER + 9) {
      return dj_err (error, DJ_FailedToParse, "OP_COMPRESSED shorter than its own header");
   }
   const uint8_t *body = msg + DJ_WIRE_HEADER;
   int32_t opcode = dj_le32_read (body), usize = dj_le32_read (body + 4);
   int id = body[8];
   if (opcode != DJ_OP_MSG && opcode != DJ_OP_QUERY) {
      return dj_err (error, DJ_BadValue, "OP_COMPRESSED may wrap only OP_MSG or OP_QUERY, not opcode %d", opcode);
   }
   if (id >= DJ_COMPRESSORS) {
      return dj_err (error, DJ_BadValue, "OP_COMPRESSED: unknown compressorId %d", id);
   }
   if (!(allowed & (1u << id))) {
      /* mongod: a compressor it has not enabled (--networkMessageCompressors) */
      return dj_err (error, DJ_BadValue, "OP_COMPRESSED: compressor %s is not enabled on this server", names[id]);
   }
   if (usize < 0 || usize > DJ_WIRE_MAX_MESSAGE - DJ_WIRE_HEADER) {
      return dj_err (error, DJ_BSONObjectTooLarge,
                     "OP_COMPRESSED: uncompressedSize %d is over the maximum message size %d", usize,
                     DJ_WIRE_MAX_MESSAGE);
   }
   uint8_t *m = bson_malloc ((size_t) usize + DJ_WIRE_HEADER);
   if (!decode (id, body + 9, len - DJ_WIRE_HEADER - 9, m + DJ_WIRE_HEADER, (size_t) usize, error)) {
      bson_free (m);
      return false;
   }
   *inner = *h;
   inner->length = usize + DJ_WIRE_HEADER;
   inner->opcode = opcode;
   dj_le32_write (m, (uint32_t) inner->length);
   dj_le32_write (m + 4, (uint32_t) inner->request_id);
   dj_le32_write (m + 8, (uint32_t) inner->response_to);
   dj_le32_write (m + 12, (uint32_t) inner->opcode);
   *out = m;
   *compressor = id;
   return true;
}

bool
dj_wire_compress (dj_buf_t *out, size_t start, int id)
{
   if (id < 0 || id >= DJ_COMPRESSORS || out->len - start < DJ_WIRE_HEADER) {
      return false;
   }
   const uint8_t *src = out->data + start + DJ_WIRE_HEADER;
   size_t n = out->len - start - DJ_WIRE_HEADER, bound;
   switch (id) {
   case DJ_COMPRESSOR_SNAPPY:
      bound = snappy_max_compressed_length (n);
      break;
   case DJ_COMPRESSOR_ZLIB:
      bound = compressBound ((uLong) n);
      break;
   case DJ_COMPRESSOR_ZSTD:
      bound = ZSTD_compressBound (n);
      break;
   default:
      bound = n;
      break;
   }
   /* owned here until copied back over the message */
   uint8_t *z = bson_malloc (bound ? bound : 1);
   size_t zn = bound;
   bool ok = true;
   if (id == DJ_COMPRESSOR_SNAPPY) {
      ok = snappy_compress ((const char *) src, n, (char *) z, &zn) == SNAPPY_OK;
   } else if (id == DJ_COMPRESSOR_ZLIB) {
      /* mongod's zlib level (zlibCompressionLevel's default): 6 */
      uLongf zl = (uLongf) bound;
      ok = compress2 (z, &zl, src, (uLong) n, 6) == Z_OK;
      zn = (size_t) zl;
   } else if (id == DJ_COMPRESSOR_ZSTD) {
      zn = ZSTD_compress (z, bound, src, n, ZSTD_CLEVEL_DEFAULT);
      ok = !ZSTD_isError (zn);
   } else {
      memcpy (z, src, n);
   }
   if (ok) {
      int32_t opcode = dj_le32_read (out->data + start + 12);
      out->len = start + DJ_WIRE_HEADER; /* the ids stay; length and opcode below */
      dj_buf_put_u32le (out, (uint32_t) opcode);
      dj_buf_put_u32le (out, (uint32_t) n);
      dj_buf_putc (out, (uint8_t) id);
      dj_buf_append (out, z, zn);
      dj_le32_write (out->data + start, (uint32_t) (out->len - start));
      dj_le32_write (out->data + start + 12, (uint32_t) DJ_OP_COMPRESSED);
   }
   bson_free (z);
   return ok;
}

/* ---- the server's side ------------------------------------------------------ */

bool
dj_compress_parse_list (const char *list, unsigned *mask, bson_error_t *error)
{
   *mask = 0;
   if (!list) {
      list = DJ_COMPRESSORS_DEFAULT;
   }
   if (!strcmp (list, "disabled")) {
      return true;
   }
   /* copy: owned here, cut at the commas */
   char *copy = bson_strdup (list), *save = NULL;
   bool ok = true;
   for (char *tok = strtok_r (copy, ",", &save); tok; tok = strtok_r (NULL, ",", &save)) {
      int id = dj_compressor_id (tok);
      if (id < 0) {
         ok = dj_err (error, DJ_BadValue, "Invalid network message compressor specified in configuration: %s", tok);
         break;
      }
      *mask |= 1u << id;
   }
   bson_free (copy);
   return ok;
}

void
dj_compress_negotiate (struct dj_server *srv, dj_conn_t *c, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, e;
   if (bson_iter_init_find (&it, cmd, "compression") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &e)) {
      /* a new list replaces what an earlier hello agreed on; the client's
       * order of preference is kept (non-strings and unknown names are
       * passed over, as mongod passes over compressors it lacks) */
      c->ncompressors = 0;
      while (bson_iter_next (&e) && c->ncompressors < DJ_COMPRESSORS) {
         int id = BSON_ITER_HOLDS_UTF8 (&e) ? dj_compressor_id (bson_iter_utf8 (&e, NULL)) : -1;
         if (id < 0 || !(srv->compressors & (1u << id)) || memchr (c->compressors, id, c->ncompressors)) {
            continue;
         }
         c->compressors[c->ncompressors++] = (uint8_t) id;
      }
   }
   /* no `compression`: a later hello is told what was agreed on */
   if (c->ncompressors == 0) {
      return;
   }
   bson_t arr;
   char kb[16];
   const char *key;
   BSON_APPEND_ARRAY_BEGIN (reply, "compression", &arr);
   for (uint32_t i = 0; i < c->ncompressors; i++) {
      bson_uint32_to_string (i, &key, kb, sizeof kb);
      BSON_APPEND_UTF8 (&arr, key, names[c->compressors[i]]);
   }
   bson_append_array_end (reply, &arr);
}

bool
dj_compress_reply_allowed (const dj_wire_request_t *req)
{
   /* the compression spec's list: the handshake and authentication are never
    * compressed, whichever way they go */
   static const char *const never[] = {"hello",     "isMaster",   "saslStart",       "saslContinue",
                                       "getnonce",  "authenticate", "createUser",    "updateUser",
                                       "copydbSaslStart", "copydbgetnonce", "copydb"};
   bson_iter_t it;
   if (!req->cmd || !bson_iter_init (&it, req->cmd) || !bson_iter_next (&it)) {
      return true;
   }
   for (size_t i = 0; i < sizeof never / sizeof never[0]; i++) {
      if (!strcasecmp (bson_iter_key (&it), never[i])) {
         return false;
      }
   }
   return true;
}

void
dj_compress_count (struct dj_server *srv, int id, bool compressing, int64_t in, int64_t out)
{
   atomic_llong *k = srv->compress_bytes[id] + (compressing ? 0 : 2);
   atomic_fetch_add (&k[0], in);
   atomic_fetch_add (&k[1], out);
}

void
dj_compress_status (struct dj_server *srv, bson_t *reply)
{
   /* serverStatus network.compression, as mongod's:
    * https://www.mongodb.com/docs/manual/reference/command/serverStatus/#mongodb-serverstatus-serverstatus.network.compression */
   bson_t net, comp, one, side;
   BSON_APPEND_DOCUMENT_BEGIN (reply, "network", &net);
   BSON_APPEND_DOCUMENT_BEGIN (&net, "compression", &comp);
   for (int id = 1; id < DJ_COMPRESSORS; id++) {
      if (!(srv->compressors & (1u << id))) {
         continue;
      }
      BSON_APPEND_DOCUMENT_BEGIN (&comp, names[id], &one);
      for (int d = 0; d < 2; d++) {
         BSON_APPEND_DOCUMENT_BEGIN (&one, d ? "decompressor" : "compressor", &side);
         BSON_APPEND_INT64 (&side, "bytesIn", atomic_load (&srv->compress_bytes[id][2 * d]));
         BSON_APPEND_INT64 (&side, "bytesOut", atomic_load (&srv->compress_bytes[id][2 * d + 1]));
         bson_append_document_end (&one, &side);
      }
      bson_append_document_end (&comp, &one);
   }
   bson_append_document_end (&net, &comp);
   bson_append_document_end (reply, &net);
}
