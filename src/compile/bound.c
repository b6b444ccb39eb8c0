/*
 * bound.c -- SELECTs bound once per parameter types, kept per connection
 * (dj_compile.h: dj_plan_bind_kept).
 *
 * Binding a cached plan compiles it again for each execution (~20,000
 * instructions for a Django get(), a quarter of its execute()), because
 * the commands may depend on the parameters' values: a LIKE pattern
 * becomes a regex, an exact datetime its date and remainder, two equal
 * parameters one GROUP BY key. Most reads use their values only as they
 * are, at one place of the command each. The compiler notes each read of
 * a value (cx_t.values_read: everything but the type-only checks and the
 * plain appends of cx_append_const); a SELECT whose compile read none is
 * compiled once more with a marker for each parameter, and that model's
 * command is kept: the next execution with parameters of the same types
 * copies it with each marker replaced by its parameter's element. The
 * model is kept only if that copy, for the values it was made with,
 * equals the command compiled from them byte for byte.
 *
 * The commands depend on the catalog too (recorded columns, DATETIME
 * columns): an entry holds the catalog generation it was made under
 * (dj_exec_tables_generation), and a new one makes it stale. Not
 * thread-safe: one cache per connection, used under the connection's lock.
 *
 * The slots are sets of WAYS, a plan's set chosen by its serial (plans
 * made in a row fill the sets in turn), the least recently used slot of
 * the set replaced: Django writes LIMIT/OFFSET into the text, so a page
 * through a queryset is one plan per page, and a direct-mapped table of
 * plan addresses had pairs of them evict each other on every execution
 * -- each miss compiles the statement twice (the plan, the model).
 */
#include <stdint.h>
#include <string.h>

#include "compile-private.h"
#include "dj_bson_walk.h"
#include "dj_buf.h"

#define NSETS 64
#define WAYS 4
#define NSLOTS (NSETS * WAYS)
#define MAX_PARAMS 64
#define SIG_BYTES 6 /* a parameter's type, binary subtype, binary length (LE) */
/* the marker: binary of a user-defined subtype (an exact datetime is 0x80)
 * holding "djpm" and the parameter's index (LE) */
#define MARK_SUBTYPE 0x8f
#define MARK_LEN 8

typedef struct {
   dj_plan_t *plan;  /* a counted reference (cache.c's refs), or NULL: an empty slot */
   uint64_t gen;     /* the catalog generation it was made under */
   char *db;         /* owned */
   int nparams;
   uint8_t sig[SIG_BYTES * MAX_PARAMS]; /* the parameters' types, SIG_BYTES each */
   bool keep;        /* false: the commands depend on the values (bound afresh) */
   uint64_t used;    /* the cache's clock at its last use (the set's least is replaced) */
   dj_mql_t model;   /* keep: the commands with markers for the parameters (owned) */
} slot_t;

struct dj_bound_cache {
   slot_t slots[NSLOTS]; /* WAYS a set, the set by the plan's serial */
   uint64_t clock;       /* lookups so far (slot_t.used) */
   dj_buf_t buf;         /* a command being copied (reused) */
   uint64_t hits;        /* statements bound from a kept command */
};

dj_bound_cache_t *
dj_bound_cache_new (void)
{
   dj_bound_cache_t *bc = bson_malloc0 (sizeof *bc);
   dj_buf_init (&bc->buf);
   return bc;
}

static void
slot_clear (slot_t *s)
{
   if (s->keep) {
      dj_mql_cleanup (&s->model);
   }
   dj_plan_release (s->plan);
   bson_free (s->db);
   memset (s, 0, sizeof *s);
}

void
dj_bound_cache_destroy (dj_bound_cache_t *bc)
{
   if (!bc) {
      return;
   }
   for (int i = 0; i < NSLOTS; i++) {
      slot_clear (&bc->slots[i]);
   }
   dj_buf_cleanup (&bc->buf);
   bson_free (bc);
}

static void
sig_of (const bson_value_t *params, int n, uint8_t *sig)
{
   memset (sig, 0, (size_t) n * SIG_BYTES);
   for (int i = 0; i < n; i++) {
      uint8_t *p = sig + i * SIG_BYTES;
      p[0] = (uint8_t) params[i].value_type;
      if (params[i].value_type == BSON_TYPE_BINARY) {
         p[1] = (uint8_t) params[i].value.v_binary.subtype;
         dj_le32_write (p + 2, params[i].value.v_binary.data_len);
      }
   }
}

/* Whether m is a read the executor runs as compiled, with nothing that
 * points into the statement or is filled in later: one command, no
 * transaction name, feed, claim, upsert or DDL follow-up. */
