/*
 * keycount.c -- the values of a field counted from an index's keys, no
 * document read: how many documents hold each value (a $lookup whose
 * pipeline only counts its matches, aggregation/lookup_group.c).
 *
 * Only an index whose keys stand for the field's values one to one can
 * answer: on that one field, every document in it (not sparse, not
 * partial), one key per document (not multikey), keys whole (not lossy:
 * no cut key, no Decimal128) and not hashed. Then a value's key is the
 * key of the document {field: value}, equal values (1, 1.0, NumberLong(1))
 * have equal keys, and a missing field has null's key -- the equality
 * $lookup uses (null matches null and missing).
 * https://www.mongodb.com/docs/manual/core/index-single/
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/lookup/#equality-match-with-a-single-join-condition
 */
#include "storage-private.h"

#include <string.h>

int
dj_keycount_index (const dj_coll_t *c, const char *field)
{
   if (c->view_on || strchr (field, '.')) {
      return -1;
   }
   for (int i = 0; i < c->nindexes; i++) {
      const dj_index_t *ix = &c->indexes[i];
      bson_iter_t it;
      if (ix->npaths == 1 && !ix->multikey && !ix->sparse && !ix->partial && !ix->lossy && !ix->hashed && !ix->rid_keyed &&
          bson_iter_init (&it, ix->key) && bson_iter_next (&it) && !strcmp (bson_iter_key (&it), field)) {
         return i;
      }
   }
   return -1;
}

bool
dj_keycount_count (dj_ctx_t *ctx, const dj_coll_t *c, int index, const dj_buf_t *key, int64_t *n, bson_error_t *error)
{
   const dj_index_t *ix = &c->indexes[index];
   dj_walk_t w;
   dj_buf_t p;
   dj_buf_init (&p);
   dj_buf_put_u64be (&p, ix->id);
   bool ok = dj_walk_open (&w, ctx, ctx->engine->dbi_data, p.data, p.len, 1, error);
   if (ok) {
      /* the entries of key are adjacent, from the first at or after it (a
       * non-unique index's key ends in the record id, cut here) */
      dj_buf_append (&p, key->data, key->len);
      dj_walk_seek (&w, p.data, p.len);
      *n = 0;
      while (dj_walk_next (&w) && w.k.mv_size - 8 - (ix->unique ? 0 : 8) == key->len &&
             !memcmp ((const uint8_t *) w.k.mv_data + 8, key->data, key->len)) {
         (*n)++;
      }
      ok = dj_walk_close (&w, "index scan", error);
   }
   dj_buf_cleanup (&p);
   return ok;
}

bool
dj_keycount_value_key (const dj_coll_t *c, int index, const char *field, const bson_value_t *v, dj_buf_t *out,
                       bson_error_t *error)
{
   bson_t doc = BSON_INITIALIZER;
   if (v) {
      bson_append_value (&doc, field, -1, v);
   }
   dj_keyset_t ks;
   bool ok = dj_index_keys (&c->indexes[index], &doc, &ks, error);
   bson_destroy (&doc);
   if (!ok) {
      return false;
   }
   out->len = 0;
   ok = ks.n == 1 && !ks.lossy; /* one scalar value: one whole key */
   if (ok) {
      dj_buf_append (out, ks.keys[0].data, ks.keys[0].len);
   }
   dj_keyset_cleanup (&ks);
   return ok;
}
