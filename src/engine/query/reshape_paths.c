/*
 * reshape_paths.c -- a $project whose fields are all field paths of the
 * document, _id excluded ({_id: 0, c0: "$id", c1: "$author.name"}: what
 * SQL's select list compiles to), applied in one pass over the document.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/project/
 *
 * The general $project (reshape.c) walks the document for the fields it
 * keeps, then evaluates each computed field, and each field path searches
 * the document from its start. Here the document's top-level elements are
 * read once, each path's first component picked up on the way, and a field
 * whose value is the element itself is copied as bytes. The result is the
 * general one's: the fields in specification order, a missing value left
 * out, a path through an array mapped over it (that case is handed to the
 * expression evaluator), and the text score (DJ_META_TEXT_SCORE) kept as
 * dj_reshape_apply keeps it.
 */
#include "spec-private.h"

#include "dj_bson_walk.h"

typedef struct {
   const char *name;      /* the output field (borrowed from the shape) */
   size_t name_len;
   const dj_path_t *path; /* borrowed from expr */
   const dj_expr_t *expr; /* borrowed from the shape */
   size_t len0;           /* the length of path->parts[0] */
   size_t len_last;       /* the length of its last part */
   int same0;             /* the next field whose path starts alike, or -1 */
} rfield_t;

struct dj_rpaths {
   rfield_t *f; /* owned, n entries */
   int n;
};

dj_rpaths_t *
dj_rpaths_new (const dj_reshape_t *r)
{
   if (r->kind != RS_PROJECT || !r->inclusion || !r->id_excluded || !r->shape) {
      return NULL;
   }
   const dj_spec_node_t *shape = r->shape;
   int n = 0;
   for (int i = 0; i < shape->nkids; i++) {
      const dj_spec_node_t *k = shape->kids[i];
      bool is_id = !strcmp (k->name, "_id");
      if (is_id && k->kind == DJ_SPEC_EXCLUDE) {
         continue; /* {_id: 0} */
      }
      if (is_id || k->kind != DJ_SPEC_EXPR || !dj_expr_field_path (k->expr)) {
         return NULL;
      }
      n++;
   }
   if (!n) {
      return NULL;
   }
   dj_rpaths_t *rp = bson_malloc0 (sizeof *rp);
   rp->f = bson_malloc0 (sizeof (rfield_t) * (size_t) n);
   for (int i = 0; i < shape->nkids; i++) {
      const dj_spec_node_t *k = shape->kids[i];
      if (k->kind != DJ_SPEC_EXPR) {
         continue;
      }
      rfield_t *f = &rp->f[rp->n++];
      f->name = k->name;
      f->name_len = strlen (k->name);
      f->expr = k->expr;
      f->path = dj_expr_field_path (k->expr);
      f->len0 = strlen (f->path->parts[0]);
      f->len_last = strlen (f->path->parts[f->path->n - 1]);
      f->same0 = -1;
   }
   for (int i = 0; i < rp->n; i++) {
      for (int j = i + 1; j < rp->n && rp->f[i].same0 < 0; j++) {
         if (!strcmp (rp->f[i].path->parts[0], rp->f[j].path->parts[0])) {
            rp->f[i].same0 = j;
         }
      }
   }
   return rp;
}

void
dj_rpaths_free (dj_rpaths_t *rp)
{
   if (rp) {
      bson_free (rp->f);
      bson_free (rp);
   }
}

/* The element `name: v` appended to b as BSON bytes. */
static void
put_value (dj_buf_t *b, const rfield_t *f, const bson_value_t *v)
{
   bson_t one = BSON_INITIALIZER;
   bson_append_value (&one, f->name, (int) f->name_len, v);
   dj_buf_append (b, bson_get_data (&one) + 4, one.len - 5); /* without the length and the trailing 0 */
   bson_destroy (&one);
}

/* A top-level element: its type, and its value's bytes [val, end). */
typedef struct {
   uint8_t type;
   const uint8_t *val, *end;
} relem_t;
/* not BSON types: a path through an array, left to the evaluator; a
 * field under the overlaid `as`, given the match after the scan */
#define MAPPED 0xF0
#define OVERLAID 0xF1

/* The element at key (len bytes) in the document whose bytes e views, into *out;
 * false when there is none (the first of duplicate keys, as a search
 * from the start finds). */
