/*
 * cmd_bulk_write.c -- MongoDB 8.0's cluster-wide bulkWrite command.
 *
 * {bulkWrite: 1, ops: [...], nsInfo: [{ns}], ordered, errorsOnly,
 * bypassDocumentValidation, let, cursor: {batchSize}} on the admin
 * database: inserts, updates and deletes on any namespaces, each run as
 * the insert / update / delete command on its namespace (cmd_write.c) so
 * every statement behaves as it does there. Consecutive inserts into one
 * namespace run as one insert command. The whole command is parsed before
 * any op runs (an unknown field or a bad nsInfo index fails it); an op's
 * own failure becomes its error result, after which an ordered bulkWrite
 * stops. The per-op results come back through a cursor on
 * "admin.$cmd.bulkWrite" (getMore for the rest), with the summary counts.
 * https://www.mongodb.com/docs/manual/reference/command/bulkWrite/
 */
#include "dj_commands.h"

#include <stdio.h>

#define BW_NS "admin.$cmd.bulkWrite"

static const char *const bulk_known[] = {"ops", "nsInfo", "ordered", "errorsOnly", "bypassDocumentValidation", "let",
                                         "cursor", NULL};
static const char *const insert_op_known[] = {"insert", "document", NULL};
static const char *const update_op_known[] = {"update", "filter", "updateMods", "arrayFilters", "multi", "hint",
                                              "upsert", "constants", "collation", "sort", NULL};
static const char *const delete_op_known[] = {"delete", "filter", "multi", "hint", "collation", NULL};
static const char *const ns_info_known[] = {"ns", "collectionUUID", "encryptionInformation", "isTimeseriesNamespace",
                                            NULL};

typedef enum { OP_INSERT, OP_UPDATE, OP_DELETE } op_kind_t;

typedef struct {
   op_kind_t kind;
   int ns;    /* index into nsInfo */
   /* the op's bytes, borrowed from the command (a bson_t in the heap
    * array would miss the 128-byte alignment libbson declares for it) */
   const uint8_t *data;
   uint32_t len;
} bw_op_t;

typedef struct {
   char *db, *coll; /* owned */
} bw_ns_t;

/* The command, parsed. Owns ops, nss and results (each result too). */
typedef struct {
   bw_op_t *ops;
   size_t nops;
   bw_ns_t *nss;
   size_t nnss;
   bool ordered, errors_only, bypass;
   bool has_let;
   bson_t let; /* borrowed */
   int64_t batch;
   bson_t **results;
   size_t nres, capres;
   int64_t n_errors, n_inserted, n_matched, n_modified, n_upserted, n_deleted;
   bool stop; /* an ordered bulkWrite had an op fail */
} bulk_t;

static void
bulk_cleanup (bulk_t *b)
{
   for (size_t i = 0; i < b->nnss; i++) {
      bson_free (b->nss[i].db);
      bson_free (b->nss[i].coll);
   }
   bson_free (b->nss);
   bson_free (b->ops);
   dj_bsons_free (b->results, 0, b->nres); /* the array too */
}

/* The fields of a document (an op or an nsInfo entry) against `known`,
 * named as mongod's IDL parser names them. */
static bool
check_known (const bson_t *doc, const char *where, const char *const *known, bson_error_t *error)
{
   bson_iter_t it;
   bson_iter_init (&it, doc);
   while (bson_iter_next (&it)) {
      bool found = false;
      for (int i = 0; known[i] && !found; i++) {
         found = !strcmp (known[i], bson_iter_key (&it));
      }
      if (!found) {
         return dj_err (error, DJ_UnknownField, "BSON field '%s.%s' is an unknown field.", where, bson_iter_key (&it));
      }
   }
   return true;
}

static bool
required_doc (const bson_t *op, const char *field, const char *where, bson_error_t *error)
{
   bson_iter_t it;
   if (!bson_iter_init_find (&it, op, field)) {
      return dj_err (error, 40414, "BSON field '%s.%s' is missing but a required field", where, field);
   }
   if (!BSON_ITER_HOLDS_DOCUMENT (&it) && !(!strcmp (field, "updateMods") && BSON_ITER_HOLDS_ARRAY (&it))) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%s' is the wrong type '%s', expected type 'object'", where,
                     field, dj_type_name (bson_iter_type (&it)));
   }
   return true;
}

/* Element i of the array `where` (bulkWrite.ops, bulkWrite.nsInfo) as a
 * document: *out borrows it. */
