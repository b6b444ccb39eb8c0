/*
 * dj_bson_keys.c -- renaming keys through a document (see dj_bson_keys.h).
 */
#include "dj_bson_keys.h"

static void
copy_renamed (const bson_t *doc, bson_t *out, dj_key_rename_fn rename)
{
   bson_iter_t it;
   if (!bson_iter_init (&it, doc)) {
      return;
   }
   while (bson_iter_next (&it)) {
      char buf[64];
      const char *key = rename (bson_iter_key (&it), buf, sizeof buf);
      const uint8_t *data = NULL;
      uint32_t len = 0;
      bool array = BSON_ITER_HOLDS_ARRAY (&it);
      bson_t sub, child;
      if (array) {
         bson_iter_array (&it, &len, &data);
      } else if (BSON_ITER_HOLDS_DOCUMENT (&it)) {
         bson_iter_document (&it, &len, &data);
      }
      if (!data || !bson_init_static (&sub, data, len)) {
         bson_append_iter (out, key, -1, &it);
         continue;
      }
      if (array) {
         bson_append_array_begin (out, key, -1, &child);
      } else {
         bson_append_document_begin (out, key, -1, &child);
      }
      copy_renamed (&sub, &child, rename);
      if (array) {
         bson_append_array_end (out, &child);
      } else {
         bson_append_document_end (out, &child);
      }
   }
}

bson_t *
dj_bson_rename_keys (bson_t *doc, dj_key_rename_fn rename)
{
   bson_t *out = bson_new ();
   copy_renamed (doc, out, rename);
   bson_destroy (doc);
   return out;
}