static bool
elem_find (const relem_t *e, const char *key, size_t len, relem_t *out)
{
   dj_bwalk_t w;
   dj_bwalk_init (&w, e->val, (uint32_t) (e->end - e->val));
   while (dj_bwalk_next (&w)) {
      if (w.key_len == len && !memcmp (w.key, key, len)) {
         out->type = w.type;
         out->val = w.val;
         out->end = w.val + w.val_len;
         return true;
      }
   }
   return false;
}

/* The element e's value under the field's name, appended to b as bytes. */
static void
put_elem (dj_buf_t *b, const rfield_t *f, const relem_t *e)
{
   dj_buf_putc (b, e->type);
   dj_buf_append (b, f->name, f->name_len + 1);
   dj_buf_append (b, e->val, (size_t) (e->end - e->val));
}

/* A field whose path goes through an array, evaluated on doc -- or, for a
 * path under the overlaid field `as`, on {as: match}: the joined document
 * holds the same value there. */
static bool
eval_mapped (const rfield_t *f, dj_eval_t *ev, const char *as, const bson_t *match, bson_value_t *v)
{
   if (!as || strcmp (f->path->parts[0], as)) {
      return dj_expr_eval (f->expr, ev, v);
   }
   bson_t one = BSON_INITIALIZER;
   bson_append_document (&one, as, -1, match);
   dj_eval_t sub = *ev;
   dj_arena_value (ev->arena, &one, false, &sub.current); /* the value outlives `one`: the arena keeps it */
   sub.root = sub.current;
   bson_destroy (&one);
   return dj_expr_eval (f->expr, &sub, v);
}

/* ---- the joined rows' memo ------------------------------------------------
 * The rows of a join come from documents of two collections, which mostly
 * have the same keys in the same order from one document to the next. The
 * memo keeps the keys of the last local document and the last match, and
 * where each field was found among them: a row whose documents have those
 * keys takes each field's element by position, each key compared once,
 * instead of matching every key against the fields. Any difference (a key,
 * their number) and the row is shaped the general way, and the memo learns
 * the new layout -- until it has missed too often to be worth it. */
struct dj_rmemo {
   bool lvalid, mvalid, off;
   bool flat;     /* no field's path goes below the element the layout gives it: none maps over an array */
   size_t as_len; /* strlen (the memo's `as`) */
   int misses;
   dj_buf_t keys, mkeys; /* the local document's and the match's keys, each with its 0 */
   uint32_t nkeys, nmkeys;
   uint32_t *klen, *mklen; /* owned: each key's length with its 0 (lcap, mcap entries) */
   bool *under; /* per field: whether its path starts with `as` (the memo's one `as`) */
   int *at;  /* per field: its element's index in the local document (-1: none); under `as`,
                with a longer path: its second part's in the match (-1: none) */
   int score; /* the text score's index in the local document (-1: none) */
   /* dj_rmemo_top: the local document it found in the layout (lel holds
    * its elements until the next row is shaped; NULL: none), and its key's
    * index among keys (-1: none; top_known false: not looked for since
    * the keys were learned) */
   const bson_t *ldoc;
   bool top_known;
   int top_at;
   relem_t *lel, *mel; /* a row's elements (lcap, mcap entries) */
   size_t lcap, mcap;
};

#define MEMO_MISSES 8 /* layouts learned before the memo gives up */

dj_rmemo_t *
dj_rmemo_new (void)
{
   return bson_malloc0 (sizeof (dj_rmemo_t));
}

void
dj_rmemo_free (dj_rmemo_t *mm)
{
   if (mm) {
      dj_buf_cleanup (&mm->keys);
      dj_buf_cleanup (&mm->mkeys);
      bson_free (mm->at);
      bson_free (mm->under);
      bson_free (mm->lel);
      bson_free (mm->mel);
      bson_free (mm->klen);
      bson_free (mm->mklen);
      bson_free (mm);
   }
}

/* Whether a and b have the same first and last w bytes of l (w <= l): with
 * w a constant, memcmp's equality is two loads compared, not a call. */
static inline bool
same_ends (const uint8_t *a, const uint8_t *b, size_t l, size_t w)
{
   return !memcmp (a, b, w) && !memcmp (a + l - w, b + l - w, w);
}

/* Whether the l bytes at a and b are the same: a key with its 0, short as
 * a rule (overlapping loads rather than a call to memcmp). */
static inline bool
same_bytes (const uint8_t *a, const uint8_t *b, size_t l)
{
   if (l > 16) {
      return !memcmp (a, b, l);
   }
   if (l >= 8) {
      return same_ends (a, b, l, 8);
   }
   if (l >= 4) {
      return same_ends (a, b, l, 4);
   }
   for (size_t i = 0; i < l; i++) {
      if (a[i] != b[i]) {
         return false;
      }
   }
   return true;
}