static bool
plain (const dj_mql_t *m)
{
   return m->kind == DJ_MQL_ROWS && m->stmt == DJ_STMT_SELECT && m->ncommands == 1 && !m->ignore_code[0] &&
          !m->admin[0] && !m->name && !m->feed_to && !m->auto_ids && !m->positional && !m->ignore_duplicates &&
          !m->for_update && !m->values_from && !m->upsert && !m->explain && !m->sync_checks && !m->constraint &&
          !m->rename_from && !m->rename_to && !m->drop_column;
}

/* The parameters' elements (keys ""), each found by its index. */
typedef struct {
   bson_t holder;
   const uint8_t *at[MAX_PARAMS]; /* the element's type byte */
   uint32_t len[MAX_PARAMS];      /* its value's length */
} elems_t;

static bool
elems_init (elems_t *v, const bson_value_t *params, int n)
{
   bson_init (&v->holder);
   for (int i = 0; i < n; i++) {
      if (!bson_append_value (&v->holder, "", 0, &params[i])) {
         return false;
      }
   }
   dj_bwalk_t w;
   dj_bwalk_init (&w, bson_get_data (&v->holder), v->holder.len);
   for (int i = 0; i < n; i++) {
      if (!dj_bwalk_next (&w)) {
         return false;
      }
      v->at[i] = (const uint8_t *) w.key - 1;
      v->len[i] = w.val_len;
   }
   return true;
}

static int
marker_index (const dj_bwalk_t *w, int n)
{
   const uint8_t *v = w->val;
   if (w->type != BSON_TYPE_BINARY || w->val_len != 5 + MARK_LEN || dj_le32_read (v) != MARK_LEN ||
       v[4] != MARK_SUBTYPE || memcmp (v + 5, "djpm", 4) != 0) {
      return -1;
   }
   int32_t i = dj_le32_read (v + 9);
   return i >= 0 && i < n ? i : -1;
}

/* The document of len bytes at d appended to buf, each marker element
 * replaced by its parameter's (the same key). False: malformed. */
static bool
subst (const uint8_t *d, uint32_t len, const elems_t *v, int n, dj_buf_t *buf)
{
   size_t start = buf->len;
   dj_bwalk_t w;
   dj_buf_put_u32le (buf, 0);
   dj_bwalk_init (&w, d, len);
   while (dj_bwalk_next (&w)) {
      int i = marker_index (&w, n);
      if (i >= 0) {
         dj_buf_putc (buf, v->at[i][0]);
         dj_buf_append (buf, w.key, w.key_len + 1);
         dj_buf_append (buf, v->at[i] + 2, v->len[i]); /* (after the type byte and the empty key's 0) */
      } else if (w.type == BSON_TYPE_DOCUMENT || w.type == BSON_TYPE_ARRAY) {
         dj_buf_putc (buf, w.type);
         dj_buf_append (buf, w.key, w.key_len + 1);
         if (!subst (w.val, w.val_len, v, n, buf)) {
            return false;
         }
      } else {
         size_t l;
         const uint8_t *e = dj_bwalk_elem (&w, &l);
         dj_buf_append (buf, e, l);
      }
   }
   if (w.bad) {
      return false;
   }
   dj_buf_putc (buf, 0);
   dj_le32_write (buf->data + start, (uint32_t) (buf->len - start));
   return true;
}

/* The model's command with the parameters in bc->buf; false: it cannot be. */
static bool
fill (dj_bound_cache_t *bc, const dj_mql_t *model, const bson_value_t *params, int n)
{
   elems_t v;
   bool ok = elems_init (&v, params, n);
   bc->buf.len = 0;
   ok = ok && subst (bson_get_data (model->commands[0]), model->commands[0]->len, &v, n, &bc->buf);
   bson_destroy (&v.holder);
   return ok;
}

static bool
str_same (const char *a, const char *b)
{
   return a == b || (a && b && !strcmp (a, b));
}

/* Whether the model, filled with params, is what they compiled to (m). */
static bool
model_fits (dj_bound_cache_t *bc, const dj_mql_t *model, const bson_value_t *params, int n, const dj_mql_t *m)
{
   if (!fill (bc, model, params, n) || bc->buf.len != m->commands[0]->len ||
       memcmp (bc->buf.data, bson_get_data (m->commands[0]), bc->buf.len) != 0 || model->star != m->star ||
       model->engine_only != m->engine_only || !str_same (model->collection, m->collection) ||
       model->ncolumns != m->ncolumns) {
      return false;
   }
   for (int i = 0; i < m->ncolumns; i++) {
      const dj_mql_column_t *a = &model->columns[i], *b = &m->columns[i];
      if (!str_same (a->name, b->name) || !str_same (a->path, b->path) || !str_same (a->star_table, b->star_table) ||
          a->us != b->us) {
         return false;
      }
   }
   return true;
}

