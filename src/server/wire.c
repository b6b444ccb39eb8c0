/*
 * wire.c -- OP_MSG / OP_QUERY in, OP_MSG / OP_REPLY out (see dj_wire.h).
 * All integers on the wire are little-endian.
 */
#include <string.h>

#include "dj_bson_depth.h"
#include "dj_wire.h"



/* CRC-32C of every byte value (reflected polynomial 0x82F63B78), as
 * `crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))` eight times gives it */
static const uint32_t crc32c_table[256] = {
   0x00000000u, 0xF26B8303u, 0xE13B70F7u, 0x1350F3F4u, 0xC79A971Fu, 0x35F1141Cu,
   0x26A1E7E8u, 0xD4CA64EBu, 0x8AD958CFu, 0x78B2DBCCu, 0x6BE22838u, 0x9989AB3Bu,
   0x4D43CFD0u, 0xBF284CD3u, 0xAC78BF27u, 0x5E133C24u, 0x105EC76Fu, 0xE235446Cu,
   0xF165B798u, 0x030E349Bu, 0xD7C45070u, 0x25AFD373u, 0x36FF2087u, 0xC494A384u,
   0x9A879FA0u, 0x68EC1CA3u, 0x7BBCEF57u, 0x89D76C54u, 0x5D1D08BFu, 0xAF768BBCu,
   0xBC267848u, 0x4E4DFB4Bu, 0x20BD8EDEu, 0xD2D60DDDu, 0xC186FE29u, 0x33ED7D2Au,
   0xE72719C1u, 0x154C9AC2u, 0x061C6936u, 0xF477EA35u, 0xAA64D611u, 0x580F5512u,
   0x4B5FA6E6u, 0xB93425E5u, 0x6DFE410Eu, 0x9F95C20Du, 0x8CC531F9u, 0x7EAEB2FAu,
   0x30E349B1u, 0xC288CAB2u, 0xD1D83946u, 0x23B3BA45u, 0xF779DEAEu, 0x05125DADu,
   0x1642AE59u, 0xE4292D5Au, 0xBA3A117Eu, 0x4851927Du, 0x5B016189u, 0xA96AE28Au,
   0x7DA08661u, 0x8FCB0562u, 0x9C9BF696u, 0x6EF07595u, 0x417B1DBCu, 0xB3109EBFu,
   0xA0406D4Bu, 0x522BEE48u, 0x86E18AA3u, 0x748A09A0u, 0x67DAFA54u, 0x95B17957u,
   0xCBA24573u, 0x39C9C670u, 0x2A993584u, 0xD8F2B687u, 0x0C38D26Cu, 0xFE53516Fu,
   0xED03A29Bu, 0x1F682198u, 0x5125DAD3u, 0xA34E59D0u, 0xB01EAA24u, 0x42752927u,
   0x96BF4DCCu, 0x64D4CECFu, 0x77843D3Bu, 0x85EFBE38u, 0xDBFC821Cu, 0x2997011Fu,
   0x3AC7F2EBu, 0xC8AC71E8u, 0x1C661503u, 0xEE0D9600u, 0xFD5D65F4u, 0x0F36E6F7u,
   0x61C69362u, 0x93AD1061u, 0x80FDE395u, 0x72966096u, 0xA65C047Du, 0x5437877Eu,
   0x4767748Au, 0xB50CF789u, 0xEB1FCBADu, 0x197448AEu, 0x0A24BB5Au, 0xF84F3859u,
   0x2C855CB2u, 0xDEEEDFB1u, 0xCDBE2C45u, 0x3FD5AF46u, 0x7198540Du, 0x83F3D70Eu,
   0x90A324FAu, 0x62C8A7F9u, 0xB602C312u, 0x44694011u, 0x5739B3E5u, 0xA55230E6u,
   0xFB410CC2u, 0x092A8FC1u, 0x1A7A7C35u, 0xE811FF36u, 0x3CDB9BDDu, 0xCEB018DEu,
   0xDDE0EB2Au, 0x2F8B6829u, 0x82F63B78u, 0x709DB87Bu, 0x63CD4B8Fu, 0x91A6C88Cu,
   0x456CAC67u, 0xB7072F64u, 0xA457DC90u, 0x563C5F93u, 0x082F63B7u, 0xFA44E0B4u,
   0xE9141340u, 0x1B7F9043u, 0xCFB5F4A8u, 0x3DDE77ABu, 0x2E8E845Fu, 0xDCE5075Cu,
   0x92A8FC17u, 0x60C37F14u, 0x73938CE0u, 0x81F80FE3u, 0x55326B08u, 0xA759E80Bu,
   0xB4091BFFu, 0x466298FCu, 0x1871A4D8u, 0xEA1A27DBu, 0xF94AD42Fu, 0x0B21572Cu,
   0xDFEB33C7u, 0x2D80B0C4u, 0x3ED04330u, 0xCCBBC033u, 0xA24BB5A6u, 0x502036A5u,
   0x4370C551u, 0xB11B4652u, 0x65D122B9u, 0x97BAA1BAu, 0x84EA524Eu, 0x7681D14Du,
   0x2892ED69u, 0xDAF96E6Au, 0xC9A99D9Eu, 0x3BC21E9Du, 0xEF087A76u, 0x1D63F975u,
   0x0E330A81u, 0xFC588982u, 0xB21572C9u, 0x407EF1CAu, 0x532E023Eu, 0xA145813Du,
   0x758FE5D6u, 0x87E466D5u, 0x94B49521u, 0x66DF1622u, 0x38CC2A06u, 0xCAA7A905u,
   0xD9F75AF1u, 0x2B9CD9F2u, 0xFF56BD19u, 0x0D3D3E1Au, 0x1E6DCDEEu, 0xEC064EEDu,
   0xC38D26C4u, 0x31E6A5C7u, 0x22B65633u, 0xD0DDD530u, 0x0417B1DBu, 0xF67C32D8u,
   0xE52CC12Cu, 0x1747422Fu, 0x49547E0Bu, 0xBB3FFD08u, 0xA86F0EFCu, 0x5A048DFFu,
   0x8ECEE914u, 0x7CA56A17u, 0x6FF599E3u, 0x9D9E1AE0u, 0xD3D3E1ABu, 0x21B862A8u,
   0x32E8915Cu, 0xC083125Fu, 0x144976B4u, 0xE622F5B7u, 0xF5720643u, 0x07198540u,
   0x590AB964u, 0xAB613A67u, 0xB831C993u, 0x4A5A4A90u, 0x9E902E7Bu, 0x6CFBAD78u,
   0x7FAB5E8Cu, 0x8DC0DD8Fu, 0xE330A81Au, 0x115B2B19u, 0x020BD8EDu, 0xF0605BEEu,
   0x24AA3F05u, 0xD6C1BC06u, 0xC5914FF2u, 0x37FACCF1u, 0x69E9F0D5u, 0x9B8273D6u,
   0x88D28022u, 0x7AB90321u, 0xAE7367CAu, 0x5C18E4C9u, 0x4F48173Du, 0xBD23943Eu,
   0xF36E6F75u, 0x0105EC76u, 0x12551F82u, 0xE03E9C81u, 0x34F4F86Au, 0xC69F7B69u,
   0xD5CF889Du, 0x27A40B9Eu, 0x79B737BAu, 0x8BDCB4B9u, 0x988C474Du, 0x6AE7C44Eu,
   0xBE2DA0A5u, 0x4C4623A6u, 0x5F16D052u, 0xAD7D5351u,
};

