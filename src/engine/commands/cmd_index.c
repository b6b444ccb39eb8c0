/*
 * cmd_index.c -- createIndexes, dropIndexes, listIndexes.
 * https://www.mongodb.com/docs/manual/reference/command/createIndexes/
 */
#include "dj_commands.h"

#include <stdio.h>

/* Whether two specs differ in an option that makes them different indexes. */
static bool
same_options (const dj_index_t *a, const dj_index_t *b)
{
   if (a->unique != b->unique || a->sparse != b->sparse || (!a->partial) != (!b->partial) || a->ttl != b->ttl ||
       a->expire_after != b->expire_after || a->collation != b->collation) {
      return false;
   }
   /* text indexes share the key {_fts: "text", _ftsx: 1}: their fields,
    * weights and languages tell them apart (text/spec.c's normalized spec) */
   static const char *const text_options[] = {"weights", "default_language", "language_override", NULL};
   for (int i = 0; a->text && b->text && text_options[i]; i++) {
      bson_iter_t ia, ib;
      if (!bson_iter_init_find (&ia, a->spec, text_options[i]) || !bson_iter_init_find (&ib, b->spec, text_options[i]) ||
          dj_value_cmp (bson_iter_value (&ia), bson_iter_value (&ib)) != 0) {
         return false;
      }
   }
   if (a->partial) {
      bson_iter_t ia, ib;
      if (bson_iter_init_find (&ia, a->spec, "partialFilterExpression") &&
          bson_iter_init_find (&ib, b->spec, "partialFilterExpression")) {
         return dj_value_cmp (bson_iter_value (&ia), bson_iter_value (&ib)) == 0;
      }
   }
   return true;
}

/* The change event of an index created or dropped ("createIndexes",
 * "dropIndexes": shown with showExpandedEvents), its operationDescription
 * {indexes: [spec]}.
 * https://www.mongodb.com/docs/manual/reference/change-events/createIndexes/ */
static bool
index_event (dj_ctx_t *ctx, const dj_coll_t *c, const char *op, const bson_t *spec, bson_error_t *error)
{
   bson_t desc = BSON_INITIALIZER, arr;
   BSON_APPEND_ARRAY_BEGIN (&desc, "indexes", &arr);
   BSON_APPEND_DOCUMENT (&arr, "0", spec);
   bson_append_array_end (&desc, &arr);
   bool ok = dj_changes_record_ns (ctx, op, c->db, c->name, c->id, &desc, error);
   bson_destroy (&desc);
   return ok;
}

static bool
drop_index_logged (dj_ctx_t *ctx, dj_coll_t *c, int i, bson_error_t *error)
{
   return index_event (ctx, c, "dropIndexes", c->indexes[i].spec, error) && dj_coll_drop_index (ctx, c, i, error);
}

