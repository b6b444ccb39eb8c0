/*
 * tree.c -- documents as mutable trees.
 *
 * BSON is a read-optimised format: changing one field means rewriting the
 * buffer. Updates and projections therefore convert a document to a tree of
 * dj_node_t, edit it, and serialise it back once.
 *
 * Ownership: a node owns its key, its scalar value (deep copy) and its
 * children; dj_node_free() frees the whole subtree.
 */
#include "dj_values.h"

#include <stdio.h>

dj_node_t *
dj_node_new_container (bson_type_t t, const char *key)
{
   dj_node_t *n = bson_malloc0 (sizeof *n);
   n->key = key ? bson_strdup (key) : NULL;
   n->v.value_type = t;
   return n;
}

bool
dj_node_is_container (const dj_node_t *n)
{
   return n->v.value_type == BSON_TYPE_DOCUMENT || n->v.value_type == BSON_TYPE_ARRAY;
}

static void
fill_from_data (dj_node_t *n, const uint8_t *data, uint32_t len)
{
   bson_iter_t it;

   if (!bson_iter_init_from_data (&it, data, len)) {
      return;
   }
   while (bson_iter_next (&it)) {
      dj_node_t *k = dj_node_from_value (bson_iter_value (&it),
                                         n->v.value_type == BSON_TYPE_DOCUMENT ? bson_iter_key (&it) : NULL);
      dj_node_push (n, k);
   }
}

dj_node_t *
dj_node_from_value (const bson_value_t *v, const char *key)
{
   dj_node_t *n;

   if (v->value_type == BSON_TYPE_DOCUMENT || v->value_type == BSON_TYPE_ARRAY) {
      n = dj_node_new_container (v->value_type, key);
      fill_from_data (n, v->value.v_doc.data, v->value.v_doc.data_len);
      return n;
   }
   n = bson_malloc0 (sizeof *n);
   n->key = key ? bson_strdup (key) : NULL;
   bson_value_copy (v, &n->v);
   return n;
}

dj_node_t *
dj_node_from_bson (const bson_t *doc)
{
   dj_node_t *n = dj_node_new_container (BSON_TYPE_DOCUMENT, NULL);
   fill_from_data (n, bson_get_data (doc), doc->len);
   return n;
}

dj_node_t *
dj_node_copy (const dj_node_t *src, const char *key)
{
   dj_node_t *n;

   if (dj_node_is_container (src)) {
      n = dj_node_new_container (src->v.value_type, key);
      for (uint32_t i = 0; i < src->n; i++) {
         dj_node_push (n, dj_node_copy (src->kids[i], src->kids[i]->key));
      }
      return n;
   }
   n = bson_malloc0 (sizeof *n);
   n->key = key ? bson_strdup (key) : NULL;
   bson_value_copy (&src->v, &n->v);
   return n;
}

void
dj_node_free (dj_node_t *n)
{
   if (!n) {
      return;
   }
   if (dj_node_is_container (n)) {
      for (uint32_t i = 0; i < n->n; i++) {
         dj_node_free (n->kids[i]);
      }
      bson_free (n->kids);
   } else {
      bson_value_destroy (&n->v);
   }
   bson_free (n->key);
   bson_free (n);
}

void
dj_node_append (bson_t *out, const char *key, int keylen, const dj_node_t *n)
{
   if (n->v.value_type == BSON_TYPE_DOCUMENT) {
      bson_t child;
      bson_append_document_begin (out, key, keylen, &child);
      dj_node_to_bson (n, &child);
      bson_append_document_end (out, &child);
   } else if (n->v.value_type == BSON_TYPE_ARRAY) {
      bson_t child;
      bson_append_array_begin (out, key, keylen, &child);
      dj_node_to_bson (n, &child);
      bson_append_array_end (out, &child);
   } else {
      bson_append_value (out, key, keylen, &n->v);
   }
}

