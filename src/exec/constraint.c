/*
 * constraint.c -- CHECK and FOREIGN KEY constraints at run time (see
 * dj_exec.h): the collection's validator rebuilt from the table's entry,
 * a renamed column followed into its constraints, foreign keys checked.
 */
#include <string.h>

#include "dj_bson_array.h"
#include "dj_bson_walk.h"
#include "exec-private.h"

/* ---- CHECK constraints (src/compile/ddl.c) ---- */

/* Whether the table's entry has a CHECK or FOREIGN KEY named `name`. */
bool
exec_entry_has_constraint (dj_exec_t *x, const char *table, const char *name, bool *has, bson_error_t *error)
{
   static const char *const lists[] = {"checks", "fks"};
   *has = false;
   for (int l = 0; l < 2 && !*has; l++) {
      bson_iter_t list, item, f;
      bool found;
      if (!exec_entry_field (x, table, lists[l], &list, &found, error)) {
         return false;
      }
      if (!found || !bson_iter_recurse (&list, &item)) {
         continue;
      }
      while (bson_iter_next (&item)) {
         if (BSON_ITER_HOLDS_DOCUMENT (&item) && bson_iter_recurse (&item, &f) && bson_iter_find (&f, "name") &&
             BSON_ITER_HOLDS_UTF8 (&f) && !strcmp (bson_iter_utf8 (&f, NULL), name)) {
            *has = true;
         }
      }
   }
   return true;
}

/* After an ALTER TABLE changed the entry's checks: the collection's
 * validator becomes {$and: [each check's validator]} ({} for none) by
 * collMod. SQL's ADD CONSTRAINT CHECK refuses a table whose rows break
 * it, where MongoDB's collMod does not look at existing documents (the
 * manual, "Schema Validation": "existing documents do not undergo
 * validation checks until modification"), so the rows are read first:
 * one that fails the new validator fails the statement (121, as a write
 * would), before the validator changes. */
bool
exec_sync_checks (dj_exec_t *x, const char *table, bson_error_t *error)
{
   bson_iter_t list, item, v;
   bool found;
   exec_forget_tables (x); /* the commands just changed the entry */
   if (!exec_entry_field (x, table, "checks", &list, &found, error)) {
      return false;
   }
   if (!found || !BSON_ITER_HOLDS_ARRAY (&list)) {
      return true; /* the table never had a CHECK: its validator is not ours */
   }
   bson_t validator = BSON_INITIALIZER, all;
   uint32_t n = 0;
   BSON_APPEND_ARRAY_BEGIN (&validator, "$and", &all);
   bson_iter_recurse (&list, &item);
   while (bson_iter_next (&item)) {
      if (BSON_ITER_HOLDS_DOCUMENT (&item) && bson_iter_recurse (&item, &v) && bson_iter_find (&v, "validator")) {
         char kb[16];
         const char *key;
         bson_uint32_to_string (n++, &key, kb, sizeof kb);
         bson_append_value (&all, key, -1, bson_iter_value (&v));
      }
   }
   bson_append_array_end (&validator, &all);
   if (n == 0) {
      bson_reinit (&validator);
   }
   bool ok = true;
   bson_t reply;
   if (n) {
      bson_t cmd = BSON_INITIALIZER, filter, nor;
      BSON_APPEND_UTF8 (&cmd, "find", table);
      BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &filter);
      BSON_APPEND_ARRAY_BEGIN (&filter, "$nor", &nor);
      BSON_APPEND_DOCUMENT (&nor, "0", &validator);
      bson_append_array_end (&filter, &nor);
      bson_append_document_end (&cmd, &filter);
      BSON_APPEND_INT32 (&cmd, "limit", 1);
      ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
      bson_iter_t d;
      if (ok && bson_iter_init (&d, &reply) && bson_iter_find_descendant (&d, "cursor.firstBatch.0", &d)) {
         ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_DocumentValidationFailure,
                            "CHECK constraint failed: a row of %s breaks it", table);
      }
      bson_destroy (&reply);
      bson_destroy (&cmd);
   }
   if (ok) {
      bson_t cmd = BSON_INITIALIZER;
      BSON_APPEND_UTF8 (&cmd, "collMod", table);
      BSON_APPEND_DOCUMENT (&cmd, "validator", &validator);
      ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
      bson_destroy (&reply);
      bson_destroy (&cmd);
   }
   bson_destroy (&validator);
   return ok;
}

/* RENAME COLUMN from TO to inside a compiled CHECK validator (ddl.c's
 * shapes): in a query filter, a key naming the column (or a path into it)
 * outside operators; in a $expr, a field path "$from[.sub]" -- but never
 * inside {$literal: ...}, where every constant sits. */
static void rename_in_filter (const bson_t *in, const char *from, const char *to, bson_t *out);

static char *
renamed_path (const char *path, const char *from, const char *to)
{
   size_t n = strlen (from);
   if (!strncmp (path, from, n) && (path[n] == '\0' || path[n] == '.')) {
      return bson_strdup_printf ("%s%s", to, path + n);
   }
   return NULL;
}