/* Whether doc's keys are the n of keys (klen: each one's length with its
 * 0), in order; its elements into el (room for n). Each key is compared
 * where the element before it ends, its length known -- no search for its
 * 0 -- and each value read with a walk's checks (dj_bwalk_value_len): what
 * a walk of doc (dj_bwalk_next) would find, for less. */
static bool
memo_same (const bson_t *doc, const dj_buf_t *keys, const uint32_t *klen, uint32_t n, relem_t *el)
{
   const uint8_t *data = bson_get_data (doc), *kp = keys->data;
   uint32_t len = doc->len;
   if (len < 5 || dj_bwalk_u32 (data) != len || data[len - 1]) {
      return false;
   }
   const uint8_t *p = data + 4, *end = data + len - 1; /* the next element; the trailing 0 */
   for (uint32_t i = 0; i < n; i++) {
      size_t kl = klen[i];
      /* the key's 0 before the document's end, and the same bytes */
      if ((size_t) (end - p) <= kl || !same_bytes (p + 1, kp, kl)) {
         return false;
      }
      const uint8_t *v = p + 1 + kl;
      bool ok;
      uint32_t vl = dj_bwalk_value_len (p[0], v, (size_t) (end - v), &ok);
      if (!ok) {
         return false;
      }
      el[i] = (relem_t){.type = p[0], .val = v, .end = v + vl};
      p = v + vl;
      kp += kl;
   }
   return p == end; /* (no element after the n) */
}

/* Learns doc's keys into keys/n and their lengths into *klen; el and
 * klen grown to hold them. */
static void
memo_keys (const bson_t *doc, dj_buf_t *keys, uint32_t *n, uint32_t **klen, relem_t **el, size_t *cap)
{
   dj_bwalk_t w;
   keys->len = 0;
   *n = 0;
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      dj_buf_append (keys, w.key, w.key_len + 1);
      ++*n;
   }
   if (*n > *cap) {
      *cap = *n;
      *el = bson_realloc (*el, sizeof (relem_t) * *cap);
      *klen = bson_realloc (*klen, sizeof (uint32_t) * *cap);
   }
   const uint8_t *kp = keys->data;
   for (uint32_t i = 0; i < *n; i++) {
      (*klen)[i] = (uint32_t) strlen ((const char *) kp) + 1;
      kp += (*klen)[i];
   }
}

/* The index of the first key equal to key (len bytes) among keys, -1. */
static int
memo_find (const dj_buf_t *keys, const char *key, size_t len)
{
   const uint8_t *kp = keys->data, *kend = keys->data + keys->len;
   for (int i = 0; kp < kend; i++) {
      size_t l = strlen ((const char *) kp);
      if (l == len && !memcmp (kp, key, len)) {
         return i;
      }
      kp += l + 1;
   }
   return -1;
}

/* Learns the local document's layout (under: the fields under `as`). */
static void
memo_learn_local (dj_rmemo_t *mm, const dj_rpaths_t *rp, const bool *under, const bson_t *doc)
{
   memo_keys (doc, &mm->keys, &mm->nkeys, &mm->klen, &mm->lel, &mm->lcap);
   mm->lvalid = true;
   mm->top_known = false; /* (its index was among the keys before) */
   for (int i = 0; i < rp->n; i++) {
      if (!under[i]) {
         mm->at[i] = memo_find (&mm->keys, rp->f[i].path->parts[0], rp->f[i].len0);
      }
   }
   /* the last text score no field took, as the general scan keeps it */
   mm->score = -1;
   const uint8_t *kp = mm->keys.data;
   for (int j = 0; j < (int) mm->nkeys; j++) {
      size_t l = strlen ((const char *) kp);
      if (l + 1 == sizeof DJ_META_TEXT_SCORE && !memcmp (kp, DJ_META_TEXT_SCORE, l)) {
         bool used = false;
         for (int i = 0; i < rp->n; i++) {
            used |= !under[i] && mm->at[i] == j;
         }
         mm->score = used ? mm->score : j;
      }
      kp += l + 1;
   }
}

