/*
 * crypt.c -- libmongocrypt's explicit encryption state machine over
 * djongo's run-command seam (dj_crypt.h).
 *
 * Every operation is one mongocrypt_ctx_t driven by drive(): the key vault
 * finds it asks for (NEED_MONGO_KEYS) run through the seam, each KMS request
 * (NEED_KMS) goes to its provider over TLS (kms.c; the "local" provider
 * never asks), then finalize gives the result document.
 */
#include <string.h>

#include <mongocrypt.h>

#include "crypt-private.h"
#include "dj_crypt.h"

struct dj_crypt {
   mongocrypt_t *mc;     /* owned */
   char *kv_db, *kv_coll; /* owned: the key vault namespace, split */
   dj_run_command_fn run;
   void *run_ctx;        /* borrowed */
};

/* libmongocrypt's status -> *error; false */
static bool
status_error (mongocrypt_status_t *st, const char *what, bson_error_t *error)
{
   const char *msg = mongocrypt_status_message (st, NULL);
   dj_error_set (error, DJ_DOMAIN_CRYPT, mongocrypt_status_code (st), "%s: %s", what, msg ? msg : "unknown error");
   return false;
}

static bool
ctx_error (mongocrypt_ctx_t *ctx, const char *what, bson_error_t *error)
{
   mongocrypt_status_t *st = mongocrypt_status_new ();
   mongocrypt_ctx_status (ctx, st);
   status_error (st, what, error);
   mongocrypt_status_destroy (st);
   return false;
}

/* a view of b's bytes (owned by the caller; b must outlive it) */
static mongocrypt_binary_t *
bin_of (const bson_t *b)
{
   return mongocrypt_binary_new_from_data ((uint8_t *) bson_get_data (b), b->len);
}

dj_crypt_t *
dj_crypt_new (const bson_t *kms_providers, const char *key_vault, dj_run_command_fn run, void *run_ctx,
              bson_error_t *error)
{
   const char *dot = key_vault ? strchr (key_vault, '.') : NULL;
   if (!dot || dot == key_vault || !dot[1]) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "the key vault must be a namespace \"db.collection\", not \"%s\"",
                    key_vault ? key_vault : "");
      return NULL;
   }
   mongocrypt_t *mc = mongocrypt_new ();
   mongocrypt_binary_t *kms = bin_of (kms_providers);
   bool ok = mongocrypt_setopt_kms_providers (mc, kms) && mongocrypt_init (mc);
   mongocrypt_binary_destroy (kms);
   if (!ok) {
      mongocrypt_status_t *st = mongocrypt_status_new ();
      mongocrypt_status (mc, st);
      status_error (st, "encryption settings", error);
      mongocrypt_status_destroy (st);
      mongocrypt_destroy (mc);
      return NULL;
   }
   dj_crypt_t *c = bson_malloc0 (sizeof *c);
   c->mc = mc;
   c->kv_db = bson_strndup (key_vault, (size_t) (dot - key_vault));
   c->kv_coll = bson_strdup (dot + 1);
   c->run = run;
   c->run_ctx = run_ctx;
   return c;
}

void
dj_crypt_destroy (dj_crypt_t *c)
{
   if (!c) {
      return;
   }
   mongocrypt_destroy (c->mc);
   bson_free (c->kv_db);
   bson_free (c->kv_coll);
   bson_free (c);
}

const char *
dj_crypt_key_vault_db (const dj_crypt_t *c)
{
   return c->kv_db;
}

const char *
dj_crypt_key_vault_coll (const dj_crypt_t *c)
{
   return c->kv_coll;
}

/* Each document of a cursor reply's batch (firstBatch or nextBatch) fed to
 * ctx; *cursor_id set to the cursor's id (0: exhausted). */