static bool
element_doc (const bson_iter_t *it, const char *where, size_t i, bson_t *out, bson_error_t *error)
{
   uint32_t len;
   const uint8_t *data;
   if (!BSON_ITER_HOLDS_DOCUMENT (it)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field '%s.%zu' is the wrong type '%s', expected type 'object'", where, i,
                     dj_type_name (bson_iter_type (it)));
   }
   bson_iter_document (it, &len, &data);
   return bson_init_static (out, data, len);
}

static bool
parse_ns_info (bulk_t *b, const bson_iter_t *arr, bson_error_t *error)
{
   bson_iter_t it = *arr, f;
   while (bson_iter_next (&it)) {
      b->nnss++;
   }
   if (!b->nnss) {
      return dj_err (error, DJ_BadValue, "nsInfo array must not be empty");
   }
   b->nss = bson_malloc0 (b->nnss * sizeof *b->nss);
   it = *arr;
   for (size_t i = 0; bson_iter_next (&it); i++) {
      bson_t entry;
      uint32_t len;
      if (!element_doc (&it, "bulkWrite.nsInfo", i, &entry, error) ||
          !check_known (&entry, "bulkWrite.nsInfo", ns_info_known, error)) {
         return false;
      }
      if (!bson_iter_init_find (&f, &entry, "ns")) {
         return dj_err (error, 40414, "BSON field 'bulkWrite.nsInfo.ns' is missing but a required field");
      }
      if (!BSON_ITER_HOLDS_UTF8 (&f)) {
         return dj_err (error, DJ_TypeMismatch, "BSON field 'bulkWrite.nsInfo.ns' is the wrong type '%s', expected type 'string'",
                        dj_type_name (bson_iter_type (&f)));
      }
      const char *ns = bson_iter_utf8 (&f, &len);
      const char *dot = strchr (ns, '.');
      if (strlen (ns) != len || !dot || dot == ns || !dot[1]) {
         return dj_err (error, DJ_InvalidNamespace, "Invalid namespace specified '%s'", ns);
      }
      b->nss[i].db = bson_strndup (ns, (size_t) (dot - ns));
      b->nss[i].coll = bson_strdup (dot + 1);
      if (!dj_ns_valid (b->nss[i].db, b->nss[i].coll, error)) {
         return false;
      }
   }
   return true;
}

static bool
parse_op (bulk_t *b, size_t i, const bson_iter_t *it, bson_error_t *error)
{
   bw_op_t *o = &b->ops[i];
   bson_t op;
   bson_iter_t f;
   if (!element_doc (it, "bulkWrite.ops", i, &op, error)) {
      return false;
   }
   o->data = bson_get_data (&op);
   o->len = op.len;
   if (!bson_iter_init (&f, &op) || !bson_iter_next (&f)) {
      return dj_err (error, DJ_FailedToParse, "Unrecognized bulkWrite operation: {}");
   }
   const char *k = bson_iter_key (&f);
   const char *const *known;
   if (!strcmp (k, "insert")) {
      o->kind = OP_INSERT;
      known = insert_op_known;
   } else if (!strcmp (k, "update")) {
      o->kind = OP_UPDATE;
      known = update_op_known;
   } else if (!strcmp (k, "delete")) {
      o->kind = OP_DELETE;
      known = delete_op_known;
   } else {
      return dj_err (error, DJ_FailedToParse, "Unrecognized bulkWrite operation: %s", k);
   }
   if (!BSON_ITER_HOLDS_NUMBER (&f)) {
      return dj_err (error, DJ_TypeMismatch, "BSON field 'bulkWrite.ops.%s' is the wrong type '%s', expected type 'int'", k,
                     dj_type_name (bson_iter_type (&f)));
   }
   int64_t ns = bson_iter_as_int64 (&f);
   if (ns < 0 || (uint64_t) ns >= b->nnss) {
      return dj_err (error, DJ_BadValue, "BulkWrite ops entry %zu has an invalid nsInfo index.", i);
   }
   o->ns = (int) ns;
   if (!check_known (&op, "bulkWrite.ops", known, error)) {
      return false;
   }
   switch (o->kind) {
   case OP_INSERT: return required_doc (&op, "document", "bulkWrite.ops", error);
   case OP_UPDATE:
      return required_doc (&op, "filter", "bulkWrite.ops", error) &&
             required_doc (&op, "updateMods", "bulkWrite.ops", error);
   case OP_DELETE: return required_doc (&op, "filter", "bulkWrite.ops", error);
   }
   return true;
}