/* Learns the match's layout: where each longer path under `as` goes on. */
static void
memo_learn_match (dj_rmemo_t *mm, const dj_rpaths_t *rp, const bool *under, const bson_t *match)
{
   memo_keys (match, &mm->mkeys, &mm->nmkeys, &mm->mklen, &mm->mel, &mm->mcap);
   mm->mvalid = true;
   for (int i = 0; i < rp->n; i++) {
      const rfield_t *f = &rp->f[i];
      if (under[i] && f->path->n > 1) {
         const char *part = f->path->parts[1];
         size_t plen = f->path->n > 2 ? (size_t) (f->path->parts[2] - part - 1) : f->len_last;
         mm->at[i] = memo_find (&mm->mkeys, part, plen);
      }
   }
}

/* What the memo knows of rp and `as` from its first row on. */
static void
memo_init (dj_rmemo_t *mm, const dj_rpaths_t *rp, const char *as)
{
   if (mm->at) {
      return;
   }
   mm->as_len = strlen (as);
   mm->at = bson_malloc (sizeof (int) * (size_t) rp->n);
   mm->under = bson_malloc (sizeof (bool) * (size_t) rp->n);
   mm->flat = true;
   for (int i = 0; i < rp->n; i++) {
      mm->under[i] = rp->f[i].len0 == mm->as_len && !memcmp (rp->f[i].path->parts[0], as, mm->as_len);
      /* (a local field's element is its first part's, one under `as` its second's) */
      mm->flat &= rp->f[i].path->n <= (mm->under[i] ? 2 : 1);
   }
}

bool
dj_rmemo_evaluates (dj_rmemo_t *mm, const dj_reshape_t *r, const char *as)
{
   BSON_ASSERT (r->paths && as);
   memo_init (mm, r->paths, as);
   return !mm->flat;
}

/* apply's arrays, freed unless on its stack */
static void
apply_free (relem_t *found, relem_t *sfound, bool *under, bool *sunder, int *from, int *sfrom)
{
   if (found != sfound) {
      bson_free (found);
   }
   if (under != sunder) {
      bson_free (under);
   }
   if (from != sfrom) {
      bson_free (from);
   }
}

/* The shaping of doc -- with its top-level field `as` replaced by match
 * (NULL: removed) when `as` is given -- appended to out, or (room given)
 * written into the room it gives for the result's size, *len set. */
