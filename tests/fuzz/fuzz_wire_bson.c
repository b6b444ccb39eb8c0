/*
 * fuzz_wire_bson -- libFuzzer harness, structure-aware: the input is a
 * recipe, read byte by byte, for a well-framed OP_MSG message around valid
 * but hostile BSON, which then goes where fuzz_wire's bytes go (header,
 * dj_wire_parse, the reply). Random bytes rarely make a BSON document whose
 * lengths all agree; here every input does, so the fuzzer spends its time
 * past the framing: nesting up to and beyond the depth limit
 * (DJ_BSON_MAX_DEPTH, up to 100,000 levels), documents with up to 260,000
 * fields, every element type, document-sequence sections (kind 1), the
 * checksum flag, and sizes around the 16 MiB document and 48 MB message
 * limits. Must end in a request or a clean error: no crash, no leak, no
 * stack overflow (scripts/fuzz.sh wire_bson; replayed on
 * tests/fuzz/corpus/wire_bson by the test command).
 *
 * The recipe: byte 0 the flag bits, byte 1 the sections; then each
 * document is a list of steps (below, `step`), one byte each plus the
 * bytes a step reads; an exhausted input reads as zeros, which ends every
 * document, so any input makes a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj_buf.h"
#include "dj_bson_depth.h"
#include "dj_wire.h"
#include "fuzz_wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* the input, read front to back */
typedef struct {
   const uint8_t *p;
   size_t n, at;
} recipe_t;

static uint8_t
next (recipe_t *r)
{
   return r->at < r->n ? r->p[r->at++] : 0;
}

static uint32_t
next16 (recipe_t *r)
{
   uint32_t hi = next (r);
   return hi << 8 | next (r);
}

/* Depths around the limits: MongoDB's stored-document limit (100), ours for
 * commands (DJ_BSON_MAX_DEPTH) and what a recursive walk could not survive. */
static const uint32_t depths[] = {1, 2, 99, 100, 101, DJ_BSON_MAX_DEPTH - 1, DJ_BSON_MAX_DEPTH,
                                  DJ_BSON_MAX_DEPTH + 1, 1000, 9500};
/* Sizes of one long string or binary: around the document limit. */
static const uint32_t big_sizes[] = {
   1000, 65536, 1u << 20, 16u * 1024 * 1024 - 64, 16u * 1024 * 1024, DJ_WIRE_MAX_DOCUMENT - 64, DJ_WIRE_MAX_DOCUMENT - 30,
   DJ_WIRE_MAX_DOCUMENT, DJ_WIRE_MAX_DOCUMENT + 1,
   /* with two of 16 MiB - 64 in a message: just under, and just over, DJ_WIRE_MAX_MESSAGE */
   14400000, 14500000,
};
/* Field names: commands, options, hostile ones (empty, $-prefixed, dotted, non-ASCII). */
static const char *const keys[] = {"insert", "find", "aggregate", "hello", "isMaster", "ping", "$db", "documents", "updates",
                                   "deletes", "filter", "pipeline", "cursor", "lsid", "txnNumber", "$", "", "a.b", "$where",
                                   "\xc3\xa9t\xc3\xa9", "_id", "a", "b", "ok", "$clusterTime", "\xf0\x9f\x98\x80"};
#define NKEYS (sizeof keys / sizeof keys[0])
/* Sequence identifiers of kind-1 sections. */
static const char *const seq_ids[] = {"documents", "updates", "deletes", "", "filter", "$db", "documents.x"};

#define MAX_LEVELS 200000
#define MAX_MESSAGE (DJ_WIRE_MAX_MESSAGE + (4u << 20)) /* room to go just past the limit, no further */

typedef struct {
   dj_buf_t *b;
   size_t *open;     /* offset of each open document's length */
   uint32_t *count;  /* elements so far in each open document */
   uint8_t *is_array;
   int depth;
} gen_t;

