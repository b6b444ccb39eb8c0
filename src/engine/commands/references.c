/*
 * references.c -- insert's `djongoReferences`: references from the new
 * documents to other collections' documents, checked by the insert itself.
 *
 *   {insert: "book", documents: [...],
 *    djongoReferences: [{field: "author_id", from: "author", foreignField: "id"}]}
 *
 * A field of djongo's own (MongoDB's insert has none like it: a MongoDB
 * server answers 40415, an unknown field, so djongo sends it only to this
 * engine and to djongo-server). It is how a SQL FOREIGN KEY of an INSERT
 * (src/exec/constraint.c) is checked in the insert's own command -- one
 * command, one transaction, over the wire one round trip -- instead of by
 * a query after it: each document it inserted has its value at
 * `field` (missing or null: nothing to check) equal to the `foreignField`
 * of some document of `from` (in the same database, under that
 * collection's default collation, as an aggregate's $match {foreignField:
 * {$in: [value]}} on it compares); the documents the command itself
 * inserted count, so a row may reference itself. Otherwise the command
 * fails as a whole -- nothing it wrote stays -- with
 * DocumentValidationFailure (121), "FOREIGN KEY constraint failed:
 * book.author_id = 7 has no row in author.id", the words (SQLite's first)
 * the executor's own check uses. The documents a write error kept out
 * (a duplicate key: INSERT OR IGNORE's) are not checked; the others are,
 * so a command with write errors may still fail as a whole.
 *
 * An item with `deferred: true` is a DEFERRABLE INITIALLY DEFERRED key
 * written inside a transaction: a value without its document does not
 * fail the insert -- the parent may still come before the COMMIT -- and
 * the reply lists the items that had one, as
 * `djongoUnsettled: [index in djongoReferences, ...]`, for the executor
 * to check at COMMIT (src/exec/constraint.c). A settled item needs no
 * check then: a later write that could break it (a DELETE or an UPDATE of
 * the parent's key) records a check of its own. Over the wire this is
 * what saves a bulk INSERT's COMMIT its query for the parent rows;
 * djongo-server's hello announces it as djongo.deferredReferences.
 *
 * Memory: a dj_refs_t and the values it copied are its own (dj_refs_free).
 */
#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "dj_commands.h"

typedef struct {
   const char *field, *from, *foreign; /* borrowed from the command */
   bool dotted;                        /* field is a path (else a top-level field, read from the bytes) */
   dj_buf_t last;                      /* owned: (top-level field) the last value noted: its type, then its bytes */
   bson_t *vals;                       /* owned: the distinct values seen, an array */
   uint32_t n;
   bool deferred;  /* a value without its document is reported, not an error */
   bool unsettled; /* (deferred) one was */
} ref_t;

struct dj_refs {
   ref_t *refs;
   int n;
};

void
dj_refs_free (dj_refs_t *r)
{
   if (!r) {
      return;
   }
   for (int i = 0; i < r->n; i++) {
      bson_destroy (r->refs[i].vals);
      dj_buf_cleanup (&r->refs[i].last);
   }
   bson_free (r->refs);
   bson_free (r);
}

static bool
bad_spec (bson_error_t *error, const char *what)
{
   return dj_err (error, DJ_TypeMismatch, "BSON field 'insert.djongoReferences' %s", what);
}

bool
dj_refs_parse (const bson_t *cmd, const char *db, dj_refs_t **out, bson_error_t *error)
{
   bson_iter_t it, item, f;
   *out = NULL;
   if (!bson_iter_init_find (&it, cmd, "djongoReferences")) {
      return true;
   }
   if (!BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &item)) {
      return bad_spec (error, "is the wrong type, expected type 'array'");
   }
   dj_refs_t *r = bson_malloc0 (sizeof *r);
   int cap = 0;
   while (bson_iter_next (&item)) {
      ref_t ref = {0};
      if (!BSON_ITER_HOLDS_DOCUMENT (&item) || !bson_iter_recurse (&item, &f)) {
         dj_refs_free (r);
         return bad_spec (error, "holds an element that is not an object");
      }
      while (bson_iter_next (&f)) {
         const char *k = bson_iter_key (&f);
         if (!strcmp (k, "deferred")) {
            if (!BSON_ITER_HOLDS_BOOL (&f)) {
               dj_refs_free (r);
               return dj_err (error, DJ_TypeMismatch,
                              "BSON field 'insert.djongoReferences.deferred' is the wrong type, expected type 'bool'");
            }
            ref.deferred = bson_iter_bool (&f);
            continue;
         }
         const char **slot = !strcmp (k, "field") ? &ref.field
                             : !strcmp (k, "from") ? &ref.from
                             : !strcmp (k, "foreignField") ? &ref.foreign
                                                           : NULL;
         if (!slot || !BSON_ITER_HOLDS_UTF8 (&f)) {
            dj_refs_free (r);
            return dj_err (error, slot ? DJ_TypeMismatch : DJ_UnknownField,
                           slot ? "BSON field 'insert.djongoReferences.%s' is the wrong type, expected type 'string'"
                                : "BSON field 'insert.djongoReferences.%s' is an unknown field.",
                           k);
         }
         *slot = bson_iter_utf8 (&f, NULL);
      }
      if (!ref.field || !ref.from || !ref.foreign) {
         dj_refs_free (r);
         return dj_err (error, 40414, "BSON field 'insert.djongoReferences.%s' is missing but a required field",
                        !ref.field ? "field" : !ref.from ? "from" : "foreignField");
      }
      if (!dj_ns_valid (db, ref.from, error)) {
         dj_refs_free (r);
         return false;
      }
      DJ_GROW (r->refs, r->n, cap, 2);
      ref.dotted = strchr (ref.field, '.') != NULL;
      dj_buf_init (&ref.last);
      ref.vals = bson_new ();
      r->refs[r->n++] = ref;
   }
   *out = r;
   return true;
}

