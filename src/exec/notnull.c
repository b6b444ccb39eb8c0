/*
 * notnull.c -- COUNT(c) over a joined table whose c is NOT NULL counts rows.
 *
 * An aggregate over a LEFT JOIN (SELECT a.x, COUNT(b.id) FROM a LEFT JOIN b
 * ON a.id = b.a_id GROUP BY a.x: Django's annotate(Count("b"))) compiles to
 * a $lookup on b whose pipeline groups its matches first:
 *
 *   {$group: {_id: null, a0: {$sum: {$cond: [{$eq: [{$ifNull: ["$id", null]}, null]}, 0, 1]}}}}
 *
 * -- COUNT counts the rows whose column is not NULL (src/compile/select.c,
 * expr.c's cx_agg_count_one). The compiler knows no schema; the executor
 * knows the table's NOT NULL columns (its entry's notnull list, which every
 * write is checked against). For such a column every joined row counts,
 * and the accumulator becomes {$sum: 1}: a $group that only counts, which
 * the embedded engine answers from the keys of an index on the join's
 * field without reading a document (aggregation/lookup_group.c). The same
 * rows are counted either way.
 */
#include <string.h>

#include "exec-private.h"

/* Whether v is {$sum: {$cond: [{$eq: [{$ifNull: ["$<col>", null]}, null]}, 0, 1]}}
 * with <col> a top-level field; *col then points at it (in v's bytes). */
static bool
is_count_of (const bson_iter_t *acc, const char **col)
{
   bson_iter_t it, cond, arr, eq, ifn;
   if (!BSON_ITER_HOLDS_DOCUMENT (acc) || !bson_iter_recurse (acc, &it) || !bson_iter_next (&it) ||
       strcmp (bson_iter_key (&it), "$sum") || !BSON_ITER_HOLDS_DOCUMENT (&it) || !bson_iter_recurse (&it, &cond) ||
       bson_iter_next (&it) || !bson_iter_next (&cond) || strcmp (bson_iter_key (&cond), "$cond") ||
       !BSON_ITER_HOLDS_ARRAY (&cond) || !bson_iter_recurse (&cond, &arr) || bson_iter_next (&cond)) {
      return false;
   }
   /* [{$eq: [{$ifNull: ["$col", null]}, null]}, 0, 1] */
   if (!bson_iter_next (&arr) || !BSON_ITER_HOLDS_DOCUMENT (&arr) || !bson_iter_recurse (&arr, &eq) ||
       !bson_iter_next (&eq) || strcmp (bson_iter_key (&eq), "$eq") || !BSON_ITER_HOLDS_ARRAY (&eq) ||
       !bson_iter_recurse (&eq, &eq) || !bson_iter_next (&eq) || !BSON_ITER_HOLDS_DOCUMENT (&eq) ||
       !bson_iter_recurse (&eq, &ifn) || !bson_iter_next (&eq) || !BSON_ITER_HOLDS_NULL (&eq) || bson_iter_next (&eq) ||
       !bson_iter_next (&ifn) || strcmp (bson_iter_key (&ifn), "$ifNull") || !BSON_ITER_HOLDS_ARRAY (&ifn) ||
       !bson_iter_recurse (&ifn, &ifn) || !bson_iter_next (&ifn) || !BSON_ITER_HOLDS_UTF8 (&ifn)) {
      return false;
   }
   const char *ref = bson_iter_utf8 (&ifn, NULL);
   if (ref[0] != '$' || ref[1] == '$' || strchr (ref + 1, '.') || !bson_iter_next (&ifn) || !BSON_ITER_HOLDS_NULL (&ifn) ||
       bson_iter_next (&ifn)) {
      return false;
   }
   if (!bson_iter_next (&arr) || !BSON_ITER_HOLDS_INT (&arr) || bson_iter_as_int64 (&arr) != 0 || !bson_iter_next (&arr) ||
       !BSON_ITER_HOLDS_INT (&arr) || bson_iter_as_int64 (&arr) != 1 || bson_iter_next (&arr)) {
      return false;
   }
   *col = ref + 1;
   return true;
}

static bool
listed_in (const bson_iter_t *list, const char *name)
{
   bson_iter_t it;
   if (!bson_iter_recurse (list, &it)) {
      return false;
   }
   while (bson_iter_next (&it)) {
      if (BSON_ITER_HOLDS_UTF8 (&it) && !strcmp (bson_iter_utf8 (&it, NULL), name)) {
         return true;
      }
   }
   return false;
}

/* The $group `group` (at key `key` of out) copied, each COUNT of a column
 * `notnull` lists written {$sum: 1}; *changed when one was. */
static void
copy_group (const bson_iter_t *group, const bson_iter_t *notnull, bson_t *out, const char *key, bool *changed)
{
   bson_iter_t it;
   bson_t g;
   bson_append_document_begin (out, key, -1, &g);
   bson_iter_recurse (group, &it);
   while (bson_iter_next (&it)) {
      const char *col;
      if (strcmp (bson_iter_key (&it), "_id") && is_count_of (&it, &col) && listed_in (notnull, col)) {
         bson_t acc;
         bson_append_document_begin (&g, bson_iter_key (&it), -1, &acc);
         BSON_APPEND_INT32 (&acc, "$sum", 1);
         bson_append_document_end (&g, &acc);
         *changed = true;
      } else {
         bson_append_iter (&g, NULL, 0, &it);
      }
   }
   bson_append_document_end (out, &g);
}