static bool
parse (bulk_t *b, const char *db, const bson_t *cmd, bson_error_t *error)
{
   bson_iter_t it, ops, nsinfo;
   bool present;
   b->ordered = true;
   b->batch = INT64_MAX; /* as many as fit in a reply */
   if (!dj_cmd_check_fields (cmd, bulk_known, error)) {
      return false;
   }
   if (strcmp (db, "admin")) {
      return dj_err (error, DJ_Unauthorized, "bulkWrite may only be run against the admin database.");
   }
   bson_t ops_arr, ns_arr;
   if (!dj_cmd_get_array (cmd, "ops", "bulkWrite.ops", &ops_arr, &present, error)) {
      return false;
   }
   if (!present) {
      return dj_err (error, 40414, "BSON field 'bulkWrite.ops' is missing but a required field");
   }
   if (!dj_cmd_get_array (cmd, "nsInfo", "bulkWrite.nsInfo", &ns_arr, &present, error)) {
      return false;
   }
   if (!present) {
      return dj_err (error, 40414, "BSON field 'bulkWrite.nsInfo' is missing but a required field");
   }
   if (!dj_cmd_get_bool (cmd, "ordered", &b->ordered, error) || !dj_cmd_get_bool (cmd, "errorsOnly", &b->errors_only, error) ||
       !dj_cmd_get_bool (cmd, "bypassDocumentValidation", &b->bypass, error) ||
       !dj_cmd_get_doc (cmd, "let", &b->let, &b->has_let, error)) {
      return false;
   }
   if (bson_iter_init_find (&it, cmd, "cursor")) {
      bson_t cur;
      bool has_batch;
      if (!dj_cmd_get_doc (cmd, "cursor", &cur, &present, error) ||
          !dj_cmd_get_int64 (&cur, "batchSize", &b->batch, &has_batch, error)) {
         return false;
      }
      if (has_batch && b->batch < 0) {
         return dj_err (error, 51024, "BSON field 'batchSize' value must be >= 0, actual value '%" PRId64 "'", b->batch);
      }
   }
   bson_iter_init (&nsinfo, &ns_arr);
   if (!parse_ns_info (b, &nsinfo, error)) {
      return false;
   }
   bson_iter_init (&ops, &ops_arr);
   while (bson_iter_next (&ops)) {
      b->nops++;
   }
   if (b->nops == 0 || b->nops > 100000) {
      return dj_err (error, DJ_InvalidLength, "Write batch sizes must be between 1 and 100000. Got %zu operations.", b->nops);
   }
   b->ops = bson_malloc0 (b->nops * sizeof *b->ops);
   bson_iter_init (&ops, &ops_arr);
   for (size_t i = 0; bson_iter_next (&ops); i++) {
      if (!parse_op (b, i, &ops, error)) {
         return false;
      }
   }
   return true;
}

/* ---- results ------------------------------------------------------------ */

static bson_t *
result_new (bulk_t *b, size_t idx, bool ok)
{
   bson_t *r = bson_new ();
   BSON_APPEND_DOUBLE (r, "ok", ok ? 1.0 : 0.0);
   BSON_APPEND_INT32 (r, "idx", (int32_t) idx);
   if (!ok) {
      b->n_errors++;
      b->stop = b->ordered;
   }
   return r;
}

/* r goes to the cursor, or (errorsOnly and a success) away. */
static void
result_keep (bulk_t *b, bson_t *r, bool ok)
{
   if (ok && b->errors_only) {
      bson_destroy (r);
      return;
   }
   if (b->nres == b->capres) {
      b->capres = b->capres ? b->capres * 2 : 16;
      b->results = bson_realloc (b->results, b->capres * sizeof *b->results);
   }
   b->results[b->nres++] = r;
}

/* An op's error result from an error document -- a write error
 * ({index, code, errmsg, keyPattern...}) or a failed command's reply
 * ({ok: 0, errmsg, code, codeName...}): its fields other than index and
 * ok, with codeName. */
static void
error_result (bulk_t *b, size_t idx, const bson_t *err)
{
   bson_t *r = result_new (b, idx, false);
   bson_iter_t it;
   int32_t code = 0;
   BSON_APPEND_INT32 (r, "n", 0);
   bson_iter_init (&it, err);
   while (bson_iter_next (&it)) {
      const char *k = bson_iter_key (&it);
      if (!strcmp (k, "index") || !strcmp (k, "ok") || !strcmp (k, "codeName")) {
         continue; /* codeName: appended last, from the code */
      }
      if (!strcmp (k, "code")) {
         code = bson_iter_as_int64 (&it) > INT32_MAX ? 0 : (int32_t) bson_iter_as_int64 (&it);
      }
      bson_append_iter (r, k, -1, &it);
   }
   char buf[24];
   BSON_APPEND_UTF8 (r, "codeName", dj_error_code_name ((uint32_t) code, buf));
   result_keep (b, r, false);
}