void
dj_node_to_bson (const dj_node_t *doc, bson_t *out)
{
   char buf[16];
   const char *key;

   for (uint32_t i = 0; i < doc->n; i++) {
      if (doc->v.value_type == BSON_TYPE_ARRAY) {
         bson_uint32_to_string (i, &key, buf, sizeof buf);
         dj_node_append (out, key, -1, doc->kids[i]);
      } else {
         dj_node_append (out, doc->kids[i]->key, -1, doc->kids[i]);
      }
   }
}

void
dj_node_value (const dj_node_t *n, bson_t *tmp, bson_value_t *out)
{
   bson_init (tmp);
   if (dj_node_is_container (n)) {
      dj_node_to_bson (n, tmp);
      dj_value_from_doc (tmp, n->v.value_type == BSON_TYPE_ARRAY, out);
   } else {
      *out = n->v;
   }
}

dj_node_t *
dj_node_child (const dj_node_t *n, const char *key, uint32_t *pos)
{
   if (n->v.value_type == BSON_TYPE_ARRAY) {
      uint32_t idx;
      if (!dj_path_is_index (key, &idx) || idx >= n->n) {
         return NULL;
      }
      if (pos) {
         *pos = idx;
      }
      return n->kids[idx];
   }
   if (n->v.value_type != BSON_TYPE_DOCUMENT) {
      return NULL;
   }
   for (uint32_t i = 0; i < n->n; i++) {
      if (!strcmp (n->kids[i]->key, key)) {
         if (pos) {
            *pos = i;
         }
         return n->kids[i];
      }
   }
   return NULL;
}

void
dj_node_push (dj_node_t *arr, dj_node_t *child)
{
   DJ_GROW (arr->kids, arr->n, arr->cap, 4);
   arr->kids[arr->n++] = child;
}

void
dj_node_insert_at (dj_node_t *arr, uint32_t pos, dj_node_t *child)
{
   if (pos > arr->n) {
      pos = arr->n;
   }
   dj_node_push (arr, child);
   memmove (arr->kids + pos + 1, arr->kids + pos, sizeof (dj_node_t *) * (arr->n - 1 - pos));
   arr->kids[pos] = child;
}

void
dj_node_remove_at (dj_node_t *parent, uint32_t pos)
{
   dj_node_free (parent->kids[pos]);
   memmove (parent->kids + pos, parent->kids + pos + 1, sizeof (dj_node_t *) * (parent->n - pos - 1));
   parent->n--;
}

void
dj_node_replace_at (dj_node_t *parent, uint32_t pos, dj_node_t *child)
{
   dj_node_t *old = parent->kids[pos];
   bson_free (child->key);
   child->key = old->key ? bson_strdup (old->key) : NULL;
   dj_node_free (old);
   parent->kids[pos] = child;
}

void
dj_node_set_child (dj_node_t *parent, const char *key, dj_node_t *child)
{
   uint32_t pos;

   if (parent->v.value_type == BSON_TYPE_ARRAY) {
      uint32_t idx = 0;
      dj_path_is_index (key, &idx);
      /* Setting past the end pads with nulls, as $set does:
       * https://www.mongodb.com/docs/manual/reference/operator/update/set/ */
      while (parent->n < idx) {
         bson_value_t null_v = {.value_type = BSON_TYPE_NULL};
         dj_node_push (parent, dj_node_from_value (&null_v, NULL));
      }
      bson_free (child->key);
      child->key = NULL;
      if (idx < parent->n) {
         dj_node_replace_at (parent, idx, child);
      } else {
         dj_node_push (parent, child);
      }
      return;
   }
   bson_free (child->key);
   child->key = bson_strdup (key);
   if (dj_node_child (parent, key, &pos)) {
      dj_node_replace_at (parent, pos, child);
   } else {
      dj_node_push (parent, child);
   }
}

/* --- rendering values the way MongoDB's messages print them ---------------- */