/* The $lookup spec `lk` copied into out at `key`, its pipeline's leading
 * {$group: {_id: null, ...}} rewritten as copy_group says. */
static bool
copy_lookup (dj_exec_t *x, const bson_iter_t *lk, bson_t *out, const char *key, bool *changed, bson_error_t *error)
{
   bson_iter_t it, from, pipe, stage, g, id, notnull;
   bool found;
   bson_iter_recurse (lk, &it);
   if (!bson_iter_find (&it, "from") || !BSON_ITER_HOLDS_UTF8 (&it)) {
      return bson_append_iter (out, key, -1, lk);
   }
   from = it;
   bson_iter_recurse (lk, &pipe);
   if (!bson_iter_find (&pipe, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&pipe) || !bson_iter_recurse (&pipe, &stage) ||
       !bson_iter_next (&stage) || !BSON_ITER_HOLDS_DOCUMENT (&stage) || !bson_iter_recurse (&stage, &g) ||
       !bson_iter_next (&g) || strcmp (bson_iter_key (&g), "$group") || !BSON_ITER_HOLDS_DOCUMENT (&g) ||
       !bson_iter_recurse (&g, &id) || !bson_iter_find (&id, "_id") || !BSON_ITER_HOLDS_NULL (&id)) {
      return bson_append_iter (out, key, -1, lk);
   }
   if (!exec_entry_field (x, bson_iter_utf8 (&from, NULL), "notnull", &notnull, &found, error)) {
      return false;
   }
   if (!found || !BSON_ITER_HOLDS_ARRAY (&notnull)) {
      return bson_append_iter (out, key, -1, lk);
   }
   bson_t l, p, st;
   bson_append_document_begin (out, key, -1, &l);
   bson_iter_recurse (lk, &it);
   while (bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "pipeline")) {
         bson_append_iter (&l, NULL, 0, &it);
         continue;
      }
      bson_append_array_begin (&l, "pipeline", -1, &p);
      bson_iter_recurse (&it, &stage);
      for (bool first = true; bson_iter_next (&stage); first = false) {
         if (!first) {
            bson_append_iter (&p, NULL, 0, &stage);
            continue;
         }
         bson_append_document_begin (&p, bson_iter_key (&stage), -1, &st);
         copy_group (&g, &notnull, &st, "$group", changed);
         bson_append_document_end (&p, &st);
      }
      bson_append_array_end (&l, &p);
   }
   return bson_append_document_end (out, &l);
}

bool
exec_counts_not_null (dj_exec_t *x, dj_mql_t *m, bson_error_t *error)
{
   bson_t *cmd = m->commands[m->ncommands - 1];
   bson_iter_t it, stages, stage, lk;
   if (!bson_iter_init (&it, cmd) || !bson_iter_next (&it) || strcmp (bson_iter_key (&it), "aggregate") ||
       !bson_iter_init_find (&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY (&it)) {
      return true;
   }
   bool any = false;
   bson_iter_recurse (&it, &stages);
   while (!any && bson_iter_next (&stages)) {
      bson_iter_t sub;
      any = BSON_ITER_HOLDS_DOCUMENT (&stages) && bson_iter_recurse (&stages, &lk) && bson_iter_next (&lk) &&
            !strcmp (bson_iter_key (&lk), "$lookup") && BSON_ITER_HOLDS_DOCUMENT (&lk) && bson_iter_recurse (&lk, &sub) &&
            bson_iter_find (&sub, "pipeline");
   }
   if (!any) {
      return true; /* no join with a pipeline (copy_lookup's $group): nothing to look at -- the
                      command is not copied for a plain join (select_related) */
   }
   bson_t *out = bson_new (), arr;
   bool changed = false, ok = true;
   bson_iter_init (&it, cmd);
   while (ok && bson_iter_next (&it)) {
      if (strcmp (bson_iter_key (&it), "pipeline")) {
         bson_append_iter (out, NULL, 0, &it);
         continue;
      }
      bson_append_array_begin (out, "pipeline", -1, &arr);
      bson_iter_recurse (&it, &stages);
      while (ok && bson_iter_next (&stages)) {
         if (BSON_ITER_HOLDS_DOCUMENT (&stages) && bson_iter_recurse (&stages, &stage) && bson_iter_next (&stage) &&
             !strcmp (bson_iter_key (&stage), "$lookup") && BSON_ITER_HOLDS_DOCUMENT (&stage)) {
            bson_t st;
            bson_append_document_begin (&arr, bson_iter_key (&stages), -1, &st);
            ok = copy_lookup (x, &stage, &st, "$lookup", &changed, error);
            bson_append_document_end (&arr, &st);
         } else {
            bson_append_iter (&arr, NULL, 0, &stages);
         }
      }
      bson_append_array_end (out, &arr);
   }
   if (ok && changed) {
      bson_destroy (cmd);
      m->commands[m->ncommands - 1] = out; /* m owns it */
   } else {
      bson_destroy (out);
   }
   return ok;
}