/* The write error of `index` in a write command's reply, or false. */
static bool
find_write_error (const bson_t *reply, int32_t index, bson_t *out)
{
   bson_iter_t it, e, f;
   if (!bson_iter_init_find (&it, reply, "writeErrors") || !bson_iter_recurse (&it, &e)) {
      return false;
   }
   while (bson_iter_next (&e)) {
      if (bson_iter_recurse (&e, &f) && bson_iter_find (&f, "index") && bson_iter_as_int64 (&f) == index) {
         uint32_t len;
         const uint8_t *data;
         bson_iter_document (&e, &len, &data);
         return bson_init_static (out, data, len);
      }
   }
   return false;
}

static bool
reply_ok (const bson_t *reply)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, reply, "ok") && bson_iter_as_double (&it) == 1.0;
}

static int64_t
reply_int (const bson_t *reply, const char *field)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, reply, field) ? bson_iter_as_int64 (&it) : 0;
}

/* ---- running the ops ---------------------------------------------------- */

static void
append_field (bson_t *to, const char *as, const bson_t *op, const char *field)
{
   bson_iter_t it;
   if (bson_iter_init_find (&it, op, field)) {
      bson_append_iter (to, as, -1, &it);
   }
}

/* Ops [from, to) -- inserts into one namespace -- as one insert command. */
static void
run_inserts (dj_engine_t *e, bulk_t *b, size_t from, size_t to)
{
   const bw_ns_t *ns = &b->nss[b->ops[from].ns];
   bson_t cmd = BSON_INITIALIZER, docs, reply;
   char buf[16];
   const char *key;
   BSON_APPEND_UTF8 (&cmd, "insert", ns->coll);
   BSON_APPEND_ARRAY_BEGIN (&cmd, "documents", &docs);
   for (size_t i = from; i < to; i++) {
      bson_iter_t it;
      bson_uint32_to_string ((uint32_t) (i - from), &key, buf, sizeof buf);
      bson_t op;
      bson_init_static (&op, b->ops[i].data, b->ops[i].len);
      bson_iter_init_find (&it, &op, "document");
      bson_append_iter (&docs, key, -1, &it);
   }
   bson_append_array_end (&cmd, &docs);
   BSON_APPEND_BOOL (&cmd, "ordered", b->ordered);
   BSON_APPEND_BOOL (&cmd, "bypassDocumentValidation", b->bypass);
   dj_cmd_run_nested (e, ns->db, &cmd, &reply);
   if (!reply_ok (&reply)) {
      /* the command as a whole failed (a view, ...): every op it held */
      for (size_t i = from; i < to && !b->stop; i++) {
         error_result (b, i, &reply);
      }
   } else {
      for (size_t i = from; i < to && !b->stop; i++) {
         bson_t err;
         if (find_write_error (&reply, (int32_t) (i - from), &err)) {
            error_result (b, i, &err);
            continue;
         }
         bson_t *r = result_new (b, i, true);
         BSON_APPEND_INT32 (r, "n", 1);
         b->n_inserted++;
         result_keep (b, r, true);
      }
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
}

/* An update or delete op as a one-statement update or delete command. */
static void
run_one (dj_engine_t *e, bulk_t *b, size_t i)
{
   const bw_op_t *o = &b->ops[i];
   const bw_ns_t *ns = &b->nss[o->ns];
   bool update = o->kind == OP_UPDATE;
   bool multi = false;
   bson_t cmd = BSON_INITIALIZER, stmts, stmt, reply, op;
   bson_iter_t it;
   bson_init_static (&op, o->data, o->len);
   if (bson_iter_init_find (&it, &op, "multi")) {
      multi = bson_iter_as_bool (&it);
   }
   BSON_APPEND_UTF8 (&cmd, update ? "update" : "delete", ns->coll);
   BSON_APPEND_ARRAY_BEGIN (&cmd, update ? "updates" : "deletes", &stmts);
   BSON_APPEND_DOCUMENT_BEGIN (&stmts, "0", &stmt);
   append_field (&stmt, "q", &op, "filter");
   if (update) {
      append_field (&stmt, "u", &op, "updateMods");
      append_field (&stmt, "upsert", &op, "upsert");
      BSON_APPEND_BOOL (&stmt, "multi", multi);
      append_field (&stmt, "arrayFilters", &op, "arrayFilters");
      append_field (&stmt, "sort", &op, "sort");
   } else {
      BSON_APPEND_INT32 (&stmt, "limit", multi ? 0 : 1);
   }
   append_field (&stmt, "hint", &op, "hint");
   append_field (&stmt, "collation", &op, "collation");
   bson_append_document_end (&stmts, &stmt);
   bson_append_array_end (&cmd, &stmts);
   /* an update's constants are variables of its pipeline: the nested
    * command's let, after the bulkWrite's own */
   bson_t constants, let;
   bool has_constants = update && bson_iter_init_find (&it, &op, "constants") && BSON_ITER_HOLDS_DOCUMENT (&it);
   if (has_constants) {
      uint32_t len;
      const uint8_t *data;
      bson_iter_document (&it, &len, &data);
      bson_init_static (&constants, data, len);
   }
   if (b->has_let || has_constants) {
      BSON_APPEND_DOCUMENT_BEGIN (&cmd, "let", &let);
      if (b->has_let) {
         bson_concat (&let, &b->let);
      }
      if (has_constants) {
         bson_concat (&let, &constants);
      }
      bson_append_document_end (&cmd, &let);
   }
   if (update) {
      BSON_APPEND_BOOL (&cmd, "bypassDocumentValidation", b->bypass);
   }
   dj_cmd_run_nested (e, ns->db, &cmd, &reply);
   bson_t err;
   if (!reply_ok (&reply)) {
      error_result (b, i, &reply);
   } else if (find_write_error (&reply, 0, &err)) {
      error_result (b, i, &err);
   } else {
      bson_t *r = result_new (b, i, true);
      int64_t n = reply_int (&reply, "n");
      BSON_APPEND_INT32 (r, "n", (int32_t) n);
      if (update) {
         int64_t nmod = reply_int (&reply, "nModified");
         BSON_APPEND_INT32 (r, "nModified", (int32_t) nmod);
         b->n_modified += nmod;
         if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "upserted.0._id", &it)) {
            bson_t up;
            BSON_APPEND_DOCUMENT_BEGIN (r, "upserted", &up);
            bson_append_iter (&up, "_id", -1, &it);
            bson_append_document_end (r, &up);
            b->n_upserted++;
            n--;
         }
         b->n_matched += n;
      } else {
         b->n_deleted += n;
      }
      result_keep (b, r, true);
   }
   bson_destroy (&reply);
   bson_destroy (&cmd);
}

