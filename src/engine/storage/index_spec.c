/*
 * index_spec.c -- index specifications: parsing and checking one (as
 * createIndexes and the catalog give it) into a dj_index_t.
 *
 * Beside ascending/descending fields: one "hashed" field (its key is the
 * value's hash, values/hash.c), "text" fields (a text index, its spec
 * text/spec.c's) and expireAfterSeconds (a TTL index: the
 * commands layer's monitor, commands/ttl.c, deletes what it expires).
 * https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/
 * https://www.mongodb.com/docs/manual/core/index-ttl/
 */
#include "dj_storage.h"

#include <math.h>
#include <stdio.h>

bool
dj_ttl_seconds (const bson_value_t *v, int32_t *out, bson_error_t *error)
{
   /* https://www.mongodb.com/docs/manual/core/index-ttl/ : "The TTL index
    * expireAfterSeconds value must be within 0 and 2147483647 inclusive." */
   if (!dj_value_is_number (v)) {
      return dj_err (error, DJ_TypeMismatch, "TTL index 'expireAfterSeconds' option must be numeric, but received a type of '%s'",
                     dj_type_name (v->value_type));
   }
   double d = dj_value_as_double (v);
   if (isnan (d)) {
      return dj_err (error, DJ_InvalidOptions, "TTL index 'expireAfterSeconds' option must not be NaN");
   }
   if (d < 0) {
      return dj_err (error, DJ_InvalidOptions, "TTL index 'expireAfterSeconds' option cannot be less than 0");
   }
   if (d > 2147483647.0) {
      return dj_err (error, DJ_InvalidOptions,
                     "TTL index 'expireAfterSeconds' option must be within an acceptable range, try a lower number");
   }
   *out = (int32_t) d;
   return true;
}

void
dj_index_cleanup (dj_index_t *ix)
{
   for (int i = 0; i < ix->npaths; i++) {
      dj_path_cleanup (&ix->paths[i]);
   }
   DJ_FREE (ix->paths, ix->desc, ix->name);
   if (ix->key) {
      bson_destroy (ix->key);
   }
   if (ix->spec) {
      bson_destroy (ix->spec);
   }
   dj_matcher_destroy (ix->partial);
   dj_text_spec_destroy (ix->text);
   memset (ix, 0, sizeof *ix);
}

/* Whether the key pattern `it` holds is a text index's. */
static bool
text_key (const bson_iter_t *it)
{
   const uint8_t *d;
   uint32_t l;
   bson_t k;
   bson_iter_document (it, &l, &d);
   return bson_init_static (&k, d, l) && dj_text_is_text_key (&k);
}