bool
dj_cmd_create_indexes (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"indexes", "commitQuorum", "ignoreUnknownIndexOptions", "isTimeseriesNamespace", NULL};
   const char *name;
   bson_iter_t it, specs;
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool created = false, ok = false, any_new = false;
   int before;
   bson_t spec = BSON_INITIALIZER; /* the one being created, as stored */

   if (!dj_cmd_target (cmd, db, known, &name, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "indexes") || !BSON_ITER_HOLDS_ARRAY (&it)) {
      return dj_err (error, 40414, "BSON field 'createIndexes.indexes' is missing but a required field");
   }
   bson_iter_recurse (&it, &specs);
   if (!dj_txn_begin (e, true, &ctx, error) || !(c = dj_coll_load_or_create (&ctx, db, name, &created, error))) {
      goto done;
   }
   before = c->nindexes;
   int count = 0;
   while (bson_iter_next (&specs)) {
      bson_t given;
      const uint8_t *d;
      uint32_t l;
      dj_index_t probe;
      count++;
      if (!BSON_ITER_HOLDS_DOCUMENT (&specs)) {
         dj_err (error, DJ_TypeMismatch, "The 'indexes' field must be an array of index specifications");
         goto done;
      }
      bson_iter_document (&specs, &l, &d);
      bson_init_static (&given, d, l);
      bson_destroy (&spec);
      bson_t plain; /* given without djongo's djongoRecordKeyed (storage/ridkey.c) */
      bool keyed;
      dj_ridkey_option (&given, &plain, &keyed);
      bool collated = dj_index_spec_collated (&plain, c->options, &spec, error); /* (default_collation.c) */
      bson_destroy (&plain);
      if (!collated) {
         bson_init (&spec);
         goto done;
      }
      if (!dj_index_load (&probe, &spec, error)) {
         goto done;
      }
      if (!strcmp (probe.name, "*")) {
         dj_index_cleanup (&probe);
         dj_err (error, DJ_BadValue, "The index name '*' is not valid.");
         goto done;
      }
      bool skip = false;
      for (int i = 0; i < c->nindexes && !skip; i++) {
         dj_index_t *ix = &c->indexes[i];
         bool same_key = bson_equal (ix->key, probe.key);
         if (!strcmp (ix->name, probe.name)) {
            if (same_key && same_options (ix, &probe)) {
               skip = true; /* already there: not an error */
               /* (djongo's compiler asks for the _id index record-keyed:
                * storage/ridkey.c) */
               if (keyed && ix->is_id && !dj_ridkey_key_id (&ctx, c, error)) {
                  dj_index_cleanup (&probe);
                  goto done;
               }
               continue;
            }
            dj_err (error, same_key ? DJ_IndexOptionsConflict : DJ_IndexKeySpecsConflict,
                    "An existing index has the same name as the requested index. When index names are not specified, they "
                    "are auto generated and can cause conflicts. Please refer to our documentation. Requested index: %s, "
                    "existing index: %s",
                    probe.name, ix->name);
            dj_index_cleanup (&probe);
            goto done;
         }
         if (ix->text && probe.text && !same_key) {
            /* https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/text-index-restrictions/ */
            dj_err (error, DJ_IndexOptionsConflict, "only one text index per collection allowed, found existing text index \"%s\"",
                    ix->name);
            dj_index_cleanup (&probe);
            goto done;
         }
         /* one key pattern, one index -- unless partial filters or collations tell them apart */
         if (same_key && (!ix->partial && !probe.partial) && ix->collation == probe.collation) {
            if (same_options (ix, &probe)) {
               dj_err (error, DJ_IndexOptionsConflict, "Index already exists with a different name: %s", ix->name);
            } else {
               dj_err (error, DJ_IndexOptionsConflict, "An equivalent index already exists with a different name and options. Requested index: %s, existing index: %s",
                       probe.name, ix->name);
            }
            dj_index_cleanup (&probe);
            goto done;
         }
      }
      if (!skip && probe.is_id && !(probe.npaths == 1 && !strcmp (probe.paths[0].buf, "_id"))) {
         dj_err (error, DJ_BadValue, "The index name '_id_' is reserved for the _id index, which must have key pattern {_id: 1}");
         dj_index_cleanup (&probe);
         goto done;
      }
      dj_index_cleanup (&probe);
      if (!skip) {
         if (!dj_ridkey_add_index (&ctx, c, &spec, keyed, error) || !index_event (&ctx, c, "createIndexes", &spec, error)) {
            dj_ctx_error_info (&ctx, error, reply); /* a DuplicateKey's keyPattern/keyValue */
            goto done;
         }
         any_new = true;
      }
   }
   if (count == 0) {
      dj_err (error, DJ_BadValue, "Must specify at least one index to create");
      goto done;
   }
   BSON_APPEND_INT32 (reply, "numIndexesBefore", before);
   BSON_APPEND_INT32 (reply, "numIndexesAfter", c->nindexes);
   BSON_APPEND_BOOL (reply, "createdCollectionAutomatically", created);
   if (!any_new) {
      BSON_APPEND_UTF8 (reply, "note", "all indexes already exist");
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   bson_destroy (&spec);
   return dj_cmd_end (&ctx, c, ok, error);
}