bool
dj_cmd_bulk_write (dj_engine_t *e, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error)
{
   bulk_t b = {0};
   if (!parse (&b, db, cmd, error)) {
      bulk_cleanup (&b);
      return false;
   }
   for (size_t i = 0; i < b.nops && !b.stop;) {
      if (b.ops[i].kind != OP_INSERT) {
         run_one (e, &b, i++);
         continue;
      }
      size_t j = i + 1;
      while (j < b.nops && b.ops[j].kind == OP_INSERT && b.ops[j].ns == b.ops[i].ns) {
         j++;
      }
      run_inserts (e, &b, i, j);
      i = j;
   }
   /* the results are the cursor's from here on */
   bson_t tmp = BSON_INITIALIZER;
   bson_iter_t it;
   dj_reply_results (e, &tmp, BW_NS, b.results, b.nres, b.batch, false);
   b.results = NULL;
   b.nres = 0;
   /* mongod's order: cursor, the counts, ok */
   if (bson_iter_init_find (&it, &tmp, "cursor")) {
      bson_append_iter (reply, "cursor", -1, &it);
   }
   bson_destroy (&tmp);
   BSON_APPEND_INT32 (reply, "nErrors", (int32_t) b.n_errors);
   BSON_APPEND_INT32 (reply, "nInserted", (int32_t) b.n_inserted);
   BSON_APPEND_INT32 (reply, "nMatched", (int32_t) b.n_matched);
   BSON_APPEND_INT32 (reply, "nModified", (int32_t) b.n_modified);
   BSON_APPEND_INT32 (reply, "nUpserted", (int32_t) b.n_upserted);
   BSON_APPEND_INT32 (reply, "nDeleted", (int32_t) b.n_deleted);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   bulk_cleanup (&b);
   return true;
}