static void
put64 (dj_buf_t *b, uint64_t v)
{
   dj_buf_put_u32le (b, (uint32_t) v);
   dj_buf_put_u32le (b, (uint32_t) (v >> 32));
}

static void
put_cstr (dj_buf_t *b, const char *s)
{
   dj_buf_append (b, s, strlen (s) + 1);
}

/* a BSON string: length, bytes, NUL */
static void
put_str (dj_buf_t *b, const char *s, uint32_t n)
{
   dj_buf_put_u32le (b, n + 1);
   dj_buf_append (b, s, n);
   dj_buf_putc (b, 0);
}

static bool
room (const gen_t *g, size_t more)
{
   return g->b->len + more < MAX_MESSAGE;
}

/* the element's type byte and key: array index or a name from the recipe */
static void
put_head (gen_t *g, recipe_t *r, uint8_t type)
{
   dj_buf_putc (g->b, type);
   int d = g->depth - 1;
   if (g->is_array[d]) {
      char idx[16];
      snprintf (idx, sizeof idx, "%u", g->count[d]);
      put_cstr (g->b, idx);
   } else {
      put_cstr (g->b, keys[next (r) % NKEYS]);
   }
   g->count[d]++;
}

static void
open_doc (gen_t *g, recipe_t *r, bool array)
{
   if (g->depth > 0) {
      put_head (g, r, array ? 0x04 : 0x03);
   }
   g->open[g->depth] = g->b->len;
   g->count[g->depth] = 0;
   g->is_array[g->depth] = array;
   g->depth++;
   dj_buf_put_u32le (g->b, 0);
}

static void
close_doc (gen_t *g)
{
   g->depth--;
   dj_buf_putc (g->b, 0);
   dj_le32_write (g->b->data + g->open[g->depth], (uint32_t) (g->b->len - g->open[g->depth]));
}

/* one scalar element, of a type the recipe picks */
static void
scalar (gen_t *g, recipe_t *r)
{
   dj_buf_t *b = g->b;
   uint8_t t = next (r);
   switch (t % 20) {
   case 0: put_head (g, r, 0x01); put64 (b, (uint64_t) next16 (r) << 48 | next16 (r)); break; /* doubles: NaN, inf too */
   case 1: put_head (g, r, 0x02); put_str (b, "h\xc3\xa9llo\0x", 8); break;                     /* a NUL inside */
   case 2: put_head (g, r, 0x10); dj_buf_put_u32le (b, next16 (r) << 16 | next16 (r)); break;
   case 3: put_head (g, r, 0x12); put64 (b, (uint64_t) next16 (r) << 48 | 0xffff); break;
   case 4: put_head (g, r, 0x08); dj_buf_putc (b, next (r) & 1); break;
   case 5: put_head (g, r, 0x0A); break;
   case 6: put_head (g, r, 0x09); put64 (b, (uint64_t) next16 (r) << 48); break; /* dates far from now */
   case 7: put_head (g, r, 0x07); for (int i = 0; i < 12; i++) dj_buf_putc (b, next (r)); break;
   case 8: put_head (g, r, 0x13); for (int i = 0; i < 16; i++) dj_buf_putc (b, next (r)); break; /* any decimal bits */
   case 9: put_head (g, r, 0x11); put64 (b, (uint64_t) next16 (r) << 32 | next16 (r)); break;
   case 10: put_head (g, r, 0x0B); put_cstr (b, "^(a+)+$"); put_cstr (b, t & 0x80 ? "imsx" : ""); break;
   case 11: {
      put_head (g, r, 0x05);
      uint32_t n = next (r);
      dj_buf_put_u32le (b, n);
      dj_buf_putc (b, next (r) % 9); /* subtypes 0..8, the UUID and encrypted ones among them */
      for (uint32_t i = 0; i < n; i++) dj_buf_putc (b, next (r));
      break;
   }
   case 12: put_head (g, r, 0xFF); break;
   case 13: put_head (g, r, 0x7F); break;
   case 14: put_head (g, r, 0x06); break;
   case 15: put_head (g, r, 0x0E); put_str (b, "sym", 3); break;
   case 16: put_head (g, r, 0x0D); put_str (b, "function(){}", 12); break;
   case 17: put_head (g, r, 0x0C); put_str (b, "db.c", 4); for (int i = 0; i < 12; i++) dj_buf_putc (b, 0x11); break;
   case 18: {
      /* code with scope: a small scope document */
      put_head (g, r, 0x0F);
      size_t at = b->len;
      dj_buf_put_u32le (b, 0);
      put_str (b, "x", 1);
      dj_buf_put_u32le (b, 12);
      dj_buf_putc (b, 0x10);
      put_cstr (b, "y");
      dj_buf_put_u32le (b, 1);
      dj_buf_putc (b, 0);
      dj_le32_write (b->data + at, (uint32_t) (b->len - at));
      break;
   }
   default: {
      /* a string of arbitrary bytes: invalid UTF-8 must be refused, not stored */
      put_head (g, r, 0x02);
      uint32_t n = next (r) % 16;
      dj_buf_put_u32le (b, n + 1);
      for (uint32_t i = 0; i < n; i++) dj_buf_putc (b, next (r));
      dj_buf_putc (b, 0);
   }
   }
}

