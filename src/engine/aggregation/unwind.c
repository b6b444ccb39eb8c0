/*
 * unwind.c -- $unwind: one document per array element.
 *
 * https://www.mongodb.com/docs/manual/reference/operator/aggregation/unwind/
 */
#include "agg-private.h"

#include <stdlib.h>

/* The element `key: v` appended to b as BSON bytes (type, key, value). */
static void
put_element (dj_buf_t *b, const char *key, const bson_value_t *v)
{
   bson_t one = BSON_INITIALIZER;
   bson_append_value (&one, key, -1, v);
   dj_buf_append (b, bson_get_data (&one) + 4, one.len - 5); /* without the length and the trailing 0 */
   bson_destroy (&one);
}

/* dj_agg_with_path for a top-level field (and a top-level idx_field): the
 * document's other elements copied as they are, byte for byte, the field
 * replaced in place or appended -- what $unwind and $lookup do per output
 * document, so it stays a copy rather than a re-encoding of every value. */
static bson_t *
with_top_level (const bson_t *doc, const char *field, const bson_value_t *v, const char *idx_field, int64_t idx)
{
   bson_value_t iv = {.value_type = idx < 0 ? BSON_TYPE_NULL : BSON_TYPE_INT64};
   iv.value.v_int64 = idx;
   const uint8_t *data = bson_get_data (doc);
   dj_buf_t b;
   dj_buf_init (&b);
   dj_buf_reserve (&b, doc->len + (v && v->value_type == BSON_TYPE_DOCUMENT ? v->value.v_doc.data_len : 16) + 64);
   dj_buf_put_u32le (&b, 0); /* the length, set below */
   bool set_v = false, set_i = false;
   bson_iter_t it;
   bson_iter_init (&it, doc);
   bool more = bson_iter_next (&it);
   while (more) {
      /* an element's bytes run from its type byte (just before its key)
       * to the next element's, or to the document's trailing 0 */
      const char *k = bson_iter_key (&it);
      const uint8_t *start = (const uint8_t *) k - 1;
      bool is_field = !strcmp (k, field), is_idx = !is_field && idx_field && !strcmp (k, idx_field);
      more = bson_iter_next (&it);
      const uint8_t *end = more ? (const uint8_t *) bson_iter_key (&it) - 1 : data + doc->len - 1;
      if (is_field) {
         if (v) {
            put_element (&b, field, v);
         }
         set_v = true;
      } else if (is_idx) {
         put_element (&b, idx_field, &iv);
         set_i = true;
      } else {
         dj_buf_append (&b, start, (size_t) (end - start));
      }
   }
   if (!set_v && v) {
      put_element (&b, field, v);
   }
   if (idx_field && !set_i) {
      put_element (&b, idx_field, &iv);
   }
   dj_buf_putc (&b, 0);
   dj_le32_write (b.data, (uint32_t) b.len);
   bson_t *out = bson_new ();
   memcpy (bson_reserve_buffer (out, (uint32_t) b.len), b.data, b.len);
   dj_buf_cleanup (&b);
   return out;
}

/* Copies doc with `path` set to v (v NULL: removed) and, if idx_field, that
 * field set to idx (-1: null). */
bson_t *
dj_agg_with_path (const bson_t *doc, const dj_path_t *path, const bson_value_t *v, const char *idx_field, int64_t idx)
{
   if (path->n == 1 && (!idx_field || !strchr (idx_field, '.'))) {
      return with_top_level (doc, path->parts[0], v, idx_field, idx);
   }
   dj_node_t *tree = dj_node_from_bson (doc);
   dj_node_t *cur = tree;
   for (int i = 0; i < path->n - 1 && cur; i++) {
      cur = dj_node_child (cur, path->parts[i], NULL);
      if (cur && cur->v.value_type != BSON_TYPE_DOCUMENT) {
         cur = NULL;
      }
   }
   if (cur) {
      const char *leaf = path->parts[path->n - 1];
      if (v) {
         dj_node_set_child (cur, leaf, dj_node_from_value (v, leaf));
      } else {
         uint32_t pos;
         if (dj_node_child (cur, leaf, &pos)) {
            dj_node_remove_at (cur, pos);
         }
      }
   }
   if (idx_field) {
      bson_value_t iv = {.value_type = idx < 0 ? BSON_TYPE_NULL : BSON_TYPE_INT64};
      iv.value.v_int64 = idx;
      dj_path_t ip;
      if (dj_path_init (&ip, idx_field, strlen (idx_field), NULL)) {
         dj_node_t *c2 = tree;
         for (int i = 0; i < ip.n - 1 && c2; i++) {
            dj_node_t *nx = dj_node_child (c2, ip.parts[i], NULL);
            if (!nx) {
               dj_node_set_child (c2, ip.parts[i], dj_node_new_container (BSON_TYPE_DOCUMENT, ip.parts[i]));
               nx = dj_node_child (c2, ip.parts[i], NULL);
            }
            c2 = nx->v.value_type == BSON_TYPE_DOCUMENT ? nx : NULL;
         }
         if (c2) {
            dj_node_set_child (c2, ip.parts[ip.n - 1], dj_node_from_value (&iv, ip.parts[ip.n - 1]));
         }
         dj_path_cleanup (&ip);
      }
   }
   bson_t *out = bson_new ();
   dj_node_to_bson (tree, out);
   dj_node_free (tree);
   return out;
}

bool
dj_agg_run_unwind (rctx_t *r, const stage_t *s, dj_docs_t *docs)
{
   dj_docs_t out = {0};
   (void) r;
   for (size_t i = 0; i < docs->n; i++) {
      bson_value_t dv, v = {.value_type = BSON_TYPE_EOD};
      dj_value_from_doc (docs->v[i], false, &dv);
      /* the path through documents only (arrays are not traversed) */
      bson_value_t cur = dv;
      bool found = true;
      for (int p = 0; p < s->path.n && found; p++) {
         bson_value_t next;
         found = cur.value_type == BSON_TYPE_DOCUMENT && dj_value_get_field (&cur, s->path.parts[p], &next);
         if (found) {
            cur = next; /* next is unset when the field is missing */
         }
      }
      if (found) {
         v = cur;
      }
      if (v.value_type == BSON_TYPE_ARRAY) {
         bson_iter_t it;
         int64_t k = 0;
         bson_iter_init_from_data (&it, v.value.v_doc.data, v.value.v_doc.data_len);
         while (bson_iter_next (&it)) {
            dj_docs_push (&out, dj_agg_with_path (docs->v[i], &s->path, bson_iter_value (&it), s->str2, k++));
         }
         if (k == 0 && s->flag) {
            /* an empty array, preserved: the field is removed */
            dj_docs_push (&out, dj_agg_with_path (docs->v[i], &s->path, NULL, s->str2, -1));
         }
      } else if (v.value_type == BSON_TYPE_EOD || v.value_type == BSON_TYPE_NULL || v.value_type == BSON_TYPE_UNDEFINED) {
         if (s->flag) {
            dj_docs_push (&out, s->str2 ? dj_agg_with_path (docs->v[i], &s->path, v.value_type == BSON_TYPE_EOD ? NULL : &v, s->str2, -1)
                                        : bson_copy (docs->v[i]));
         }
      } else {
         /* a scalar unwinds to itself */
         dj_docs_push (&out, s->str2 ? dj_agg_with_path (docs->v[i], &s->path, &v, s->str2, -1) : bson_copy (docs->v[i]));
      }
   }
   dj_docs_clear (docs);
   *docs = out;
   return true;
}

