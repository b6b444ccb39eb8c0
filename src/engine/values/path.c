/*
 * path.c -- dotted field paths ("a.b.0.c") and walking them through values.
 *
 * https://www.mongodb.com/docs/manual/core/document/#dot-notation
 */
#include "dj_values.h"
#include "dj_bson_walk.h"

#include <stdlib.h>
#include <string.h>

bool
dj_path_init (dj_path_t *p, const char *dotted, size_t len, bson_error_t *error)
{
   p->buf = bson_strndup (dotted, len);
   p->n = 1;
   for (size_t i = 0; i < len; i++) {
      if (p->buf[i] == '.') {
         p->n++;
      }
   }
   p->parts = bson_malloc (sizeof (char *) * (size_t) p->n);
   int k = 0;
   p->parts[k++] = p->buf;
   for (size_t i = 0; i < len; i++) {
      if (p->buf[i] == '.') {
         p->buf[i] = '\0';
         p->parts[k++] = p->buf + i + 1;
      }
   }
   for (k = 0; k < p->n; k++) {
      if (p->parts[k][0] == '\0') {
         dj_path_cleanup (p);
         if (len == 0) {
            return dj_err (error, DJ_EmptyFieldName, "An empty update path is not valid.");
         }
         return dj_err (error, DJ_EmptyFieldName,
                        "The update path '%.*s' contains an empty field name, which is not allowed.", (int) len, dotted);
      }
   }
   return true;
}

void
dj_path_cleanup (dj_path_t *p)
{
   bson_free (p->buf);
   bson_free (p->parts);
   p->buf = NULL;
   p->parts = NULL;
   p->n = 0;
}

bool
dj_path_is_prefix (const dj_path_t *a, const dj_path_t *b)
{
   if (a->n > b->n) {
      return false;
   }
   for (int i = 0; i < a->n; i++) {
      if (strcmp (a->parts[i], b->parts[i])) {
         return false;
      }
   }
   return true;
}

bool
dj_path_is_index (const char *s, uint32_t *out)
{
   uint64_t v = 0;

   if (!*s || (s[0] == '0' && s[1])) {
      return false; /* "" and "01" are field names, not positions */
   }
   for (; *s; s++) {
      if (*s < '0' || *s > '9') {
         return false;
      }
      v = v * 10 + (uint64_t) (*s - '0');
      if (v > INT32_MAX) {
         return false;
      }
   }
   if (out) {
      *out = (uint32_t) v;
   }
   return true;
}

bool
dj_value_get_field (const bson_value_t *container, const char *key, bson_value_t *out)
{
   dj_bwalk_t w;

   if (container->value_type != BSON_TYPE_DOCUMENT && container->value_type != BSON_TYPE_ARRAY) {
      return false;
   }
   /* the first byte decides most keys without a call: this lookup runs for
    * every path step of every filter and sort key (a scan's inner loop),
    * so the elements are read by dj_bson_walk.h, not libbson's iterator */
   dj_bwalk_init (&w, container->value.v_doc.data, container->value.v_doc.data_len);
   while (dj_bwalk_next (&w)) {
      if (w.key[0] == key[0] && (!w.key[0] || !strcmp (w.key + 1, key + 1))) {
         dj_bwalk_value (&w, out);
         return true;
      }
   }
   return false;
}

uint32_t
dj_value_count (const bson_value_t *container)
{
   bson_iter_t it;
   uint32_t n = 0;

   if (bson_iter_init_from_data (&it, container->value.v_doc.data, container->value.v_doc.data_len)) {
      while (bson_iter_next (&it)) {
         n++;
      }
   }
   return n;
}

size_t
dj_value_each (const bson_value_t *v, dj_path_visit_fn fn, void *ctx)
{
   bson_iter_t it;
   size_t n = 0;
   if (v->value_type != BSON_TYPE_ARRAY) {
      fn (v, ctx);
      return 1;
   }
   if (bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len)) {
      while (bson_iter_next (&it)) {
         fn (bson_iter_value (&it), ctx);
         n++;
      }
   }
   return n;
}

void
dj_vlist_push (const bson_value_t *v, void *list)
{
   dj_vlist_t *l = list;
   DJ_GROW (l->v, l->n, l->cap, 8);
   l->v[l->n++] = *v;
}

void
dj_path_visit (const bson_value_t *v, const dj_path_t *path, int from, bool expand_leaf, dj_path_visit_fn fn, void *ctx)
{
   if (from == path->n) {
      if (expand_leaf) {
         dj_value_each (v, fn, ctx);
      } else {
         fn (v, ctx);
      }
      return;
   }
   if (v->value_type == BSON_TYPE_DOCUMENT) {
      bson_value_t child;
      if (dj_value_get_field (v, path->parts[from], &child)) {
         dj_path_visit (&child, path, from + 1, expand_leaf, fn, ctx);
      }
   } else if (v->value_type == BSON_TYPE_ARRAY) {
      uint32_t idx;
      bson_iter_t it;
      if (dj_path_is_index (path->parts[from], &idx)) {
         bson_value_t child;
         if (dj_value_get_field (v, path->parts[from], &child)) {
            dj_path_visit (&child, path, from + 1, expand_leaf, fn, ctx);
         }
      }
      if (bson_iter_init_from_data (&it, v->value.v_doc.data, v->value.v_doc.data_len)) {
         while (bson_iter_next (&it)) {
            if (bson_iter_type (&it) == BSON_TYPE_DOCUMENT) {
               dj_path_visit (bson_iter_value (&it), path, from, expand_leaf, fn, ctx);
            }
         }
      }
   }
}