static int
find_index (const dj_coll_t *c, const bson_value_t *v)
{
   for (int i = 0; i < c->nindexes; i++) {
      if (v->value_type == BSON_TYPE_UTF8 && !strcmp (c->indexes[i].name, v->value.v_utf8.str)) {
         return i;
      }
      if (v->value_type == BSON_TYPE_DOCUMENT) {
         bson_t k;
         bson_init_static (&k, v->value.v_doc.data, v->value.v_doc.data_len);
         if (bson_equal (&k, c->indexes[i].key)) {
            return i;
         }
      }
   }
   return -1;
}

/* Drops the index `which` names: a name or a key pattern (in_array: an
 * element of an array of names, where anything but a name is unknown). */
static bool
drop_one (dj_ctx_t *ctx, dj_coll_t *c, const bson_value_t *which, bool in_array, bson_error_t *error)
{
   int i = find_index (c, which);
   if (i < 0) {
      if (which->value_type == BSON_TYPE_UTF8) {
         return dj_err (error, DJ_IndexNotFound, "index not found with name [%s]", which->value.v_utf8.str);
      }
      return in_array ? dj_err (error, DJ_IndexNotFound, "index not found with name [?]")
                      : dj_err (error, DJ_IndexNotFound, "can't find index with key");
   }
   if (c->indexes[i].is_id) {
      return dj_err (error, DJ_InvalidOptions, "cannot drop _id index");
   }
   return drop_index_logged (ctx, c, i, error);
}

/* dropIndexes: {dropIndexes: coll, index: name | key pattern | "*" | [names]} */
bool
dj_cmd_drop_indexes (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"index", NULL};
   const char *name;
   bson_iter_t it;
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool ok = false;

   if (!dj_cmd_target (cmd, db, known, &name, error)) {
      return false;
   }
   if (!bson_iter_init_find (&it, cmd, "index")) {
      return dj_err (error, 40414, "BSON field 'dropIndexes.index' is missing but a required field");
   }
   const bson_value_t *which = bson_iter_value (&it);
   if (!dj_txn_begin (e, true, &ctx, error)) {
      return false;
   }
   if (!(c = dj_cmd_load_existing (&ctx, db, name, "ns not found %s.%s", error))) {
      goto done;
   }
   int was = c->nindexes;
   if (which->value_type == BSON_TYPE_UTF8 && !strcmp (which->value.v_utf8.str, "*")) {
      while (c->nindexes > 1) {
         if (!drop_index_logged (&ctx, c, c->nindexes - 1, error)) {
            goto done;
         }
      }
   } else if (which->value_type == BSON_TYPE_ARRAY) {
      bson_iter_t ai;
      bson_iter_init_from_data (&ai, which->value.v_doc.data, which->value.v_doc.data_len);
      while (bson_iter_next (&ai)) {
         if (!drop_one (&ctx, c, bson_iter_value (&ai), true, error)) {
            goto done;
         }
      }
   } else if (which->value_type == BSON_TYPE_UTF8 || which->value_type == BSON_TYPE_DOCUMENT) {
      if (!drop_one (&ctx, c, which, false, error)) {
         goto done;
      }
   } else {
      dj_err (error, DJ_TypeMismatch, "BSON field 'dropIndexes.index' is the wrong type '%s'", dj_type_name (which->value_type));
      goto done;
   }
   BSON_APPEND_INT32 (reply, "nIndexesWas", was);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   ok = true;
done:
   return dj_cmd_end (&ctx, c, ok, error);
}

bool
dj_cmd_list_indexes (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   static const char *const known[] = {"cursor", "includeBuildUUIDs", "includeIndexBuildInfo", NULL};
   dj_ctx_t ctx = {0};
   dj_coll_t *c = NULL;
   bool ok = false;

   if (!dj_cmd_open (e, db, cmd, known, false, "ns does not exist: %s.%s", NULL, &ctx, &c, error)) {
      goto done;
   }
   bson_t **docs = bson_malloc (sizeof (bson_t *) * (size_t) c->nindexes);
   for (int i = 0; i < c->nindexes; i++) {
      docs[i] = bson_copy (c->indexes[i].spec);
   }
   dj_reply_results (e, reply, c->ns, docs, (size_t) c->nindexes, -1, false);
   ok = true;
done:
   return dj_cmd_end (&ctx, c, ok, error);
}