static bool
feed_batch (mongocrypt_ctx_t *ctx, const bson_t *reply, int64_t *cursor_id, bson_error_t *error)
{
   bson_iter_t it, cur, batch;
   *cursor_id = 0;
   if (!bson_iter_init_find (&it, reply, "cursor") || !BSON_ITER_HOLDS_DOCUMENT (&it) ||
       !bson_iter_recurse (&it, &cur)) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "key vault find: reply without a cursor");
      return false;
   }
   while (bson_iter_next (&cur)) {
      const char *k = bson_iter_key (&cur);
      if (!strcmp (k, "id")) {
         *cursor_id = bson_iter_as_int64 (&cur);
      } else if ((!strcmp (k, "firstBatch") || !strcmp (k, "nextBatch")) && BSON_ITER_HOLDS_ARRAY (&cur) &&
                 bson_iter_recurse (&cur, &batch)) {
         while (bson_iter_next (&batch)) {
            uint32_t len;
            const uint8_t *data;
            if (!BSON_ITER_HOLDS_DOCUMENT (&batch)) {
               continue;
            }
            bson_iter_document (&batch, &len, &data);
            mongocrypt_binary_t *b = mongocrypt_binary_new_from_data ((uint8_t *) data, len);
            bool fed = mongocrypt_ctx_mongo_feed (ctx, b);
            mongocrypt_binary_destroy (b);
            if (!fed) {
               return ctx_error (ctx, "key vault document", error);
            }
         }
      }
   }
   return true;
}

/* NEED_MONGO_KEYS: the filter libmongocrypt asks for, as a find on the key
 * vault (and its getMores), every document fed back. */
static bool
fetch_keys (dj_crypt_t *c, mongocrypt_ctx_t *ctx, bson_error_t *error)
{
   mongocrypt_binary_t *op = mongocrypt_binary_new ();
   if (!mongocrypt_ctx_mongo_op (ctx, op)) {
      mongocrypt_binary_destroy (op);
      return ctx_error (ctx, "key vault filter", error);
   }
   bson_t filter;
   bool ok = bson_init_static (&filter, mongocrypt_binary_data (op), mongocrypt_binary_len (op));
   bson_t cmd = BSON_INITIALIZER, reply;
   BSON_APPEND_UTF8 (&cmd, "find", c->kv_coll);
   if (ok) {
      BSON_APPEND_DOCUMENT (&cmd, "filter", &filter);
   }
   mongocrypt_binary_destroy (op);
   if (!ok) {
      bson_destroy (&cmd);
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "key vault filter: not a BSON document");
      return false;
   }
   int64_t id = 0;
   ok = c->run (c->run_ctx, c->kv_db, &cmd, &reply, error) && feed_batch (ctx, &reply, &id, error);
   bson_destroy (&cmd);
   bson_destroy (&reply);
   while (ok && id) {
      bson_t more = BSON_INITIALIZER;
      BSON_APPEND_INT64 (&more, "getMore", id);
      BSON_APPEND_UTF8 (&more, "collection", c->kv_coll);
      ok = c->run (c->run_ctx, c->kv_db, &more, &reply, error) && feed_batch (ctx, &reply, &id, error);
      bson_destroy (&more);
      bson_destroy (&reply);
   }
   if (ok && !mongocrypt_ctx_mongo_done (ctx)) {
      return ctx_error (ctx, "key vault", error);
   }
   return ok;
}