/* The statement from the model: its command filled with params, the rest copied. */
static bool
from_model (dj_bound_cache_t *bc, const dj_mql_t *model, const bson_value_t *params, int n, dj_mql_t *out)
{
   memset (out, 0, sizeof *out); /* (a failure leaves it for dj_mql_cleanup) */
   if (!fill (bc, model, params, n)) {
      return false;
   }
   out->kind = model->kind;
   out->stmt = model->stmt;
   out->collection = model->collection ? bson_strdup (model->collection) : NULL;
   out->commands[0] = bson_new_from_data (bc->buf.data, bc->buf.len);
   out->ncommands = 1;
   out->star = model->star;
   out->engine_only = model->engine_only;
   out->columns = model->ncolumns ? bson_malloc (sizeof *out->columns * (size_t) model->ncolumns) : NULL;
   for (int i = 0; i < model->ncolumns; i++) {
      const dj_mql_column_t *c = &model->columns[i];
      out->columns[i] = (dj_mql_column_t) {.name = bson_strdup (c->name),
                                           .path = bson_strdup (c->path),
                                           .star_table = c->star_table ? bson_strdup (c->star_table) : NULL,
                                           .us = c->us};
   }
   out->ncolumns = model->ncolumns;
   return out->commands[0] != NULL;
}

/* The model of slot s (keep set on success): the plan compiled with markers. */
static void
make_model (dj_bound_cache_t *bc, slot_t *s, const dj_catalog_t *catalog, const bson_value_t *params, int n,
            const dj_mql_t *m)
{
   bson_value_t marks[MAX_PARAMS];
   uint8_t data[MAX_PARAMS][MARK_LEN];
   for (int i = 0; i < n; i++) {
      memcpy (data[i], "djpm", 4);
      dj_le32_write (data[i] + 4, (uint32_t) i);
      marks[i] = (bson_value_t) {.value_type = BSON_TYPE_BINARY};
      marks[i].value.v_binary.subtype = (bson_subtype_t) MARK_SUBTYPE;
      marks[i].value.v_binary.data = data[i];
      marks[i].value.v_binary.data_len = MARK_LEN;
   }
   bool read = false;
   bson_error_t error;
   if (!cx_plan_bind (s->plan, s->db, catalog, marks, n, &s->model, &read, &error)) {
      return;
   }
   if (!read && plain (&s->model) && model_fits (bc, &s->model, params, n, m)) {
      s->keep = true;
   } else {
      dj_mql_cleanup (&s->model);
   }
}

bool
dj_plan_bind_kept (dj_bound_cache_t *bc, dj_plan_t *plan, uint64_t gen, const char *db, const dj_catalog_t *catalog,
                   const bson_value_t *params, int nparams, dj_mql_t *out, bson_error_t *error)
{
   const dj_sql_stmt_t *st = plan->stmt;
   /* (a plan of the plan cache only: counted references) */
   if (!bc || st->kind != DJ_STMT_SELECT || st->explain || nparams != st->nparams || nparams > MAX_PARAMS ||
       __atomic_load_n (&plan->refs, __ATOMIC_RELAXED) < 1) {
      return dj_plan_bind_catalog (plan, db, catalog, params, nparams, out, error);
   }
   db = db ? db : "test"; /* (dj_plan_bind_catalog's default) */
   slot_t *set = &bc->slots[plan->serial % NSETS * WAYS], *s = set;
   for (int w = 0; w < WAYS; w++) {
      if (set[w].plan == plan) {
         s = &set[w];
         break;
      }
      if (set[w].used < s->used) {
         s = &set[w]; /* (an empty slot's is 0) */
      }
   }
   s->used = ++bc->clock;
   uint8_t sig[SIG_BYTES * MAX_PARAMS];
   size_t sig_len = (size_t) nparams * SIG_BYTES;
   sig_of (params, nparams, sig);
   if (s->plan == plan && s->gen == gen && s->nparams == nparams && !strcmp (s->db, db) && !memcmp (s->sig, sig, sig_len)) {
      if (s->keep) {
         if (error) {
            memset (error, 0, sizeof *error);
         }
         if (from_model (bc, &s->model, params, nparams, out)) {
            bc->hits++;
            return true;
         }
         dj_mql_cleanup (out);
      }
      return dj_plan_bind_catalog (plan, db, catalog, params, nparams, out, error);
   }
   bool read = false;
   if (!cx_plan_bind (plan, db, catalog, params, nparams, out, &read, error)) {
      return false; /* (errors are not kept: the slot stays as it was) */
   }
   slot_clear (s);
   s->used = bc->clock;
   __atomic_add_fetch (&plan->refs, 1, __ATOMIC_RELAXED); /* the slot's reference (dj_plan_release) */
   s->plan = plan;
   s->gen = gen;
   s->db = bson_strdup (db);
   s->nparams = nparams;
   memcpy (s->sig, sig, sig_len);
   if (!read && plain (out)) {
      make_model (bc, s, catalog, params, nparams, out);
   }
   return true;
}

uint64_t
dj_bound_cache_hits (const dj_bound_cache_t *bc)
{
   return bc->hits;
}