bool
dj_index_load (dj_index_t *ix, const bson_t *spec, bson_error_t *error)
{
   bson_iter_t it;

   memset (ix, 0, sizeof *ix);
   /* a text index is known by its spec as listIndexes shows it (text/spec.c) */
   bson_t text_spec;
   bool is_text = bson_iter_init_find (&it, spec, "key") && BSON_ITER_HOLDS_DOCUMENT (&it) && text_key (&it);
   if (is_text) {
      if (!dj_text_spec_new (spec, &ix->text, &text_spec, error)) {
         bson_destroy (&text_spec);
         goto fail;
      }
      ix->spec = bson_copy (&text_spec);
      bson_destroy (&text_spec);
      spec = ix->spec;
   }
   ix->key = bson_new ();
   if (!ix->spec) {
      ix->spec = bson_copy (spec);
   }
   bson_iter_init (&it, spec);
   bool have_key = false;
   while (bson_iter_next (&it)) {
      const char *f = bson_iter_key (&it);
      if (!strcmp (f, "key")) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'key' must be an object, but got %s",
                    dj_type_name (bson_iter_type (&it)));
            goto fail;
         }
         bson_iter_t ki;
         bson_iter_recurse (&it, &ki);
         bson_t kdoc;
         const uint8_t *kd;
         uint32_t kl;
         bson_iter_document (&it, &kl, &kd);
         bson_init_static (&kdoc, kd, kl);
         ix->hashed = 0;
         /* a field given twice: the last one counts, for key, name and
          * partialFilterExpression alike (the earlier one is freed) */
         bson_reinit (ix->key);
         for (int i = 0; i < ix->npaths; i++) {
            dj_path_cleanup (&ix->paths[i]);
         }
         ix->npaths = 0;
         while (bson_iter_next (&ki)) {
            const bson_value_t *v = bson_iter_value (&ki);
            const bson_value_t one = {.value_type = BSON_TYPE_INT32, .value.v_int32 = 1};
            bool hashed = v->value_type == BSON_TYPE_UTF8 && !strcmp (v->value.v_utf8.str, "hashed");
            if (ix->text && !strcmp (bson_iter_key (&ki), "_fts")) {
               ix->text_pos = ix->npaths; /* text/spec.c wrote {_fts: "text", _ftsx: 1} */
               v = &one;
            }
            double d = dj_value_as_double (v);
            if (hashed && ix->hashed) {
               /* https://www.mongodb.com/docs/manual/core/indexes/index-types/index-hashed/ :
                * a compound hashed index holds one hashed field */
               dj_buf_t shell;
               dj_buf_init (&shell);
               dj_doc_to_shell (&kdoc, &shell);
               dj_err (error, 31303, "A maximum of one index field is allowed to be hashed but found 2 for 'key' %.*s",
                       (int) shell.len, (char *) shell.data);
               dj_buf_cleanup (&shell);
               goto fail;
            }
            if (v->value_type == BSON_TYPE_UTF8 && !hashed && dj_geo_index_kind (ix, v)) {
               if (ix->geo && ix->geo != ix->npaths + 1) {
                  dj_err (error, 16800, "can't have 2 geo fields");
                  goto fail;
               }
               ix->geo = ix->npaths + 1;
            } else if (v->value_type == BSON_TYPE_UTF8 && !hashed) {
               dj_err (error, DJ_CannotCreateIndex, "Index type '%s' is not supported by the embedded engine",
                       v->value.v_utf8.str);
               goto fail;
            }
            if (!hashed && ix->geo != ix->npaths + 1 && (!dj_value_is_number (v) || d == 0 || d != d)) {
               dj_err (error, DJ_CannotCreateIndex, "Values in the index key pattern can only be numbers or strings, and numbers must be non-zero; found %s: %s",
                       bson_iter_key (&ki), dj_type_name (v->value_type));
               goto fail;
            }
            if (bson_iter_key (&ki)[0] == '\0' || bson_iter_key (&ki)[0] == '$') {
               dj_err (error, DJ_CannotCreateIndex, "Index key contains an illegal field name: '%s'", bson_iter_key (&ki));
               goto fail;
            }
            ix->paths = bson_realloc (ix->paths, sizeof (dj_path_t) * (size_t) (ix->npaths + 1));
            ix->desc = bson_realloc (ix->desc, sizeof (bool) * (size_t) (ix->npaths + 1));
            if (!dj_path_init (&ix->paths[ix->npaths], bson_iter_key (&ki), bson_iter_key_len (&ki), error)) {
               dj_err (error, DJ_CannotCreateIndex, "Index key contains an illegal field name: '%s'", bson_iter_key (&ki));
               goto fail;
            }
            ix->desc[ix->npaths] = !hashed && !ix->geo && d < 0;
            if (hashed) {
               ix->hashed = ix->npaths + 1;
            }
            ix->npaths++;
            bson_append_value (ix->key, bson_iter_key (&ki), -1, bson_iter_value (&ki));
         }
         have_key = true;
      } else if (!strcmp (f, "name")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'name' must be a string");
            goto fail;
         }
         bson_free (ix->name);
         ix->name = bson_strdup (bson_iter_utf8 (&it, NULL));
      } else if (!strcmp (f, "unique")) {
         ix->unique = bson_iter_as_bool (&it);
      } else if (!strcmp (f, "sparse")) {
         ix->sparse = bson_iter_as_bool (&it);
      } else if (!strcmp (f, "partialFilterExpression")) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'partialFilterExpression' must be an object");
            goto fail;
         }
         bson_t pf;
         const uint8_t *d;
         uint32_t l;
         bson_iter_document (&it, &l, &d);
         bson_init_static (&pf, d, l);
         dj_matcher_destroy (ix->partial);
         ix->partial = dj_matcher_new (&pf, error);
         if (!ix->partial) {
            goto fail;
         }
         if (dj_matcher_text (ix->partial)) {
            dj_err (error, DJ_CannotCreateIndex, "unsupported expression in partial index: $text");
            goto fail;
         }
      } else if (!strcmp (f, "collation")) {
         /* https://www.mongodb.com/docs/manual/reference/collation/ (index keys by it) */
         if (!dj_collation_parse (bson_iter_value (&it), &ix->collation, error)) {
            goto fail;
         }
      } else if (!strcmp (f, "expireAfterSeconds")) {
         if (!dj_ttl_seconds (bson_iter_value (&it), &ix->expire_after, error)) {
            goto spec_error;
         }
         ix->ttl = true;
      } else if (!strcmp (f, "hidden")) {
         /* https://www.mongodb.com/docs/manual/core/index-hidden/ */
         if (!BSON_ITER_HOLDS_BOOL (&it)) {
            dj_err (error, DJ_TypeMismatch, "The field 'hidden' must be a boolean");
            goto fail;
         }
         ix->hidden = bson_iter_bool (&it);
      } else if (!strcmp (f, "v") || !strcmp (f, "background") || !strcmp (f, "ns") ||
                 !strcmp (f, "storageEngine") || !strcmp (f, "weights") ||
                 !strcmp (f, "default_language") || !strcmp (f, "language_override") || !strcmp (f, "textIndexVersion") ||
                 !strcmp (f, "dropDups") || !strcmp (f, "wildcardProjection") || !strcmp (f, "clustered") ||
                 !strcmp (f, "2dsphereIndexVersion") || !strcmp (f, "min") || !strcmp (f, "max") || !strcmp (f, "bits") ||
                 !strcmp (f, "bucketSize")) {
         continue;
      } else {
         dj_err (error, DJ_InvalidOptions, "The field '%s' is not valid for an index specification. Specification: %s", f,
                 ix->name ? ix->name : "");
         goto fail;
      }
   }
   if (!have_key || ix->npaths == 0) {
      dj_err (error, have_key ? DJ_CannotCreateIndex : DJ_FailedToParse,
              have_key ? "Index keys cannot be an empty object." : "The 'key' field is a required property of an index specification");
      goto fail;
   }
   if (!ix->name) {
      dj_err (error, DJ_FailedToParse, "The 'name' field is a required property of an index specification");
      goto fail;
   }
   if (ix->sparse && ix->partial) {
      dj_err (error, DJ_CannotCreateIndex, "cannot mix \"partialFilterExpression\" and \"sparse\" options");
      goto fail;
   }
   if (ix->geo && !dj_geo_index_options (ix, spec, error)) {
      goto fail;
   }
   ix->is_id = !strcmp (ix->name, "_id_");
   if (ix->is_id) {
      ix->unique = true; /* _id is unique without saying so */
   }
   if (ix->hashed && ix->unique && !ix->is_id) {
      dj_err (error, 16764, "Currently hashed indexes cannot guarantee uniqueness. Use a regular index.");
      goto fail;
   }
   if (ix->ttl && ix->is_id) {
      dj_err (error, DJ_InvalidIndexSpecificationOption, "The field 'expireAfterSeconds' is not valid for an _id index specification.");
      goto spec_error;
   }
   if (ix->ttl && ix->npaths != 1) {
      /* https://www.mongodb.com/docs/manual/core/index-ttl/#restrictions :
       * TTL indexes are single-field indexes */
      dj_err (error, DJ_CannotCreateIndex, "TTL indexes are single-field indexes, compound indexes do not support TTL");
      goto spec_error;
   }
   return true;
spec_error: {
   /* mongod appends the spec to the TTL errors: "... Index spec: { ... }" */
   dj_buf_t shell;
   dj_buf_init (&shell);
   dj_doc_to_shell (spec, &shell);
   dj_buf_t msg;
   dj_buf_init (&msg);
   dj_buf_append (&msg, error->message, strlen (error->message));
   dj_buf_append (&msg, ". Index spec: ", 14);
   dj_buf_append (&msg, shell.data, shell.len);
   dj_buf_putc (&msg, 0);
   bson_strncpy (error->message, (const char *) msg.data, sizeof error->message);
   dj_buf_cleanup (&msg);
   if (error->code != DJ_InvalidIndexSpecificationOption) {
      error->code = DJ_CannotCreateIndex;
   }
   dj_buf_cleanup (&shell);
}
fail:
   dj_index_cleanup (ix);
   return false;
}