static void
rename_in_expr (const bson_iter_t *it, const char *key, const char *from, const char *to, bson_t *out)
{
   bson_iter_t sub;
   if (BSON_ITER_HOLDS_UTF8 (it)) {
      const char *s = bson_iter_utf8 (it, NULL);
      char *r = s[0] == '$' && s[1] != '$' ? renamed_path (s + 1, from, to) : NULL;
      if (r) {
         char *v = bson_strdup_printf ("$%s", r);
         BSON_APPEND_UTF8 (out, key, v);
         bson_free (v);
         bson_free (r);
         return;
      }
   } else if ((BSON_ITER_HOLDS_DOCUMENT (it) || BSON_ITER_HOLDS_ARRAY (it)) && bson_iter_recurse (it, &sub)) {
      bool array = BSON_ITER_HOLDS_ARRAY (it);
      bson_iter_t first = sub;
      if (!array && bson_iter_next (&first) && !strcmp (bson_iter_key (&first), "$literal")) {
         bson_append_value (out, key, -1, bson_iter_value ((bson_iter_t *) it));
         return;
      }
      bson_t child;
      if (array) {
         bson_append_array_begin (out, key, -1, &child);
      } else {
         bson_append_document_begin (out, key, -1, &child);
      }
      while (bson_iter_next (&sub)) {
         rename_in_expr (&sub, bson_iter_key (&sub), from, to, &child);
      }
      if (array) {
         bson_append_array_end (out, &child);
      } else {
         bson_append_document_end (out, &child);
      }
      return;
   }
   bson_append_value (out, key, -1, bson_iter_value ((bson_iter_t *) it));
}

static void
rename_in_filter (const bson_t *in, const char *from, const char *to, bson_t *out)
{
   bson_iter_t it, arr;
   bson_iter_init (&it, in);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if ((!strcmp (k, "$and") || !strcmp (k, "$or") || !strcmp (k, "$nor")) && BSON_ITER_HOLDS_ARRAY (&it) &&
          bson_iter_recurse (&it, &arr)) {
         bson_t list;
         bson_append_array_begin (out, k, -1, &list);
         while (bson_iter_next (&arr)) {
            uint32_t len;
            const uint8_t *data;
            bson_t one, sub;
            if (!BSON_ITER_HOLDS_DOCUMENT (&arr)) {
               bson_append_value (&list, bson_iter_key (&arr), -1, bson_iter_value (&arr));
               continue;
            }
            bson_iter_document (&arr, &len, &data);
            bson_init_static (&one, data, len);
            bson_append_document_begin (&list, bson_iter_key (&arr), -1, &sub);
            rename_in_filter (&one, from, to, &sub);
            bson_append_document_end (&list, &sub);
         }
         bson_append_array_end (out, &list);
      } else if (!strcmp (k, "$expr")) {
         rename_in_expr (&it, k, from, to, out);
      } else {
         char *r = k[0] != '$' ? renamed_path (k, from, to) : NULL;
         bson_append_value (out, r ? r : k, -1, bson_iter_value (&it));
         bson_free (r);
      }
   }
}

char *
exec_renamed_path (const char *path, const char *from, const char *to)
{
   return renamed_path (path, from, to);
}

void
exec_rename_in_filter (const bson_t *in, const char *from, const char *to, bson_t *out)
{
   rename_in_filter (in, from, to, out);
}

/* RENAME COLUMN: the entry's CHECKs (their columns and validators),
 * FOREIGN KEYs (their columns) and generated columns' expressions follow
 * the column; the validator is then rebuilt (sync_checks). */