/*
 * Steps until the document open at depth `base` closes (the caller closes
 * what is left open). The costly steps (hundreds of thousands of levels or
 * fields, megabytes) take one byte value each, so random recipes stay fast
 * and reach them now and then:
 *   0x00       end the document (and any open inside it)
 *   0x01-0x9F  a scalar element
 *   0xA0-0xBF  open a document (even) or an array (odd)
 *   0xC0-0xCF  close one level
 *   0xD0-0xDF  open depths[next % 10] levels (up to 9,500), documents and arrays in turn
 *   0xE0-0xEF  a run of next * 16 int32 fields
 *   0xF0-0xFC  a scalar element (so are 0xFD-0xFF not followed by 'B')
 *   0xFD 'B'   open 100,000 levels
 *   0xFE 'B'   a run of next16 * 4 int32 fields (up to ~260,000)
 *   0xFF 'B'   a long string, of big_sizes[next % 11] bytes
 */
static void
steps (gen_t *g, recipe_t *r, int base)
{
   while (g->depth > base) {
      uint8_t step = next (r);
      uint32_t n = 0;
      if (step >= 0xFD && next (r) != 'B') {
         step = 0xF0; /* a scalar */
      }
      bool array = false;
      if (step == 0) {
         while (g->depth > base) {
            close_doc (g);
         }
      } else if (step < 0xA0 || (step >= 0xF0 && step < 0xFD)) {
         scalar (g, r);
      } else if (step < 0xC0) {
         if (g->depth < MAX_LEVELS && room (g, 64)) {
            open_doc (g, r, step & 1);
         }
      } else if (step < 0xD0) {
         if (g->depth > base + 1) {
            close_doc (g);
         }
      } else if (step < 0xE0 || step == 0xFD) {
         n = step == 0xFD ? 100000 : depths[next (r) % 10];
         for (uint32_t i = 0; i < n && g->depth < MAX_LEVELS && room (g, 64); i++) {
            open_doc (g, r, array);
            array = !array;
         }
      } else if (step < 0xF0 || step == 0xFE) {
         n = step == 0xFE ? next16 (r) * 4 : next (r) * 16u;
         for (uint32_t i = 0; i < n && room (g, 64); i++) {
            put_head (g, r, 0x10);
            dj_buf_put_u32le (g->b, i);
         }
      } else {
         n = big_sizes[next (r) % (sizeof big_sizes / sizeof big_sizes[0])];
         if (room (g, (size_t) n + 64)) {
            put_head (g, r, 0x02);
            dj_buf_put_u32le (g->b, n + 1);
            dj_buf_reserve (g->b, (size_t) n + 1);
            memset (g->b->data + g->b->len, 'x', n);
            g->b->len += n;
            dj_buf_putc (g->b, 0);
         }
      }
   }
}