static void
shell_str (dj_buf_t *out, const char *s, size_t n)
{
   dj_buf_putc (out, '"');
   dj_buf_append (out, s, n);
   dj_buf_putc (out, '"');
}

static void
shell_doc (dj_buf_t *out, const uint8_t *data, uint32_t len, bool is_array)
{
   bson_iter_t it;
   bool first = true;

   dj_buf_append (out, is_array ? "[" : "{", 1);
   if (bson_iter_init_from_data (&it, data, len)) {
      while (bson_iter_next (&it)) {
         dj_buf_append (out, first ? " " : ", ", first ? 1 : 2);
         first = false;
         if (!is_array) {
            dj_buf_append (out, bson_iter_key (&it), bson_iter_key_len (&it));
            dj_buf_append (out, ": ", 2);
         }
         dj_value_to_shell (bson_iter_value (&it), out);
      }
   }
   if (!first) {
      dj_buf_putc (out, ' ');
   }
   dj_buf_append (out, is_array ? "]" : "}", 1);
}

void
dj_value_to_shell (const bson_value_t *v, dj_buf_t *out)
{
   char tmp[96];

   if (out->len > 2048) {
      return; /* messages stay short; the server truncates too */
   }
   switch (v->value_type) {
   case BSON_TYPE_UTF8: shell_str (out, v->value.v_utf8.str, v->value.v_utf8.len); return;
   case BSON_TYPE_INT32: snprintf (tmp, sizeof tmp, "%d", v->value.v_int32); break;
   case BSON_TYPE_INT64: snprintf (tmp, sizeof tmp, "%" PRId64, v->value.v_int64); break;
   case BSON_TYPE_DOUBLE: snprintf (tmp, sizeof tmp, "%.17g", v->value.v_double); break;
   case BSON_TYPE_DECIMAL128: {
      char s[BSON_DECIMAL128_STRING];
      bson_decimal128_to_string (&v->value.v_decimal128, s);
      snprintf (tmp, sizeof tmp, "%s", s);
      break;
   }
   case BSON_TYPE_OID: {
      char s[25];
      bson_oid_to_string (&v->value.v_oid, s);
      snprintf (tmp, sizeof tmp, "ObjectId('%s')", s);
      break;
   }
   case BSON_TYPE_BOOL: snprintf (tmp, sizeof tmp, "%s", v->value.v_bool ? "true" : "false"); break;
   case BSON_TYPE_NULL:
   case BSON_TYPE_EOD: snprintf (tmp, sizeof tmp, "null"); break;
   case BSON_TYPE_UNDEFINED: snprintf (tmp, sizeof tmp, "undefined"); break;
   case BSON_TYPE_DATE_TIME: snprintf (tmp, sizeof tmp, "new Date(%" PRId64 ")", v->value.v_datetime); break;
   case BSON_TYPE_DOCUMENT:
   case BSON_TYPE_ARRAY:
      shell_doc (out, v->value.v_doc.data, v->value.v_doc.data_len, v->value_type == BSON_TYPE_ARRAY);
      return;
   case BSON_TYPE_MINKEY: snprintf (tmp, sizeof tmp, "MinKey"); break;
   case BSON_TYPE_MAXKEY: snprintf (tmp, sizeof tmp, "MaxKey"); break;
   case BSON_TYPE_REGEX:
      dj_buf_putc (out, '/');
      dj_buf_append (out, v->value.v_regex.regex, strlen (v->value.v_regex.regex));
      dj_buf_putc (out, '/');
      dj_buf_append (out, v->value.v_regex.options, strlen (v->value.v_regex.options));
      return;
   default: snprintf (tmp, sizeof tmp, "<%s>", dj_type_name (v->value_type)); break;
   }
   dj_buf_append (out, tmp, strlen (tmp));
}

void
dj_doc_to_shell (const bson_t *doc, dj_buf_t *out)
{
   shell_doc (out, bson_get_data (doc), doc->len, false);
}