bool
exec_rename_in_constraints (dj_exec_t *x, const char *table, const char *from, const char *to, bson_error_t *error)
{
   static const char *const lists[] = {"checks", "fks"};
   bson_t set = BSON_INITIALIZER;
   bool any = false;
   exec_forget_tables (x);
   for (int l = 0; l < 2; l++) {
      bson_iter_t list, item, f, c;
      bool found;
      if (!exec_entry_field (x, table, lists[l], &list, &found, error)) {
         bson_destroy (&set);
         return false;
      }
      if (!found || !bson_iter_recurse (&list, &item)) {
         continue;
      }
      bson_t arr;
      any = true;
      BSON_APPEND_ARRAY_BEGIN (&set, lists[l], &arr);
      while (bson_iter_next (&item)) {
         bson_t one;
         if (!BSON_ITER_HOLDS_DOCUMENT (&item) || !bson_iter_recurse (&item, &f)) {
            continue;
         }
         bson_append_document_begin (&arr, bson_iter_key (&item), -1, &one);
         while (bson_iter_next (&f)) {
            const char *k = bson_iter_key (&f);
            if (!strcmp (k, "columns") && bson_iter_recurse (&f, &c)) {
               bson_t cols;
               bson_append_array_begin (&one, k, -1, &cols);
               while (bson_iter_next (&c)) {
                  const char *name = BSON_ITER_HOLDS_UTF8 (&c) ? bson_iter_utf8 (&c, NULL) : "";
                  BSON_APPEND_UTF8 (&cols, bson_iter_key (&c), strcmp (name, from) ? name : to);
               }
               bson_append_array_end (&one, &cols);
            } else if (!strcmp (k, "validator") && BSON_ITER_HOLDS_DOCUMENT (&f)) {
               uint32_t len;
               const uint8_t *data;
               bson_t v, nv;
               bson_iter_document (&f, &len, &data);
               bson_init_static (&v, data, len);
               bson_append_document_begin (&one, k, -1, &nv);
               rename_in_filter (&v, from, to, &nv);
               bson_append_document_end (&one, &nv);
            } else {
               bson_append_value (&one, k, -1, bson_iter_value (&f));
            }
         }
         bson_append_document_end (&arr, &one);
      }
      bson_append_array_end (&set, &arr);
   }
   /* the stored generated columns' expressions ({c: e}) read it too */
   bson_iter_t gen, e;
   bool has_gen;
   if (!exec_entry_field (x, table, "generated", &gen, &has_gen, error)) {
      bson_destroy (&set);
      return false;
   }
   if (has_gen && BSON_ITER_HOLDS_DOCUMENT (&gen) && bson_iter_recurse (&gen, &e)) {
      bson_t g;
      any = true;
      BSON_APPEND_DOCUMENT_BEGIN (&set, "generated", &g);
      while (bson_iter_next (&e)) {
         rename_in_expr (&e, bson_iter_key (&e), from, to, &g);
      }
      bson_append_document_end (&set, &g);
   }
   bool ok = true;
   if (any) {
      bson_t cmd = BSON_INITIALIZER, ups, up, q, u, reply;
      BSON_APPEND_UTF8 (&cmd, "update", DJ_TABLES_COLLECTION);
      BSON_APPEND_ARRAY_BEGIN (&cmd, "updates", &ups);
      BSON_APPEND_DOCUMENT_BEGIN (&ups, "0", &up);
      BSON_APPEND_DOCUMENT_BEGIN (&up, "q", &q);
      BSON_APPEND_UTF8 (&q, "table", table);
      bson_append_document_end (&up, &q);
      BSON_APPEND_DOCUMENT_BEGIN (&up, "u", &u);
      BSON_APPEND_DOCUMENT (&u, "$set", &set);
      bson_append_document_end (&up, &u);
      bson_append_document_end (&ups, &up);
      bson_append_array_end (&cmd, &ups);
      ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
      bson_destroy (&reply);
      bson_destroy (&cmd);
   }
   bson_destroy (&set);
   return ok;
}

/* ---- FOREIGN KEYs ----
 *
 * Checked here, by the executor, with queries inside the statement's
 * transaction, so that it works the same on the embedded engine and on a
 * MongoDB server (where no collection can see another's documents from a
 * validator). A write records items {child, column, parent, to, vals,
 * deferred}: "the rows of child whose column holds one of vals (null: any
 * value) must have a row of parent with that value in to". An INSERT or
 * UPDATE of the child records the values it writes; a DELETE or an UPDATE
 * of the referenced column of the parent records the values the rows it
 * matches held, read just before the write. An item is checked at the end
 * of the statement (inside its atomic unit: a violation undoes it), or, for
 * a DEFERRABLE INITIALLY DEFERRED key inside a transaction, at COMMIT
 * (x->fk_pending). Checking an item reads the state then, so work undone
 * by a ROLLBACK TO, or a parent inserted later in the transaction, is
 * judged as it ends up. Single-column keys only (Django's). */

static void
item_append (bson_t *items, uint32_t *n, const char *child, const char *column, const char *parent, const char *to,
             const bson_t *vals, bool deferred)
{
   char kb[16];
   const char *key;
   bson_t one;
   bson_uint32_to_string ((*n)++, &key, kb, sizeof kb);
   bson_append_document_begin (items, key, -1, &one);
   BSON_APPEND_UTF8 (&one, "child", child);
   BSON_APPEND_UTF8 (&one, "column", column);
   BSON_APPEND_UTF8 (&one, "parent", parent);
   BSON_APPEND_UTF8 (&one, "to", to);
   if (vals) {
      /* each value once: a thousand rows naming one parent are one value to
       * look up, and the check counts the values its parent lookup found */
      bson_t uniq = BSON_INITIALIZER;
      bson_iter_t it;
      uint32_t k = 0;
      bson_iter_init (&it, vals);
      while (bson_iter_next (&it)) {
         dj_bson_array_append_new (&uniq, &k, bson_iter_value (&it));
      }
      BSON_APPEND_ARRAY (&one, "vals", &uniq);
      bson_destroy (&uniq);
   } else {
      BSON_APPEND_NULL (&one, "vals");
   }
   BSON_APPEND_BOOL (&one, "deferred", deferred);
   bson_append_document_end (items, &one);
}