/* a top-level document of a kind-1 section */
static void
document (gen_t *g, recipe_t *r)
{
   open_doc (g, r, false);
   steps (g, r, 0);
}

/* the body (kind 0): a command name first, then $db, then the recipe's steps */
static void
body (gen_t *g, recipe_t *r)
{
   static const char *const names[] = {"ping", "hello", "insert", "find", "isMaster", "aggregate", "update", "bogus"};
   open_doc (g, r, false);
   dj_buf_putc (g->b, 0x02);
   put_cstr (g->b, names[next (r) % 8]);
   put_str (g->b, "c", 1);
   dj_buf_putc (g->b, 0x02);
   put_cstr (g->b, "$db");
   uint8_t db = next (r);
   put_str (g->b, db & 1 ? "te\0st" : "test", db & 1 ? 5 : 4); /* a NUL in $db must be refused */
   g->count[0] = 2;
   steps (g, r, 0);
}

/* the level stacks: one set for the process, as the inputs run one at a time */
static size_t *open_at;
static uint32_t *counts;
static uint8_t *arrays;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
   recipe_t r = {data, size, 0};
   dj_buf_t b;
   dj_buf_init (&b);
   if (!open_at) {
      open_at = malloc (MAX_LEVELS * sizeof (size_t));
      counts = malloc (MAX_LEVELS * sizeof (uint32_t));
      arrays = malloc (MAX_LEVELS);
   }
   gen_t g = {&b, open_at, counts, arrays, 0};
   uint8_t flags = next (&r), sections = next (&r);
   uint32_t flag_bits = (flags & 1 ? DJ_MSG_CHECKSUM : 0) | (flags & 2 ? DJ_MSG_MORE_TO_COME : 0) |
                        (flags & 4 ? DJ_MSG_EXHAUST_ALLOWED : 0) | (flags & 8 ? 1u << 7 : 0);
   dj_buf_put_u32le (&b, 0); /* length, patched below */
   dj_buf_put_u32le (&b, 7);
   dj_buf_put_u32le (&b, 0);
   dj_buf_put_u32le (&b, DJ_OP_MSG);
   dj_buf_put_u32le (&b, flag_bits);
   /* sections: the body (kind 0) where the recipe puts it among up to three sequences;
    * a second body or none at all now and then */
   int nseq = sections & 3, body_at = (sections >> 2) % (nseq + 1);
   bool two_bodies = (sections & 0x70) == 0x70, no_body = (sections & 0x70) == 0x60;
   for (int s = 0; s <= nseq; s++) {
      if (s == body_at) {
         for (int k = no_body ? 0 : two_bodies ? 2 : 1; k > 0; k--) {
            dj_buf_putc (&b, 0);
            body (&g, &r);
         }
         continue;
      }
      dj_buf_putc (&b, 1);
      size_t at = b.len;
      dj_buf_put_u32le (&b, 0);
      put_cstr (&b, seq_ids[next (&r) % (sizeof seq_ids / sizeof seq_ids[0])]);
      for (uint32_t n = next (&r) % 5; n > 0 && room (&g, 64); n--) {
         document (&g, &r);
      }
      dj_le32_write (b.data + at, (uint32_t) (b.len - at));
   }
   if (flag_bits & DJ_MSG_CHECKSUM) {
      dj_le32_write (b.data + 0, (uint32_t) (b.len + 4));
      dj_buf_put_u32le (&b, dj_wire_crc32c (b.data, b.len));
   } else {
      dj_le32_write (b.data + 0, (uint32_t) b.len);
   }

   fuzz_wire_message (b.data, b.len);
   dj_buf_cleanup (&b);
   return 0;
}