/* Runs ctx to its end; *out initialised (the finalized document) */
static bool
drive (dj_crypt_t *c, mongocrypt_ctx_t *ctx, bson_t *out, bson_error_t *error)
{
   bson_init (out);
   for (;;) {
      switch (mongocrypt_ctx_state (ctx)) {
      case MONGOCRYPT_CTX_NEED_MONGO_KEYS:
         if (!fetch_keys (c, ctx, error)) {
            return false;
         }
         break;
      case MONGOCRYPT_CTX_NEED_KMS: {
         mongocrypt_kms_ctx_t *kms;
         while ((kms = mongocrypt_ctx_next_kms_ctx (ctx))) {
            if (!dj_crypt_kms_exchange (kms, error)) {
               return false;
            }
         }
         if (!mongocrypt_ctx_kms_done (ctx)) {
            return ctx_error (ctx, "KMS", error);
         }
         break;
      }
      case MONGOCRYPT_CTX_READY: {
         mongocrypt_binary_t *res = mongocrypt_binary_new ();
         bool ok = mongocrypt_ctx_finalize (ctx, res);
         if (ok) {
            bson_t view;
            ok = bson_init_static (&view, mongocrypt_binary_data (res), mongocrypt_binary_len (res));
            if (ok) {
               bson_destroy (out);
               bson_copy_to (&view, out);
            }
         }
         mongocrypt_binary_destroy (res);
         if (!ok) {
            return ctx_error (ctx, "finalize", error);
         }
         break;
      }
      case MONGOCRYPT_CTX_DONE:
         return true;
      case MONGOCRYPT_CTX_ERROR:
         return ctx_error (ctx, "encryption", error);
      default:
         /* COLLINFO / MARKINGS belong to automatic encryption and
          * KMS_CREDENTIALS to on-demand credentials: neither is asked for */
         dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "libmongocrypt asked for state %d, which explicit encryption never needs",
                       (int) mongocrypt_ctx_state (ctx));
         return false;
      }
   }
}

/* {"v": value} */
static void
wrap_value (const bson_value_t *value, bson_t *doc)
{
   bson_init (doc);
   bson_append_value (doc, "v", 1, value);
}

/* An operation's context, initialised (ok) or not: run to its end into
 * *out, or its error reported (*out then empty). */
static bool
run_ctx (dj_crypt_t *c, mongocrypt_ctx_t *ctx, bool ok, const char *what, bson_t *out, bson_error_t *error)
{
   if (!ok) {
      ctx_error (ctx, what, error);
      bson_init (out);
      return false;
   }
   return drive (c, ctx, out, error);
}

bool
dj_crypt_encrypt (dj_crypt_t *c, const bson_value_t *value, const char *algorithm, const char *key_alt_name,
                  const bson_value_t *key_id, bson_t *out, bson_error_t *error)
{
   mongocrypt_ctx_t *ctx = mongocrypt_ctx_new (c->mc);
   bson_t msg, name = BSON_INITIALIZER;
   wrap_value (value, &msg);
   bool ok = mongocrypt_ctx_setopt_algorithm (ctx, algorithm, -1);
   if (ok && key_alt_name) {
      BSON_APPEND_UTF8 (&name, "keyAltName", key_alt_name);
      mongocrypt_binary_t *b = bin_of (&name);
      ok = mongocrypt_ctx_setopt_key_alt_name (ctx, b);
      mongocrypt_binary_destroy (b);
   } else if (ok && key_id && key_id->value_type == BSON_TYPE_BINARY) {
      mongocrypt_binary_t *b = mongocrypt_binary_new_from_data (key_id->value.v_binary.data,
                                                                key_id->value.v_binary.data_len);
      ok = mongocrypt_ctx_setopt_key_id (ctx, b);
      mongocrypt_binary_destroy (b);
   }
   if (ok) {
      mongocrypt_binary_t *b = bin_of (&msg);
      ok = mongocrypt_ctx_explicit_encrypt_init (ctx, b);
      mongocrypt_binary_destroy (b);
   }
   ok = run_ctx (c, ctx, ok, "encrypt", out, error);
   bson_destroy (&msg);
   bson_destroy (&name);
   mongocrypt_ctx_destroy (ctx);
   return ok;
}

bool
dj_crypt_decrypt (dj_crypt_t *c, const bson_value_t *value, bson_t *out, bson_error_t *error)
{
   if (value->value_type != BSON_TYPE_BINARY || value->value.v_binary.subtype != BSON_SUBTYPE_ENCRYPTED) {
      bson_init (out);
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "decrypt: not an encrypted value (binary subtype 6)");
      return false;
   }
   mongocrypt_ctx_t *ctx = mongocrypt_ctx_new (c->mc);
   bson_t msg;
   wrap_value (value, &msg);
   mongocrypt_binary_t *b = bin_of (&msg);
   bool ok = mongocrypt_ctx_explicit_decrypt_init (ctx, b);
   mongocrypt_binary_destroy (b);
   ok = run_ctx (c, ctx, ok, "decrypt", out, error);
   bson_destroy (&msg);
   mongocrypt_ctx_destroy (ctx);
   return ok;
}