uint32_t
dj_wire_crc32c (const uint8_t *p, size_t n)
{
   /* a byte at a time from the table: a 48 MB message with the checksum
    * flag costs one table step a byte, not eight shifts (the bitwise loop
    * took seconds per message, found by the structure-aware wire fuzzer) */
   uint32_t crc = 0xFFFFFFFFu;
   for (size_t i = 0; i < n; i++) {
      crc = (crc >> 8) ^ crc32c_table[(crc ^ p[i]) & 0xFFu];
   }
   return ~crc;
}

bool
dj_wire_read_header (const uint8_t *p, dj_wire_header_t *h, bson_error_t *error)
{
   h->length = dj_le32_read (p);
   h->request_id = dj_le32_read (p + 4);
   h->response_to = dj_le32_read (p + 8);
   h->opcode = dj_le32_read (p + 12);
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
   int32_t n = dj_le32_read (p);
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
   uint32_t flags = (uint32_t) dj_le32_read (body);
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
      uint32_t want = (uint32_t) dj_le32_read (body + len);
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
         int32_t size = dj_le32_read (body + pos);
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
   dj_buf_put_u32le (out, 0); /* length, set below */
   dj_buf_put_u32le (out, (uint32_t) request_id);
   dj_buf_put_u32le (out, (uint32_t) response_to);
   if (r && r->legacy) {
      dj_buf_put_u32le (out, (uint32_t) DJ_OP_REPLY);
      dj_buf_put_u32le (out, 0); /* responseFlags */
      dj_buf_put_u32le (out, 0); /* cursorID (8 bytes) */
      dj_buf_put_u32le (out, 0);
      dj_buf_put_u32le (out, 0); /* startingFrom */
      dj_buf_put_u32le (out, 1); /* numberReturned */
   } else {
      dj_buf_put_u32le (out, (uint32_t) DJ_OP_MSG);
      dj_buf_put_u32le (out, more_to_come ? (uint32_t) DJ_MSG_MORE_TO_COME : 0); /* flagBits */
      dj_buf_putc (out, 0);
   }
   dj_buf_append (out, bson_get_data (reply), reply->len);
   dj_le32_write (out->data + start, (uint32_t) (out->len - start));
}