/* A recorded key's parts; false for what is not a single-column key. */
static bool
fk_parts (const bson_iter_t *fk, const char **column, const char **parent, const char **to, bool *deferred)
{
   bson_iter_t f, a;
   int ncols = 0, nto = 0;
   *column = *parent = *to = NULL;
   *deferred = false;
   if (!BSON_ITER_HOLDS_DOCUMENT (fk) || !bson_iter_recurse (fk, &f)) {
      return false;
   }
   while (bson_iter_next (&f)) {
      const char *k = bson_iter_key (&f);
      if ((!strcmp (k, "columns") || !strcmp (k, "to")) && bson_iter_recurse (&f, &a)) {
         bool cols = !strcmp (k, "columns");
         while (bson_iter_next (&a)) {
            if (BSON_ITER_HOLDS_UTF8 (&a)) {
               *(cols ? column : to) = bson_iter_utf8 (&a, NULL);
            }
            if (cols) {
               ncols++;
            } else {
               nto++;
            }
         }
      } else if (!strcmp (k, "table") && BSON_ITER_HOLDS_UTF8 (&f)) {
         *parent = bson_iter_utf8 (&f, NULL);
      } else if (!strcmp (k, "deferred")) {
         *deferred = bson_iter_as_bool (&f);
      }
   }
   return ncols == 1 && nto == 1 && *column && *parent && *to;
}

/* The first document of a command's reply cursor into *doc (owned by the
 * caller when found). */
static bool
first_doc (dj_exec_t *x, const bson_t *cmd, bson_t *doc, bool *found, bson_error_t *error)
{
   bson_t reply;
   bson_iter_t it;
   *found = false;
   bool ok = exec_run_cmd (x, x->db, cmd, false, &reply, error);
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch.0", &it) &&
       BSON_ITER_HOLDS_DOCUMENT (&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document (&it, &len, &data);
      bson_init_static (doc, data, len);
      bson_t *copy = bson_copy (doc);
      bson_steal (doc, copy);
      *found = true;
   }
   bson_destroy (&reply);
   return ok;
}

/* One item: fails (DocumentValidationFailure: IntegrityError in the
 * driver, "FOREIGN KEY constraint failed" as SQLite says it) when a row of
 * child breaks it. */