/* A command's reply with a writeErrors entry -> the first one as *error */
static bool
check_write (const bson_t *reply, bson_error_t *error)
{
   bson_iter_t it, errs, one;
   if (bson_iter_init_find (&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) &&
       bson_iter_recurse (&it, &errs) && bson_iter_next (&errs) && BSON_ITER_HOLDS_DOCUMENT (&errs) &&
       bson_iter_recurse (&errs, &one)) {
      uint32_t code = 8;
      const char *msg = "write error";
      while (bson_iter_next (&one)) {
         if (!strcmp (bson_iter_key (&one), "code")) {
            code = (uint32_t) bson_iter_as_int64 (&one);
         } else if (!strcmp (bson_iter_key (&one), "errmsg") && BSON_ITER_HOLDS_UTF8 (&one)) {
            msg = bson_iter_utf8 (&one, NULL);
         }
      }
      dj_error_set (error, DJ_DOMAIN_SERVER, code, "key vault: %s", msg);
      return false;
   }
   return true;
}

/* The key vault's unique index on keyAltNames, partial on their presence
 * (what the manual has users create; createIndexes is a no-op when it is
 * there). */
static bool
ensure_key_vault_index (dj_crypt_t *c, bson_error_t *error)
{
   bson_t *cmd = BCON_NEW ("createIndexes", BCON_UTF8 (c->kv_coll), "indexes", "[", "{", "key", "{",
                           "keyAltNames", BCON_INT32 (1), "}", "name", BCON_UTF8 ("keyAltNames_1"), "unique",
                           BCON_BOOL (true), "partialFilterExpression", "{", "keyAltNames", "{", "$exists",
                           BCON_BOOL (true), "}", "}", "}", "]");
   bson_t reply;
   bool ok = c->run (c->run_ctx, c->kv_db, cmd, &reply, error);
   bson_destroy (&reply);
   bson_destroy (cmd);
   return ok;
}

bool
dj_crypt_create_key (dj_crypt_t *c, const bson_t *master_key, const char *const *alt_names, int n,
                     uint8_t key_id[16], bson_error_t *error)
{
   if (!ensure_key_vault_index (c, error)) {
      return false;
   }
   mongocrypt_ctx_t *ctx = mongocrypt_ctx_new (c->mc);
   mongocrypt_binary_t *kek = bin_of (master_key);
   bool ok = mongocrypt_ctx_setopt_key_encryption_key (ctx, kek);
   mongocrypt_binary_destroy (kek);
   for (int i = 0; ok && i < n; i++) {
      bson_t name = BSON_INITIALIZER;
      BSON_APPEND_UTF8 (&name, "keyAltName", alt_names[i]);
      mongocrypt_binary_t *b = bin_of (&name);
      ok = mongocrypt_ctx_setopt_key_alt_name (ctx, b);
      mongocrypt_binary_destroy (b);
      bson_destroy (&name);
   }
   ok = ok && mongocrypt_ctx_datakey_init (ctx);
   bson_t key;
   ok = run_ctx (c, ctx, ok, "create data key", &key, error);
   mongocrypt_ctx_destroy (ctx);
   bson_iter_t it;
   if (ok && !(bson_iter_init_find (&it, &key, "_id") && BSON_ITER_HOLDS_BINARY (&it))) {
      dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "create data key: the key document has no UUID _id");
      ok = false;
   }
   if (ok) {
      bson_subtype_t st;
      uint32_t len;
      const uint8_t *data;
      bson_iter_binary (&it, &st, &len, &data);
      if (len != 16) {
         dj_error_set (error, DJ_DOMAIN_CRYPT, 1, "create data key: the key's _id is not a UUID");
         ok = false;
      } else {
         memcpy (key_id, data, 16);
      }
   }
   if (ok) {
      bson_t cmd = BSON_INITIALIZER, docs, reply;
      BSON_APPEND_UTF8 (&cmd, "insert", c->kv_coll);
      BSON_APPEND_ARRAY_BEGIN (&cmd, "documents", &docs);
      BSON_APPEND_DOCUMENT (&docs, "0", &key);
      bson_append_array_end (&cmd, &docs);
      ok = c->run (c->run_ctx, c->kv_db, &cmd, &reply, error) && check_write (&reply, error);
      bson_destroy (&cmd);
      bson_destroy (&reply);
   }
   bson_destroy (&key);
   return ok;
}

