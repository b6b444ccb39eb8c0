/*
 * default_collation.c -- a collection's and an index's default collation.
 * https://www.mongodb.com/docs/manual/reference/collation/
 *
 * create {collation} gives a collection a default collation: the commands
 * on it that name none (find, aggregate, count, distinct, update, delete,
 * findAndModify) compare strings by it, and the indexes created on it
 * without a collation of their own take it. An index's collation keys its
 * strings (storage/index.c), so a unique index with {strength: 2} refuses
 * "a" beside "A". Both are kept as mongod keeps them: the full collation
 * document (values/collation.c: dj_collation_doc); {locale: "simple"} is no
 * collation and is not kept.
 */
#include "dj_commands.h"

/* The commands whose strings follow the collection's default collation. */
static bool
collated_command (const char *name)
{
   static const char *const names[] = {"find",   "aggregate", "count",         "distinct",
                                       "update", "delete",    "findAndModify", "findandmodify"};
   for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      if (!strcmp (names[i], name)) {
         return true;
      }
   }
   return false;
}

bool
dj_cmd_ns_read (dj_engine_t *e, const char *db, const char *name, const bson_t *cmd, dj_cmd_ns_t *ns,
                bson_error_t *error)
{
   bson_iter_t it, o;
   bson_t options;
   dj_ctx_t ctx = {0};
   bool collated = collated_command (name), viewed = dj_view_concerns (name);
   ns->view = false;
   ns->collation = NULL;
   if ((!collated && !viewed) || !bson_iter_init (&it, cmd) || !bson_iter_next (&it) || !BSON_ITER_HOLDS_UTF8 (&it) ||
       !dj_ns_valid (db, bson_iter_utf8 (&it, NULL), NULL)) {
      return true; /* no collection (aggregate: 1), or a bad name the command reports */
   }
   if (!dj_txn_begin (e, false, &ctx, error)) {
      return false;
   }
   bool ok = true;
   if (dj_coll_entry_options (&ctx, db, bson_iter_utf8 (&it, NULL), &options)) {
      ns->view = viewed && bson_iter_init_find (&o, &options, "viewOn") && BSON_ITER_HOLDS_UTF8 (&o);
      if (collated && !ns->view && bson_iter_init_find (&o, &options, "collation")) {
         /* (parsed while the entry is in view: the result is the process's) */
         ok = dj_collation_parse (bson_iter_value (&o), &ns->collation, error);
      }
   }
   dj_txn_abort (&ctx);
   return ok;
}

bool
dj_collation_option (const bson_value_t *v, bson_t *parent, const char *key, bson_error_t *error)
{
   const dj_collation_t *c = NULL;
   if (!dj_collation_parse (v, &c, error)) {
      return false;
   }
   if (c) {
      BSON_APPEND_DOCUMENT (parent, key, dj_collation_doc (c));
   }
   return true;
}

bool
dj_index_spec_collated (const bson_t *spec, const bson_t *coll_options, bson_t *out, bson_error_t *error)
{
   bson_iter_t it;
   bool own = bson_has_field (spec, "collation");
   bson_init (out);
   bson_iter_init (&it, spec);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "collation")) {
         bson_append_value (out, bson_iter_key (&it), -1, bson_iter_value (&it));
      } else if (!dj_collation_option (bson_iter_value (&it), out, "collation", error)) {
         bson_destroy (out);
         return false;
      }
   }
   if (!own && coll_options && bson_iter_init_find (&it, coll_options, "collation")) {
      /* the collection's default, already in full */
      bson_append_value (out, "collation", -1, bson_iter_value (&it));
   }
   return true;
}