static bool
apply (const dj_rpaths_t *rp, dj_eval_t *ev, const bson_t *doc, const char *as, const bson_t *match, dj_rmemo_t *mm,
       bson_t *out, dj_room_fn room, void *room_ctx, size_t *len)
{
   relem_t stack_found[16];
   relem_t *found = rp->n <= 16 ? stack_found : bson_malloc (sizeof (relem_t) * (size_t) rp->n);
   bool stack_under[16];
   bool *under = rp->n <= 16 ? stack_under : bson_malloc (sizeof (bool) * (size_t) rp->n);
   int stack_from[16]; /* the path part each field's element was found at */
   int *from = rp->n <= 16 ? stack_from : bson_malloc (sizeof (int) * (size_t) rp->n);
   relem_t score = {0};
   int nfound = 0;
   dj_bwalk_t w;
   bool ok = true;
   mm = as && mm && !mm->off ? mm : NULL;
   if (mm) {
      memo_init (mm, rp, as);
   }
   size_t as_len = mm ? mm->as_len : as ? strlen (as) : 0;
   bool any_mapped = false;
   size_t size; /* the result's */
   /* (a document dj_rmemo_top found in the layout has its elements in lel) */
   bool lsame = mm && mm->lvalid && (mm->ldoc == doc || memo_same (doc, &mm->keys, mm->klen, mm->nkeys, mm->lel));
   if (mm) {
      mm->ldoc = NULL;
   }
   bool msame = mm && (!match || (mm->mvalid && memo_same (match, &mm->mkeys, mm->mklen, mm->nmkeys, mm->mel)));
   if (lsame && msame) {
      /* the last row's layout: each field's element by position */
      const uint8_t *md = match ? bson_get_data (match) : NULL;
      size = 5;
      for (int i = 0; i < rp->n; i++) {
         const rfield_t *f = &rp->f[i];
         int at = mm->at[i];
         from[i] = 1;
         if (!mm->under[i]) {
            found[i] = at >= 0 ? mm->lel[at] : (relem_t){0};
         } else if (!match) {
            found[i] = (relem_t){0};
         } else if (f->path->n == 1) {
            found[i] = (relem_t){.type = BSON_TYPE_DOCUMENT, .val = md, .end = md + match->len};
         } else {
            found[i] = at >= 0 ? mm->mel[at] : (relem_t){0};
            from[i] = 2;
         }
         size += found[i].type ? 2 + f->name_len + (size_t) (found[i].end - found[i].val) : 0;
      }
      score = mm->score >= 0 ? mm->lel[mm->score] : (relem_t){0};
      if (mm->flat) {
         /* every element is the field's own: the size is known */
         size += score.type ? 1 + sizeof DJ_META_TEXT_SCORE + (size_t) (score.end - score.val) : 0;
         goto write;
      }
      goto found_all;
   }
   for (int i = 0; i < rp->n; i++) {
      /* not found yet; the fields under `as` are settled by the overlay */
      under[i] = as && rp->f[i].len0 == as_len && !memcmp (rp->f[i].path->parts[0], as, as_len);
      found[i].type = under[i] ? OVERLAID : 0;
      nfound += under[i];
      from[i] = 1;
   }
   if (mm && ++mm->misses > MEMO_MISSES) {
      mm->off = true; /* the layouts vary: learning costs more than it saves */
   } else if (mm) {
      if (!lsame) {
         memo_learn_local (mm, rp, under, doc);
      }
      if (!msame) {
         memo_learn_match (mm, rp, under, match);
      }
   }
   int next = 0; /* the first field not found: the fields usually come in the document's order */
   dj_bwalk_init (&w, bson_get_data (doc), doc->len);
   while (dj_bwalk_next (&w)) {
      const char *k = w.key;
      size_t klen = w.key_len;
      relem_t e = {.type = w.type, .val = w.val, .end = w.val + w.val_len};
      if (as && klen == as_len && !memcmp (k, as, klen)) {
         continue; /* replaced by the overlay below */
      }
      bool used = false;
      while (next < rp->n && found[next].type) {
         next++;
      }
      if (next < rp->n && rp->f[next].len0 == klen && !memcmp (rp->f[next].path->parts[0], k, klen)) {
         /* the next field's, and the later ones' that start alike */
         for (int i = next; i >= 0; i = rp->f[i].same0) {
            if (!found[i].type) {
               found[i] = e;
               nfound++;
            }
         }
         used = true;
      } else {
         for (int i = next; nfound < rp->n && i < rp->n; i++) {
            const rfield_t *f = &rp->f[i];
            /* the first of duplicate keys, as a search from the start finds */
            if (!found[i].type && f->len0 == klen && !memcmp (f->path->parts[0], k, klen)) {
               found[i] = e;
               used = true;
               nfound++;
            }
         }
      }
      if (!used && k[0] == '$' && !strcmp (k, DJ_META_TEXT_SCORE)) {
         score = e;
      }
   }
   for (int i = 0; as && i < rp->n; i++) {
      if (found[i].type == OVERLAID) {
         const uint8_t *md = match ? bson_get_data (match) : NULL;
         found[i] = match ? (relem_t){.type = BSON_TYPE_DOCUMENT, .val = md, .end = md + match->len} : (relem_t){0};
      }
   }
found_all:;
   /* each field's element: below the first component through documents;
    * an array on the way maps the rest of the path over it, which the
    * evaluator does (type MAPPED) */
   size = 5 + (score.type ? 1 + sizeof DJ_META_TEXT_SCORE + (size_t) (score.end - score.val) : 0);
   for (int i = 0; i < rp->n; i++) {
      const rfield_t *f = &rp->f[i];
      relem_t *e = &found[i];
      for (int p = from[i]; p < f->path->n && e->type && e->type != MAPPED; p++) {
         if (e->type == BSON_TYPE_ARRAY) {
            e->type = MAPPED;
            any_mapped = true;
         } else {
            relem_t in = *e;
            const char *part = f->path->parts[p];
            /* (the parts lie back to back, each ended by its 0) */
            size_t plen = p + 1 < f->path->n ? (size_t) (f->path->parts[p + 1] - part - 1) : f->len_last;
            if (in.type != BSON_TYPE_DOCUMENT || !elem_find (&in, part, plen, e)) {
               e->type = 0; /* missing: left out */
            }
         }
      }
      if (e->type && e->type != MAPPED) {
         size += 2 + f->name_len + (size_t) (e->end - e->val);
      }
   }
write:
   if (!any_mapped && (room || out->len == 5) && size <= INT32_MAX) {
      /* the result's size is known: its bytes written in place */
      uint8_t *w = room ? room (room_ctx, size) : bson_reserve_buffer (out, (uint32_t) size);
      if (w) {
         if (len) {
            *len = size;
         }
         dj_le32_write (w, (uint32_t) size);
         w += 4;
         for (int i = 0; i < rp->n; i++) {
            const rfield_t *f = &rp->f[i];
            const relem_t *e = &found[i];
            if (e->type) {
               *w++ = e->type;
               dj_copy_short (w, (const uint8_t *) f->name, f->name_len + 1);
               w += f->name_len + 1;
               dj_copy_short (w, e->val, (size_t) (e->end - e->val));
               w += e->end - e->val;
            }
         }
         if (score.type) {
            *w++ = score.type;
            memcpy (w, DJ_META_TEXT_SCORE, sizeof DJ_META_TEXT_SCORE);
            w += sizeof DJ_META_TEXT_SCORE;
            memcpy (w, score.val, (size_t) (score.end - score.val));
            w += score.end - score.val;
         }
         *w = 0;
         apply_free (found, stack_found, under, stack_under, from, stack_from);
         return true;
      }
   }
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_reserve (&b, size + 64);
   dj_buf_put_u32le (&b, 0); /* the length, set below */
   for (int i = 0; ok && i < rp->n; i++) {
      const rfield_t *f = &rp->f[i];
      const relem_t *e = &found[i];
      if (e->type == MAPPED) {
         bson_value_t v;
         ok = eval_mapped (f, ev, as, match, &v);
         if (ok && v.value_type != BSON_TYPE_EOD) {
            put_value (&b, f, &v);
         }
      } else if (e->type) {
         put_elem (&b, f, e); /* the element's value as it is, under the field's name */
      }
   }
   if (ok && score.type) {
      dj_buf_putc (&b, score.type);
      dj_buf_append (&b, DJ_META_TEXT_SCORE, sizeof DJ_META_TEXT_SCORE);
      dj_buf_append (&b, score.val, (size_t) (score.end - score.val));
   }
   dj_buf_putc (&b, 0);
   dj_le32_write (b.data, (uint32_t) b.len);
   bson_t view;
   if (room && len) {
      *len = 0; /* (too large to view: the caller's room views it as {}, as out is left below) */
   }
   if (ok && bson_init_static (&view, b.data, b.len)) {
      if (room) {
         memcpy (room (room_ctx, b.len), b.data, b.len);
         *len = b.len;
      } else {
         ok = bson_concat (out, &view);
      }
   }
   dj_buf_cleanup (&b);
   apply_free (found, stack_found, under, stack_under, from, stack_from);
   return ok;
}