/* The rewrapped keys ({"v": [key, ...]}) written back, one update each,
 * in one update command; *n counts them. */
static bool
write_rewrapped (dj_crypt_t *c, const bson_t *res, int64_t *n, bson_error_t *error)
{
   bson_iter_t it, keys, key;
   bson_t cmd = BSON_INITIALIZER, updates;
   BSON_APPEND_UTF8 (&cmd, "update", c->kv_coll);
   BSON_APPEND_ARRAY_BEGIN (&cmd, "updates", &updates);
   int64_t count = 0;
   if (bson_iter_init_find (&it, res, "v") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &keys)) {
      while (bson_iter_next (&keys)) {
         if (!BSON_ITER_HOLDS_DOCUMENT (&keys) || !bson_iter_recurse (&keys, &key)) {
            continue;
         }
         bson_t u, q = BSON_INITIALIZER, set = BSON_INITIALIZER, doc, now;
         char idx[24];
         const char *ik;
         while (bson_iter_next (&key)) {
            const char *k = bson_iter_key (&key);
            if (!strcmp (k, "_id")) {
               bson_append_iter (&q, "_id", 3, &key);
            } else if (!strcmp (k, "keyMaterial") || !strcmp (k, "masterKey")) {
               bson_append_iter (&set, k, -1, &key);
            }
         }
         bson_uint32_to_string ((uint32_t) count, &ik, idx, sizeof idx);
         bson_append_document_begin (&updates, ik, -1, &u);
         BSON_APPEND_DOCUMENT (&u, "q", &q);
         BSON_APPEND_DOCUMENT_BEGIN (&u, "u", &doc);
         BSON_APPEND_DOCUMENT (&doc, "$set", &set);
         BSON_APPEND_DOCUMENT_BEGIN (&doc, "$currentDate", &now);
         BSON_APPEND_BOOL (&now, "updateDate", true);
         bson_append_document_end (&doc, &now);
         bson_append_document_end (&u, &doc);
         bson_append_document_end (&updates, &u);
         bson_destroy (&q);
         bson_destroy (&set);
         count++;
      }
   }
   bson_append_array_end (&cmd, &updates);
   bool ok = true;
   if (count) {
      bson_t reply;
      ok = c->run (c->run_ctx, c->kv_db, &cmd, &reply, error) && check_write (&reply, error);
      bson_destroy (&reply);
   }
   bson_destroy (&cmd);
   *n = ok ? count : 0;
   return ok;
}

bool
dj_crypt_rewrap (dj_crypt_t *c, const bson_t *filter, const bson_t *master_key, int64_t *n, bson_error_t *error)
{
   *n = 0;
   mongocrypt_ctx_t *ctx = mongocrypt_ctx_new (c->mc);
   bool ok = true;
   if (master_key) {
      mongocrypt_binary_t *kek = bin_of (master_key);
      ok = mongocrypt_ctx_setopt_key_encryption_key (ctx, kek);
      mongocrypt_binary_destroy (kek);
   }
   bson_t empty = BSON_INITIALIZER;
   mongocrypt_binary_t *f = bin_of (filter ? filter : &empty);
   ok = ok && mongocrypt_ctx_rewrap_many_datakey_init (ctx, f);
   mongocrypt_binary_destroy (f);
   bson_destroy (&empty);
   bson_t res;
   ok = run_ctx (c, ctx, ok, "rewrap data keys", &res, error);
   mongocrypt_ctx_destroy (ctx);
   ok = ok && write_rewrapped (c, &res, n, error);
   bson_destroy (&res);
   return ok;
}