static bool
fk_check_item (dj_exec_t *x, const bson_t *item, bson_error_t *error)
{
   bson_iter_t it;
   const char *child = NULL, *column = NULL, *parent = NULL, *to = NULL;
   const bson_value_t *vals = NULL;
   bson_iter_init (&it, item);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (BSON_ITER_HOLDS_UTF8 (&it)) {
         const char *v = bson_iter_utf8 (&it, NULL);
         if (!strcmp (k, "child")) {
            child = v;
         } else if (!strcmp (k, "column")) {
            column = v;
         } else if (!strcmp (k, "parent")) {
            parent = v;
         } else if (!strcmp (k, "to")) {
            to = v;
         }
      } else if (!strcmp (k, "vals") && BSON_ITER_HOLDS_ARRAY (&it)) {
         vals = bson_iter_value (&it);
      }
   }
   if (!child || !column || !parent || !to) {
      return true;
   }
   bson_t cmd = BSON_INITIALIZER, a, b, c, d, e, bad = BSON_INITIALIZER;
   bool ok, found = false;
   if (vals) {
      /* the values parent has, in one document ({v: [...]}) */
      bson_t present = BSON_INITIALIZER;
      int64_t nvals = 0, npresent = 0;
      bson_iter_t v;
      bson_iter_init_from_data (&v, vals->value.v_doc.data, vals->value.v_doc.data_len);
      while (bson_iter_next (&v)) {
         nvals++;
      }
      BSON_APPEND_UTF8 (&cmd, "aggregate", parent);
      BSON_APPEND_ARRAY_BEGIN (&cmd, "pipeline", &a);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "0", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$match", &c);
      BSON_APPEND_DOCUMENT_BEGIN (&c, to, &d);
      BSON_APPEND_VALUE (&d, "$in", vals);
      bson_append_document_end (&c, &d);
      bson_append_document_end (&b, &c);
      bson_append_document_end (&a, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "1", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$group", &c);
      BSON_APPEND_NULL (&c, "_id");
      BSON_APPEND_DOCUMENT_BEGIN (&c, "v", &d);
      char *path = bson_strdup_printf ("$%s", to);
      BSON_APPEND_UTF8 (&d, "$addToSet", path);
      bson_free (path);
      bson_append_document_end (&c, &d);
      bson_append_document_end (&b, &c);
      bson_append_document_end (&a, &b);
      bson_append_array_end (&cmd, &a);
      BSON_APPEND_DOCUMENT_BEGIN (&cmd, "cursor", &b);
      bson_append_document_end (&cmd, &b);
      bson_t got;
      ok = first_doc (x, &cmd, &got, &found, error);
      if (ok && found) {
         if (bson_iter_init_find (&v, &got, "v") && BSON_ITER_HOLDS_ARRAY (&v)) {
            uint32_t len;
            const uint8_t *data;
            bson_iter_array (&v, &len, &data);
            bson_destroy (&present);
            bson_init_static (&present, data, len);
            bson_t *copy = bson_copy (&present);
            bson_steal (&present, copy);
            bson_iter_t p;
            bson_iter_init (&p, &present);
            while (bson_iter_next (&p)) {
               npresent++;
            }
         }
         bson_destroy (&got);
      }
      bson_reinit (&cmd);
      found = false;
      if (ok && npresent < nvals) {
         /* a row of child holding a value parent lacks */
         BSON_APPEND_UTF8 (&cmd, "find", child);
         BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &a);
         BSON_APPEND_DOCUMENT_BEGIN (&a, column, &b);
         BSON_APPEND_VALUE (&b, "$in", vals);
         BSON_APPEND_ARRAY (&b, "$nin", &present);
         bson_append_document_end (&a, &b);
         bson_append_document_end (&cmd, &a);
         BSON_APPEND_INT32 (&cmd, "limit", 1);
         ok = first_doc (x, &cmd, &bad, &found, error);
      }
      bson_destroy (&present);
   } else {
      /* any row of child without its parent row */
      BSON_APPEND_UTF8 (&cmd, "aggregate", child);
      BSON_APPEND_ARRAY_BEGIN (&cmd, "pipeline", &a);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "0", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$match", &c);
      BSON_APPEND_DOCUMENT_BEGIN (&c, column, &d);
      BSON_APPEND_NULL (&d, "$ne");
      bson_append_document_end (&c, &d);
      bson_append_document_end (&b, &c);
      bson_append_document_end (&a, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "1", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$lookup", &c);
      BSON_APPEND_UTF8 (&c, "from", parent);
      BSON_APPEND_UTF8 (&c, "localField", column);
      BSON_APPEND_UTF8 (&c, "foreignField", to);
      BSON_APPEND_UTF8 (&c, "as", "__djongo_fk");
      bson_append_document_end (&b, &c);
      bson_append_document_end (&a, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "2", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$match", &c);
      BSON_APPEND_DOCUMENT_BEGIN (&c, "__djongo_fk", &d);
      BSON_APPEND_INT32 (&d, "$size", 0);
      bson_append_document_end (&c, &d);
      bson_append_document_end (&b, &c);
      bson_append_document_end (&a, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "3", &b);
      BSON_APPEND_INT32 (&b, "$limit", 1);
      bson_append_document_end (&a, &b);
      BSON_APPEND_DOCUMENT_BEGIN (&a, "4", &b);
      BSON_APPEND_DOCUMENT_BEGIN (&b, "$project", &e);
      BSON_APPEND_INT32 (&e, column, 1);
      bson_append_document_end (&b, &e);
      bson_append_document_end (&a, &b);
      bson_append_array_end (&cmd, &a);
      BSON_APPEND_DOCUMENT_BEGIN (&cmd, "cursor", &b);
      bson_append_document_end (&cmd, &b);
      ok = first_doc (x, &cmd, &bad, &found, error);
   }
   bson_destroy (&cmd);
   if (ok && found) {
      bson_iter_t v;
      char *shown = NULL;
      if (bson_iter_init_find (&v, &bad, column)) {
         shown = dj_error_value_json (bson_iter_value (&v));
      }
      /* SQLite's words first */
      ok = dj_error_set (error, DJ_DOMAIN_SERVER, DJ_DocumentValidationFailure,
                         "FOREIGN KEY constraint failed: %s.%s = %s has no row in %s.%s", child, column, shown ? shown : "",
                         parent, to);
      bson_free (shown);
   }
   bson_destroy (&bad);
   return ok;
}

/* The FOREIGN KEYs that reference `parent` ([{child, fk}], cached in
 * x->refs until the next DDL or rollback). */
static bool
fk_refs (dj_exec_t *x, const char *parent, bson_iter_t *out, bson_error_t *error)
{
   if (bson_iter_init_find (out, x->refs, parent)) {
      return true;
   }
   bson_t cmd = BSON_INITIALIZER, f, reply, list = BSON_INITIALIZER;
   BSON_APPEND_UTF8 (&cmd, "find", DJ_TABLES_COLLECTION);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "filter", &f);
   BSON_APPEND_UTF8 (&f, "fks.table", parent);
   bson_append_document_end (&cmd, &f);
   BSON_APPEND_INT32 (&cmd, "batchSize", INT32_MAX);
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   bson_iter_t it, doc, fks, fk;
   uint32_t n = 0;
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &it) &&
       bson_iter_recurse (&it, &it)) {
      while (bson_iter_next (&it)) {
         const char *child = NULL;
         if (!bson_iter_recurse (&it, &doc)) {
            continue;
         }
         bson_iter_t t = doc;
         if (bson_iter_find (&t, "table") && BSON_ITER_HOLDS_UTF8 (&t)) {
            child = bson_iter_utf8 (&t, NULL);
         }
         if (!child || !bson_iter_find (&doc, "fks") || !bson_iter_recurse (&doc, &fks)) {
            continue;
         }
         while (bson_iter_next (&fks)) {
            const char *column, *p, *to;
            bool deferred;
            if (fk_parts (&fks, &column, &p, &to, &deferred) && !strcmp (p, parent)) {
               char kb[16];
               const char *key;
               bson_t one;
               bson_uint32_to_string (n++, &key, kb, sizeof kb);
               bson_append_document_begin (&list, key, -1, &one);
               BSON_APPEND_UTF8 (&one, "child", child);
               fk = fks;
               BSON_APPEND_VALUE (&one, "fk", bson_iter_value (&fk));
               bson_append_document_end (&list, &one);
            }
         }
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   if (ok) {
      BSON_APPEND_ARRAY (x->refs, parent, &list);
      bson_iter_init_find (out, x->refs, parent);
   }
   bson_destroy (&list);
   return ok;
}

/* Whether update `u` (operators or a pipeline) may write `column`. */
static bool
writes_column (const bson_iter_t *u, const char *column)
{
   bson_iter_t a, b;
   if (!(BSON_ITER_HOLDS_DOCUMENT (u) || BSON_ITER_HOLDS_ARRAY (u)) || !bson_iter_recurse (u, &a)) {
      return false;
   }
   while (bson_iter_next (&a)) {
      /* {$op: {column: ..}} or [{$stage: {column: ..}}]; $rename: {x: column} */
      if (!BSON_ITER_HOLDS_DOCUMENT (&a) || !bson_iter_recurse (&a, &b)) {
         continue;
      }
      while (bson_iter_next (&b)) {
         if (!strcmp (bson_iter_key (&b), column) ||
             (BSON_ITER_HOLDS_UTF8 (&b) && !strcmp (bson_iter_utf8 (&b, NULL), column) && !strcmp (bson_iter_key (&a), "$rename"))) {
            return true;
         }
         if (BSON_ITER_HOLDS_DOCUMENT (&b)) {
            bson_iter_t c;
            bson_iter_recurse (&b, &c); /* a pipeline stage's spec */
            while (bson_iter_next (&c)) {
               if (!strcmp (bson_iter_key (&c), column) && bson_iter_key (&a)[0] != '$') {
                  return true;
               }
            }
         }
      }
   }
   return false;
}

/* The non-null values of `to` in the rows of `table` that `q` matches,
 * into vals (an array); *all when they did not fit one batch. */
static bool
matched_values (dj_exec_t *x, const char *table, const bson_value_t *q, const char *to, bson_t *vals, bool *all,
                bson_error_t *error)
{
   bson_t cmd = BSON_INITIALIZER, p, reply;
   BSON_APPEND_UTF8 (&cmd, "find", table);
   BSON_APPEND_VALUE (&cmd, "filter", q);
   BSON_APPEND_DOCUMENT_BEGIN (&cmd, "projection", &p);
   BSON_APPEND_INT32 (&p, to, 1);
   bson_append_document_end (&cmd, &p);
   BSON_APPEND_INT32 (&cmd, "batchSize", INT32_MAX);
   bool ok = exec_run_cmd (x, x->db, &cmd, false, &reply, error);
   bson_iter_t it, d;
   uint32_t n = 0;
   *all = false;
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.id", &it)) {
      *all = bson_iter_as_int64 (&it) != 0;
   }
   if (ok && bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.firstBatch", &it) &&
       bson_iter_recurse (&it, &it)) {
      while (bson_iter_next (&it)) {
         if (bson_iter_recurse (&it, &d) && bson_iter_find (&d, to) && !BSON_ITER_HOLDS_NULL (&d)) {
            char kb[16];
            const char *key;
            bson_uint32_to_string (n++, &key, kb, sizeof kb);
            bson_append_value (vals, key, -1, bson_iter_value (&d));
         }
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
   return ok;
}

bool
exec_fk_before_write (dj_exec_t *x, const dj_mql_t *m, const bson_t *cmd, bson_t *items, uint32_t *n, bson_error_t *error)
{
   bson_iter_t it, list, refs, ref, s, q, u;
   if (x->fk_off || m->kind != DJ_MQL_WRITE || !m->collection || (m->stmt != DJ_STMT_DELETE && m->stmt != DJ_STMT_UPDATE) ||
       !bson_iter_init (&it, cmd) || !bson_iter_next (&it) || !BSON_ITER_HOLDS_UTF8 (&it) ||
       strcmp (bson_iter_utf8 (&it, NULL), m->collection)) {
      return true;
   }
   bool del = bson_iter_init_find (&list, cmd, "deletes");
   if (!del && !bson_iter_init_find (&list, cmd, "updates")) {
      return true;
   }
   if (!fk_refs (x, m->collection, &refs, error)) {
      return false;
   }
   if (!bson_iter_recurse (&refs, &ref)) {
      return true;
   }
   while (bson_iter_next (&ref)) {
      bson_iter_t r, fk;
      const char *child = NULL, *column, *parent, *to;
      bool deferred;
      if (!bson_iter_recurse (&ref, &r)) {
         continue;
      }
      fk = r;
      if (bson_iter_find (&r, "child") && BSON_ITER_HOLDS_UTF8 (&r)) {
         child = bson_iter_utf8 (&r, NULL);
      }
      if (!child || !bson_iter_find (&fk, "fk") || !fk_parts (&fk, &column, &parent, &to, &deferred)) {
         continue;
      }
      bson_iter_t stmts = list;
      if (!bson_iter_recurse (&stmts, &s)) {
         continue;
      }
      while (bson_iter_next (&s)) {
         bson_iter_t sd;
         if (!bson_iter_recurse (&s, &sd)) {
            continue;
         }
         q = sd;
         u = sd;
         if (!bson_iter_find (&q, "q") || (!del && !(bson_iter_find (&u, "u") && writes_column (&u, to)))) {
            continue;
         }
         bson_t vals = BSON_INITIALIZER;
         bool all;
         if (!matched_values (x, m->collection, bson_iter_value (&q), to, &vals, &all, error)) {
            bson_destroy (&vals);
            return false;
         }
         if (all || !bson_empty (&vals)) {
            item_append (items, n, child, column, parent, to, all ? NULL : &vals, deferred);
         }
         bson_destroy (&vals);
      }
   }
   return true;
}

/* The statement's insert command (an INSERT ... VALUES; NULL for an
 * INSERT ... SELECT or an upsert, whose rows its commands do not list). */
static const bson_t *
insert_command (const dj_mql_t *m)
{
   bson_iter_t it;
   for (int i = 0; m->stmt == DJ_STMT_INSERT && i < m->ncommands; i++) {
      if (bson_iter_init (&it, m->commands[i]) && bson_iter_next (&it) && BSON_ITER_HOLDS_UTF8 (&it) &&
          !strcmp (bson_iter_key (&it), "insert") && !strcmp (bson_iter_utf8 (&it, NULL), m->collection)) {
         return m->commands[i];
      }
   }
   return NULL;
}

/* Whether the key goes in the insert command's djongoReferences, as its
 * item i (i: the keys before it that went): the engine reads them, and the
 * key is checked at the statement's end -- or it is deferred to a COMMIT
 * and the engine reads deferred items, which report the values without
 * their parent row (the reply's djongoUnsettled, kept in x->fk_unsettled,
 * one bit per item: so the first 64) instead of failing. */
static bool
in_insert (const dj_exec_t *x, const dj_mql_t *m, bool deferred, uint32_t i)
{
   if (!x->fk_in_insert || !insert_command (m)) {
      return false;
   }
   return !(deferred && x->stmt_in_txn) || (x->fk_deferred_in_insert && i < 64);
}

/* Whether the key sent as item i was deferred and the insert left it
 * unsettled: a value without its parent row, the COMMIT's to check. */
static bool
unsettled (const dj_exec_t *x, bool deferred, uint32_t i)
{
   return deferred && x->stmt_in_txn && i < 64 && ((x->fk_unsettled >> i) & 1u);
}

void
exec_fk_insert_reply (dj_exec_t *x, const bson_t *reply)
{
   bson_iter_t it, a;
   if (bson_iter_init_find (&it, reply, "djongoUnsettled") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &a)) {
      while (bson_iter_next (&a)) {
         int64_t i = BSON_ITER_HOLDS_NUMBER (&a) ? bson_iter_as_int64 (&a) : -1;
         if (i >= 0 && i < 64) {
            x->fk_unsettled |= (uint64_t) 1 << i;
         }
      }
   }
}

bool
exec_fk_into_insert (dj_exec_t *x, const dj_mql_t *m, bson_t *cmd, bson_error_t *error)
{
   bson_iter_t fks, fk;
   bool found;
   if (x->fk_off || !x->fk_in_insert || m->kind != DJ_MQL_WRITE || !m->collection || insert_command (m) != cmd) {
      return true;
   }
   x->fk_unsettled = 0; /* this insert's reply tells */
   if (!exec_entry_field (x, m->collection, "fks", &fks, &found, error)) {
      return false;
   }
   if (!found || !bson_iter_recurse (&fks, &fk)) {
      return true;
   }
   bson_t refs = BSON_INITIALIZER, one;
   uint32_t n = 0;
   while (bson_iter_next (&fk)) {
      const char *column, *parent, *to;
      bool deferred;
      if (fk_parts (&fk, &column, &parent, &to, &deferred) && in_insert (x, m, deferred, n)) {
         char kb[16];
         const char *key;
         bson_uint32_to_string (n++, &key, kb, sizeof kb);
         bson_append_document_begin (&refs, key, -1, &one);
         BSON_APPEND_UTF8 (&one, "field", column);
         BSON_APPEND_UTF8 (&one, "from", parent);
         BSON_APPEND_UTF8 (&one, "foreignField", to);
         if (deferred && x->stmt_in_txn) {
            BSON_APPEND_BOOL (&one, "deferred", true);
         }
         bson_append_document_end (&refs, &one);
      }
   }
   if (n) {
      BSON_APPEND_ARRAY (cmd, "djongoReferences", &refs);
   }
   bson_destroy (&refs);
   return true;
}

/* The first top-level field named `key` of the document at `doc`, as
 * bson_iter_find finds it, read from the document's bytes into *w
 * (dj_bson_walk.h: an INSERT's every row); false when there is none. */
static bool
find_field (const bson_iter_t *doc, const char *key, dj_bwalk_t *w)
{
   uint32_t len;
   const uint8_t *data;
   if (!BSON_ITER_HOLDS_DOCUMENT (doc)) {
      return false;
   }
   bson_iter_document (doc, &len, &data);
   dj_bwalk_init (w, data, len);
   while (dj_bwalk_next (w)) {
      if (!strcmp (w->key, key)) {
         return true;
      }
   }
   return false;
}

bool
exec_fk_after_write (dj_exec_t *x, const dj_mql_t *m, bson_t *items, uint32_t *n, bson_error_t *error)
{
   bson_iter_t fks, fk, it, list, d, f;
   bool found;
   if (x->fk_off || m->kind != DJ_MQL_WRITE || !m->collection || (m->stmt != DJ_STMT_INSERT && m->stmt != DJ_STMT_UPDATE)) {
      return true;
   }
   if (!exec_entry_field (x, m->collection, "fks", &fks, &found, error)) {
      return false;
   }
   if (!found || !bson_iter_recurse (&fks, &fk)) {
      return true;
   }
   /* the statement's write command */
   const bson_t *cmd = NULL;
   for (int i = 0; i < m->ncommands && !cmd; i++) {
      if (bson_iter_init (&it, m->commands[i]) && bson_iter_next (&it) && BSON_ITER_HOLDS_UTF8 (&it) &&
          !strcmp (bson_iter_key (&it), m->stmt == DJ_STMT_INSERT ? "insert" : "update") &&
          !strcmp (bson_iter_utf8 (&it, NULL), m->collection)) {
         cmd = m->commands[i];
      }
   }
   bool insert = m->stmt == DJ_STMT_INSERT;
   uint32_t sent = 0; /* the keys exec_fk_into_insert put in the insert, in the same order */
   while (bson_iter_next (&fk)) {
      const char *column, *parent, *to;
      bool deferred, all = !cmd; /* INSERT ... SELECT: any row may be new */
      if (!fk_parts (&fk, &column, &parent, &to, &deferred)) {
         continue;
      }
      if (in_insert (x, m, deferred, sent) && !unsettled (x, deferred, sent++)) {
         continue; /* the insert checked it (exec_fk_into_insert) */
      }
      bson_t vals = BSON_INITIALIZER;
      uint32_t nv = 0;
      /* an inserted value equal, byte for byte, to the one listed before it
       * (rows naming one parent) is not listed again: item_append keeps
       * each value once anyway */
      const uint8_t *prev = NULL;
      uint8_t prev_type = 0;
      uint32_t prev_len = 0;
      if (cmd && bson_iter_init_find (&list, cmd, insert ? "documents" : "updates") && bson_iter_recurse (&list, &d)) {
         while (bson_iter_next (&d) && !all) {
            bson_iter_t at;
            dj_bwalk_t w;
            if (insert) {
               if (find_field (&d, column, &w) && w.type != BSON_TYPE_NULL &&
                   !(prev && w.type == prev_type && w.val_len == prev_len && !memcmp (w.val, prev, prev_len))) {
                  char kb[16];
                  const char *key;
                  bson_value_t v;
                  dj_bwalk_value (&w, &v);
                  bson_uint32_to_string (nv++, &key, kb, sizeof kb);
                  bson_append_value (&vals, key, -1, &v);
                  prev = w.val;
                  prev_type = w.type;
                  prev_len = w.val_len;
               }
               continue;
            }
            if (!bson_iter_recurse (&d, &f)) {
               continue;
            }
            bson_iter_t u = f;
            if (!bson_iter_find (&u, "u") || !writes_column (&u, column)) {
               continue;
            }
            /* a value $set gives; anything else may write any value */
            bson_iter_t op;
            all = !(BSON_ITER_HOLDS_DOCUMENT (&u) && bson_iter_recurse (&u, &op) && bson_iter_find (&op, "$set") &&
                    bson_iter_recurse (&op, &at));
            if (all) {
               break;
            }
            if (bson_iter_find (&at, column) && !BSON_ITER_HOLDS_NULL (&at)) {
               char kb[16];
               const char *key;
               bson_uint32_to_string (nv++, &key, kb, sizeof kb);
               bson_append_value (&vals, key, -1, bson_iter_value (&at));
            }
         }
      }
      if (all || nv) {
         item_append (items, n, m->collection, column, parent, to, all ? NULL : &vals, deferred);
      }
      bson_destroy (&vals);
   }
   return true;
}

bool
exec_fk_settle (dj_exec_t *x, const bson_t *items, bool in_txn, bson_error_t *error)
{
   bson_iter_t it, d;
   bson_iter_init (&it, items);
   while (bson_iter_next (&it)) {
      uint32_t len;
      const uint8_t *data;
      bson_t item;
      if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
         continue;
      }
      bson_iter_document (&it, &len, &data);
      bson_init_static (&item, data, len);
      if (in_txn && bson_iter_init_find (&d, &item, "deferred") && bson_iter_as_bool (&d)) {
         char kb[16];
         const char *key;
         bson_uint32_to_string (x->fk_npending++, &key, kb, sizeof kb);
         BSON_APPEND_DOCUMENT (x->fk_pending, key, &item);
      } else if (!fk_check_item (x, &item, error)) {
         return false;
      }
   }
   return true;
}

bool
exec_fk_commit (dj_exec_t *x, bson_error_t *error)
{
   if (!x->fk_npending) {
      return true;
   }
   if (!exec_fk_settle (x, x->fk_pending, false, error)) {
      return false;
   }
   exec_fk_forget (x);
   return true;
}

void
exec_fk_forget (dj_exec_t *x)
{
   bson_reinit (x->fk_pending);
   x->fk_npending = 0;
}

void
dj_exec_set_fk_checks (dj_exec_t *x, bool on)
{
   x->fk_off = !on;
}

void
dj_exec_set_insert_references (dj_exec_t *x, bool on)
{
   x->fk_in_insert = on;
}

void
dj_exec_set_deferred_references (dj_exec_t *x, bool on)
{
   x->fk_deferred_in_insert = on;
}