void
dj_refs_note (dj_refs_t *r, const bson_t *doc)
{
   for (int i = 0; r && i < r->n; i++) {
      ref_t *ref = &r->refs[i];
      bson_iter_t it;
      if (!ref->dotted) {
         /* a top-level field (a FOREIGN KEY's column: every row of a bulk
          * INSERT) found in the document's bytes, its first occurrence as
          * bson_iter_find_descendant finds it (dj_bson_walk.h) */
         dj_bwalk_t w;
         bson_value_t v;
         bool found = false;
         dj_bwalk_init (&w, bson_get_data (doc), doc->len);
         while (!found && dj_bwalk_next (&w)) {
            found = !strcmp (w.key, ref->field);
         }
         /* a value byte for byte the one noted before it (a bulk INSERT's
          * rows naming one parent) is not compared with the noted ones again */
         if (found && w.type != BSON_TYPE_NULL &&
             !(ref->last.len == w.val_len + 1 && ref->last.data[0] == w.type && !memcmp (ref->last.data + 1, w.val, w.val_len))) {
            dj_bwalk_value (&w, &v);
            dj_bson_array_append_new (ref->vals, &ref->n, &v); /* (a value seen twice is looked up once) */
            ref->last.len = 0;
            dj_buf_putc (&ref->last, w.type);
            dj_buf_append (&ref->last, w.val, w.val_len);
         }
         continue;
      }
      if (!bson_iter_init (&it, doc) || !bson_iter_find_descendant (&it, ref->field, &it) || BSON_ITER_HOLDS_NULL (&it)) {
         continue;
      }
      /* (a value seen twice is looked up once) */
      dj_bson_array_append_new (ref->vals, &ref->n, bson_iter_value (&it));
   }
}

/* Whether `from` (checked out: c, NULL when missing) has a document whose
 * foreignField equals v, compared as {foreignField: {$in: [v]}} under its
 * default collation. */
static bool
has_match (dj_ctx_t *ctx, dj_coll_t *c, const ref_t *ref, const bson_value_t *v, bool *found, bson_error_t *error)
{
   bson_t filter = BSON_INITIALIZER, cond, in;
   bson_iter_t o;
   const dj_collation_t *coll = NULL, *saved;
   *found = false;
   if (!c) {
      return true; /* no collection: no document */
   }
   if (c->options && bson_iter_init_find (&o, c->options, "collation") &&
       !dj_collation_parse (bson_iter_value (&o), &coll, error)) {
      return false;
   }
   BSON_APPEND_DOCUMENT_BEGIN (&filter, ref->foreign, &cond);
   BSON_APPEND_ARRAY_BEGIN (&cond, "$in", &in);
   BSON_APPEND_VALUE (&in, "0", v);
   bson_append_array_end (&cond, &in);
   bson_append_document_end (&filter, &cond);
   saved = dj_collation_set_current (coll);
   dj_matcher_t *m = dj_matcher_new (&filter, error);
   int64_t n = 0;
   bool ok = m && dj_plan_count (ctx, c, m, NULL, &n, error);
   dj_collation_set_current (saved);
   dj_matcher_destroy (m);
   bson_destroy (&filter);
   *found = n > 0;
   return ok;
}

bool
dj_refs_check (dj_refs_t *r, dj_ctx_t *ctx, const char *db, const char *coll, bson_error_t *error)
{
   for (int i = 0; r && i < r->n; i++) {
      ref_t *ref = &r->refs[i];
      bson_iter_t it;
      if (!ref->n) {
         continue;
      }
      dj_coll_t *c = dj_coll_checkout (ctx, db, ref->from, error);
      if (!c && error->code) {
         return false;
      }
      bool ok = true, found = true;
      bson_iter_init (&it, ref->vals);
      while (ok && found && bson_iter_next (&it)) {
         ok = has_match (ctx, c && !c->view_on ? c : NULL, ref, bson_iter_value (&it), &found, error);
      }
      dj_coll_checkin (ctx->engine, c);
      if (ok && !found && ref->deferred) {
         ref->unsettled = true; /* the COMMIT's to check */
      } else if (ok && !found) {
         char *shown = dj_error_value_json (bson_iter_value (&it));
         ok = dj_err (error, DJ_DocumentValidationFailure, "FOREIGN KEY constraint failed: %s.%s = %s has no row in %s.%s",
                      coll, ref->field, shown, ref->from, ref->foreign);
         bson_free (shown);
      }
      if (!ok) {
         return false;
      }
   }
   return true;
}

void
dj_refs_reply (const dj_refs_t *r, bson_t *reply)
{
   bson_t list;
   uint32_t n = 0;
   for (int i = 0; r && i < r->n; i++) {
      if (r->refs[i].unsettled) {
         if (!n) {
            BSON_APPEND_ARRAY_BEGIN (reply, "djongoUnsettled", &list);
         }
         char kb[16];
         const char *key;
         bson_uint32_to_string (n++, &key, kb, sizeof kb);
         bson_append_int32 (&list, key, -1, i);
      }
   }
   if (n) {
      bson_append_array_end (reply, &list);
   }
}