int
dj_rmemo_top (dj_rmemo_t *mm, const bson_t *doc, const char *key, size_t len, bson_value_t *v)
{
   mm->ldoc = NULL;
   if (!doc || mm->off || !mm->lvalid || !memo_same (doc, &mm->keys, mm->klen, mm->nkeys, mm->lel)) {
      return -2;
   }
   mm->ldoc = doc;
   if (!mm->top_known) {
      mm->top_known = true;
      mm->top_at = memo_find (&mm->keys, key, len); /* the first of duplicate keys, as a walk finds */
   }
   if (mm->top_at < 0) {
      return 0;
   }
   const relem_t *e = &mm->lel[mm->top_at];
   if (e->type == BSON_TYPE_ARRAY) {
      return -1;
   }
   dj_bson_value_read (e->type, e->val, (uint32_t) (e->end - e->val), v);
   return 1;
}

bool
dj_rpaths_apply (const dj_rpaths_t *rp, dj_eval_t *ev, const bson_t *doc, bson_t *out)
{
   return apply (rp, ev, doc, NULL, NULL, NULL, out, NULL, NULL, NULL);
}

bool
dj_reshape_joins (const dj_reshape_t *r)
{
   return r->paths != NULL;
}

bool
dj_reshape_apply_joined (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, const char *as, const bson_t *match,
                         dj_rmemo_t *memo, bson_t *out)
{
   BSON_ASSERT (r->paths);
   return apply (r->paths, ev, doc, as, match, memo, out, NULL, NULL, NULL);
}

bool
dj_reshape_apply_joined_at (const dj_reshape_t *r, dj_eval_t *ev, const bson_t *doc, const char *as,
                            const bson_t *match, dj_rmemo_t *memo, dj_room_fn room, void *room_ctx, size_t *len)
{
   BSON_ASSERT (r->paths && room && len);
   return apply (r->paths, ev, doc, as, match, memo, NULL, room, room_ctx, len);
}
