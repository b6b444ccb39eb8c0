/*
 * dump.c -- djongo-engine dump / restore: databases in mongodump's layout,
 * so data moves between a data directory, djongo-server and MongoDB with
 * either these commands or mongodump/mongorestore.
 *
 *   OUT/<db>/<collection>.bson           the documents, concatenated BSON
 *   OUT/<db>/<collection>.metadata.json  {"options", "indexes",
 *                                         "collectionName", "type"} in
 *                                         canonical Extended JSON
 *   (a view: its .metadata.json only, type "view", options viewOn/pipeline)
 *
 * https://www.mongodb.com/docs/database-tools/mongodump/#output
 * Both run over the transport seam (dj_transport.h), so either end may be a
 * data directory or a mongodb:// URI. Collection names holding '/', '\' or
 * '%' are percent-encoded in file names, as mongodump does. djongo's own
 * collections (__djongo_tables: the schema; counters) are data like any
 * other: a restored directory serves Django unchanged. Restore, as
 * mongorestore: collections are created with their options, documents
 * inserted (never updated: one whose _id exists is reported and skipped),
 * then the indexes built, then the views made; --drop drops each
 * collection first.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dj_bson_keys.h"
#include "dj_buf.h"
#include "dump.h"

/* ---- running commands ------------------------------------------------------ */

/* The document or array an iterator is at, as a read-only bson_t over its
 * bytes (borrowed: valid while they are). False for any other type. */
static bool
iter_sub (const bson_iter_t *it, bson_t *out)
{
   const uint8_t *data = NULL;
   uint32_t len = 0;
   if (BSON_ITER_HOLDS_ARRAY (it)) {
      bson_iter_array (it, &len, &data);
   } else if (BSON_ITER_HOLDS_DOCUMENT (it)) {
      bson_iter_document (it, &len, &data);
   }
   return data && bson_init_static (out, data, len);
}

/* Runs cmd (destroyed here) on db: false with a line on stderr. reply is
 * initialised either way. */
static bool
run (dj_transport_t *t, const char *db, bson_t *cmd, bson_t *reply, const char *what)
{
   bson_error_t error;
   bool ok = dj_transport_run (t, db, cmd, reply, &error);
   if (!ok) {
      fprintf (stderr, "djongo-engine: %s: %s\n", what, error.message);
   }
   bson_destroy (cmd);
   return ok;
}

/* Every document of a command's cursor, first batch then getMores, handed
 * to each (borrowed: valid during the call). False: a failure (reported). */
typedef bool (*each_doc_fn) (void *ctx, const bson_t *doc);

static bool
drain (dj_transport_t *t, const char *db, bson_t *cmd, const char *what, each_doc_fn each, void *ctx)
{
   bson_t reply;
   if (!run (t, db, cmd, &reply, what)) {
      bson_destroy (&reply);
      return false;
   }
   bool ok = true;
   const char *batch = "cursor.firstBatch";
   for (;;) {
      bson_iter_t it, docs, ns, id;
      if (bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, batch, &docs) &&
          BSON_ITER_HOLDS_ARRAY (&docs) && bson_iter_recurse (&docs, &it)) {
         while (ok && bson_iter_next (&it)) {
            bson_t doc;
            ok = BSON_ITER_HOLDS_DOCUMENT (&it) && iter_sub (&it, &doc) && each (ctx, &doc);
         }
      }
      int64_t cursor = bson_iter_init (&id, &reply) && bson_iter_find_descendant (&id, "cursor.id", &id) &&
                             BSON_ITER_HOLDS_INT (&id)
                          ? bson_iter_as_int64 (&id)
                          : 0;
      if (!ok || !cursor) {
         break;
      }
      /* the collection part of cursor.ns ("db.coll") */
      const char *coll = bson_iter_init (&ns, &reply) && bson_iter_find_descendant (&ns, "cursor.ns", &ns) &&
                               BSON_ITER_HOLDS_UTF8 (&ns) && strchr (bson_iter_utf8 (&ns, NULL), '.')
                            ? strchr (bson_iter_utf8 (&ns, NULL), '.') + 1
                            : "";
      bson_t *more = bson_new ();
      BSON_APPEND_INT64 (more, "getMore", cursor);
      BSON_APPEND_UTF8 (more, "collection", coll);
      bson_t next;
      ok = run (t, db, more, &next, what);
      bson_destroy (&reply);
      bson_steal (&reply, &next); /* (a bson_t cannot be copied by value) */
      batch = "cursor.nextBatch";
      if (!ok) {
         break;
      }
   }
   bson_destroy (&reply);
   return ok;
}

/* ---- file names ---------------------------------------------------------------- */

static char *
escape_name (const char *name)
{
   bson_string_t *s = bson_string_new (NULL);
   for (const char *p = name; *p; p++) {
      if (*p == '/' || *p == '\\' || *p == '%') {
         bson_string_append_printf (s, "%%%02X", (unsigned char) *p);
      } else {
         bson_string_append_c (s, *p);
      }
   }
   return bson_string_free (s, false);
}

static char *
unescape_name (const char *name, size_t n)
{
   char *out = bson_malloc (n + 1), *o = out;
   for (size_t i = 0; i < n; i++) {
      unsigned hex;
      if (name[i] == '%' && i + 2 < n && sscanf (name + i + 1, "%2X", &hex) == 1) {
         *o++ = (char) hex;
         i += 2;
      } else {
         *o++ = name[i];
      }
   }
   *o = '\0';
   return out;
}

static bool
make_dir (const char *path)
{
   if (mkdir (path, 0755) != 0 && errno != EEXIST) {
      fprintf (stderr, "djongo-engine: cannot create %s: %s\n", path, strerror (errno));
      return false;
   }
   return true;
}

/* ---- dump ------------------------------------------------------------------------ */

static bool
collect_doc (void *ctx, const bson_t *doc)
{
   bson_t *array = ctx; /* appends a copy under the next index */
   char key[16];
   const char *k;
   bson_uint32_to_string (bson_count_keys (array), &k, key, sizeof key);
   return bson_append_document (array, k, -1, doc);
}

static bool
write_doc (void *ctx, const bson_t *doc)
{
   FILE *f = ctx;
   return fwrite (bson_get_data (doc), 1, doc->len, f) == doc->len;
}

static bool
write_text (const char *path, const char *text)
{
   FILE *f = fopen (path, "w");
   bool ok = f && fputs (text, f) >= 0;
   if (f && fclose (f) != 0) {
      ok = false;
   }
   if (!ok) {
      fprintf (stderr, "djongo-engine: cannot write %s: %s\n", path, strerror (errno));
   }
   return ok;
}

/* One collection or view (info: a listCollections entry). */
static bool
dump_collection (dj_transport_t *t, const char *db, const char *dir, const bson_t *info, int64_t *ndocs)
{
   bson_iter_t it;
   const char *name = bson_iter_init_find (&it, info, "name") && BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL)
                                                                                            : NULL;
   if (!name) {
      return true;
   }
   bool view = bson_iter_init_find (&it, info, "type") && BSON_ITER_HOLDS_UTF8 (&it) &&
               !strcmp (bson_iter_utf8 (&it, NULL), "view");
   char *file = escape_name (name);
   bson_t meta = BSON_INITIALIZER, indexes;
   if (bson_iter_init_find (&it, info, "options") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_append_iter (&meta, "options", -1, &it);
   } else {
      bson_t empty = BSON_INITIALIZER;
      BSON_APPEND_DOCUMENT (&meta, "options", &empty);
   }
   bool ok = true;
   BSON_APPEND_ARRAY_BEGIN (&meta, "indexes", &indexes);
   if (!view) {
      bson_t *cmd = bson_new ();
      BSON_APPEND_UTF8 (cmd, "listIndexes", name);
      ok = drain (t, db, cmd, "listIndexes", collect_doc, &indexes);
   }
   bson_append_array_end (&meta, &indexes);
   BSON_APPEND_UTF8 (&meta, "collectionName", name);
   BSON_APPEND_UTF8 (&meta, "type", view ? "view" : "collection");
   if (ok && !view) {
      char *path = bson_strdup_printf ("%s/%s.bson", dir, file);
      FILE *f = fopen (path, "wb");
      if (!f) {
         fprintf (stderr, "djongo-engine: cannot write %s: %s\n", path, strerror (errno));
         ok = false;
      } else {
         /* natural order, every document: no sort, no limit */
         bson_t *cmd = bson_new ();
         BSON_APPEND_UTF8 (cmd, "find", name);
         bson_t filter = BSON_INITIALIZER;
         BSON_APPEND_DOCUMENT (cmd, "filter", &filter);
         ok = drain (t, db, cmd, "find", write_doc, f);
         if (fclose (f) != 0) {
            ok = false;
         }
         if (ok) {
            /* count what went out: the file itself, read back */
            bson_reader_t *r = bson_reader_new_from_file (path, NULL);
            bool eof = false;
            while (r && bson_reader_read (r, &eof)) {
               (*ndocs)++;
            }
            bson_reader_destroy (r);
         }
      }
      bson_free (path);
   }
   if (ok) {
      char *json = bson_as_canonical_extended_json (&meta, NULL);
      char *path = bson_strdup_printf ("%s/%s.metadata.json", dir, file);
      ok = write_text (path, json);
      bson_free (path);
      bson_free (json);
   }
   bson_destroy (&meta);
   bson_free (file);
   return ok;
}

static bool
list_names (dj_transport_t *t, const char *db, bson_t *cmd, const char *what, bson_t *out_infos)
{
   return drain (t, db, cmd, what, collect_doc, out_infos);
}

int
dj_dump (dj_transport_t *t, const char *out_dir, const char *only_db)
{
   if (!make_dir (out_dir)) {
      return 1;
   }
   bson_t dbs = BSON_INITIALIZER;
   bool ok = true;
   if (only_db) {
      bson_t one = BSON_INITIALIZER;
      BSON_APPEND_UTF8 (&one, "name", only_db);
      BSON_APPEND_DOCUMENT (&dbs, "0", &one);
      bson_destroy (&one);
   } else {
      bson_t *cmd = bson_new (), reply;
      BSON_APPEND_INT32 (cmd, "listDatabases", 1);
      BSON_APPEND_BOOL (cmd, "nameOnly", true);
      ok = run (t, "admin", cmd, &reply, "listDatabases");
      bson_iter_t it;
      bson_t names;
      if (ok && bson_iter_init_find (&it, &reply, "databases") && BSON_ITER_HOLDS_ARRAY (&it) &&
          iter_sub (&it, &names)) {
         bson_concat (&dbs, &names); /* a copy: the reply goes below */
      }
      bson_destroy (&reply);
   }
   bson_iter_t d;
   int64_t total = 0;
   int ncoll = 0;
   bson_iter_init (&d, &dbs);
   while (ok && bson_iter_next (&d)) {
      bson_iter_t n;
      if (!BSON_ITER_HOLDS_DOCUMENT (&d) || !bson_iter_recurse (&d, &n) || !bson_iter_find (&n, "name") ||
          !BSON_ITER_HOLDS_UTF8 (&n)) {
         continue;
      }
      const char *db = bson_iter_utf8 (&n, NULL);
      if (!only_db && (!strcmp (db, "local") || !strcmp (db, "config"))) {
         continue; /* a server's own, as mongodump leaves them */
      }
      char *dir = bson_strdup_printf ("%s/%s", out_dir, db);
      ok = make_dir (dir);
      bson_t infos = BSON_INITIALIZER;
      bson_t *cmd = bson_new ();
      BSON_APPEND_INT32 (cmd, "listCollections", 1);
      ok = ok && list_names (t, db, cmd, "listCollections", &infos);
      bson_iter_t c;
      bson_iter_init (&c, &infos);
      while (ok && bson_iter_next (&c)) {
         bson_t info;
         bson_iter_t nm;
         if (!iter_sub (&c, &info)) {
            continue;
         }
         if (bson_iter_init_find (&nm, &info, "name") && BSON_ITER_HOLDS_UTF8 (&nm) &&
             !strncmp (bson_iter_utf8 (&nm, NULL), "system.", 7)) {
            continue; /* system.profile, system.views...: the server's */
         }
         ok = dump_collection (t, db, dir, &info, &total);
         ncoll++;
      }
      bson_destroy (&infos);
      bson_free (dir);
   }
   bson_destroy (&dbs);
   if (ok) {
      printf ("dumped %d collections (%lld documents) to %s\n", ncoll, (long long) total, out_dir);
   }
   return ok ? 0 : 1;
}

/* ---- restore ---------------------------------------------------------------------- */

/* libbson's Extended JSON reader takes a "$type" key for part of a legacy
 * binary ({"$binary": ..., "$type": "00"}) and cannot read the query
 * operator's array form ({"$type": ["string", "int"]}), which partial
 * index filters and validators hold (djongo writes them for nullable
 * unique columns). Such keys are renamed in the text -- by a scanner that
 * knows JSON strings, so no string's content is touched -- to TYPE_ARRAY,
 * and back in the parsed document. */
#define TYPE_ARRAY "__djongo_dump_type_array__"

static char *
rename_type_arrays (const char *json)
{
   bson_string_t *out = bson_string_new (NULL);
   const char *p = json;
   while (*p) {
      if (*p != '"') {
         bson_string_append_c (out, *p++);
         continue;
      }
      const char *start = p++;
      while (*p && *p != '"') {
         p += (*p == '\\' && p[1]) ? 2 : 1;
      }
      if (*p) {
         p++; /* the closing quote */
      }
      const char *after = p;
      while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r') {
         after++;
      }
      bool key = *after == ':';
      if (key) {
         after++;
         while (*after == ' ' || *after == '\t' || *after == '\n' || *after == '\r') {
            after++;
         }
      }
      if (key && *after == '[' && p - start == 7 && !strncmp (start, "\"$type\"", 7)) {
         bson_string_append (out, "\"" TYPE_ARRAY "\"");
      } else {
         char *token = bson_strndup (start, (size_t) (p - start));
         bson_string_append (out, token);
         bson_free (token);
      }
   }
   return bson_string_free (out, false);
}

/* TYPE_ARRAY keys are named "$type" again (a dj_key_rename_fn). */
static const char *
type_key (const char *key, char *buf, size_t size)
{
   (void) buf;
   (void) size;
   return strcmp (key, TYPE_ARRAY) ? key : "$type";
}

static bson_t *
read_json_file (const char *path)
{
   FILE *f = fopen (path, "r");
   if (!f) {
      fprintf (stderr, "djongo-engine: cannot read %s: %s\n", path, strerror (errno));
      return NULL;
   }
   bson_string_t *s = bson_string_new (NULL);
   char buf[8192];
   size_t n;
   while ((n = fread (buf, 1, sizeof buf - 1, f)) > 0) {
      buf[n] = '\0';
      bson_string_append (s, buf);
   }
   fclose (f);
   bson_error_t error;
   char *text = rename_type_arrays (s->str);
   bson_string_free (s, true);
   bson_t *parsed = bson_new_from_json ((const uint8_t *) text, -1, &error);
   bson_free (text);
   if (!parsed) {
      fprintf (stderr, "djongo-engine: %s is not Extended JSON: %s\n", path, error.message);
      return NULL;
   }
   return dj_bson_rename_keys (parsed, type_key);
}

/* Inserts the batch (an array of documents) unordered: a duplicate _id is
 * counted in *failed and the rest go in, as mongorestore does. */
static bool
insert_batch (dj_transport_t *t, const char *db, const char *coll, bson_t *docs, int64_t *failed)
{
   bson_t *cmd = bson_new (), reply;
   BSON_APPEND_UTF8 (cmd, "insert", coll);
   BSON_APPEND_ARRAY (cmd, "documents", docs);
   BSON_APPEND_BOOL (cmd, "ordered", false);
   bool ok = run (t, db, cmd, &reply, "insert");
   bson_iter_t it, e;
   if (bson_iter_init_find (&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY (&it) && bson_iter_recurse (&it, &e)) {
      bool first = true;
      while (bson_iter_next (&e)) {
         bson_iter_t m;
         if (first && bson_iter_recurse (&e, &m) && bson_iter_find (&m, "errmsg") && BSON_ITER_HOLDS_UTF8 (&m)) {
            fprintf (stderr, "djongo-engine: %s.%s: %s\n", db, coll, bson_iter_utf8 (&m, NULL));
         }
         first = false;
         (*failed)++;
      }
   }
   bson_destroy (&reply);
   return ok;
}

static bool
restore_documents (dj_transport_t *t, const char *db, const char *coll, const char *path, int64_t *ndocs,
                   int64_t *failed)
{
   bson_error_t error;
   bson_reader_t *r = bson_reader_new_from_file (path, &error);
   if (!r) {
      fprintf (stderr, "djongo-engine: cannot read %s: %s\n", path, error.message);
      return false;
   }
   const bson_t *doc;
   bool eof = false, ok = true;
   bson_t batch = BSON_INITIALIZER;
   uint32_t count = 0;
   while (ok && (doc = bson_reader_read (r, &eof))) {
      char key[16];
      const char *k;
      bson_uint32_to_string (count++, &k, key, sizeof key);
      bson_append_document (&batch, k, -1, doc);
      (*ndocs)++;
      /* batches under MongoDB's 16 MiB command limit, 1000 documents at most */
      if (count == 1000 || batch.len > 8 * 1024 * 1024) {
         ok = insert_batch (t, db, coll, &batch, failed);
         bson_reinit (&batch);
         count = 0;
      }
   }
   if (ok && !eof) {
      fprintf (stderr, "djongo-engine: %s: a truncated or corrupt document\n", path);
      ok = false;
   }
   if (ok && count) {
      ok = insert_batch (t, db, coll, &batch, failed);
   }
   bson_destroy (&batch);
   bson_reader_destroy (r);
   return ok;
}

/* Creates the collection (or view) of a metadata file, with its options;
 * one that exists already is kept (its documents are added to). */
static bool
create_from_metadata (dj_transport_t *t, const char *db, const char *coll, const bson_t *meta, bool drop)
{
   bson_iter_t it;
   if (drop) {
      bson_t *cmd = bson_new (), reply;
      BSON_APPEND_UTF8 (cmd, "drop", coll);
      bson_error_t error;
      dj_transport_run (t, db, cmd, &reply, &error); /* NamespaceNotFound: nothing to drop */
      bson_destroy (cmd);
      bson_destroy (&reply);
   }
   bson_t *cmd = bson_new (), reply;
   BSON_APPEND_UTF8 (cmd, "create", coll);
   if (bson_iter_init_find (&it, meta, "options") && BSON_ITER_HOLDS_DOCUMENT (&it)) {
      bson_iter_t o;
      bson_iter_recurse (&it, &o);
      while (bson_iter_next (&o)) {
         bson_append_iter (cmd, NULL, 0, &o);
      }
   }
   bson_error_t error;
   bool ok = dj_transport_run (t, db, cmd, &reply, &error);
   if (!ok && error.domain == DJ_DOMAIN_SERVER && error.code == DJ_NamespaceExists) {
      ok = true;
   } else if (!ok) {
      fprintf (stderr, "djongo-engine: create %s.%s: %s\n", db, coll, error.message);
   }
   bson_destroy (cmd);
   bson_destroy (&reply);
   return ok;
}

static bool
restore_indexes (dj_transport_t *t, const char *db, const char *coll, const bson_t *meta)
{
   bson_iter_t it, ix;
   if (!bson_iter_init_find (&it, meta, "indexes") || !BSON_ITER_HOLDS_ARRAY (&it) || !bson_iter_recurse (&it, &ix)) {
      return true;
   }
   bson_t specs = BSON_INITIALIZER;
   uint32_t n = 0;
   while (bson_iter_next (&ix)) {
      bson_iter_t f, name;
      if (!BSON_ITER_HOLDS_DOCUMENT (&ix) || !bson_iter_recurse (&ix, &f) || !bson_iter_recurse (&ix, &name) ||
          (bson_iter_find (&name, "name") && BSON_ITER_HOLDS_UTF8 (&name) &&
           !strcmp (bson_iter_utf8 (&name, NULL), "_id_"))) {
         continue; /* every collection has its _id index already */
      }
      bson_t spec;
      char key[16];
      const char *k;
      bson_uint32_to_string (n++, &k, key, sizeof key);
      bson_append_document_begin (&specs, k, -1, &spec);
      while (bson_iter_next (&f)) {
         if (strcmp (bson_iter_key (&f), "v") && strcmp (bson_iter_key (&f), "ns")) {
            bson_append_iter (&spec, NULL, 0, &f); /* (v, ns: the index format and namespace are the target's) */
         }
      }
      bson_append_document_end (&specs, &spec);
   }
   bool ok = true;
   if (n) {
      bson_t *cmd = bson_new (), reply;
      BSON_APPEND_UTF8 (cmd, "createIndexes", coll);
      BSON_APPEND_ARRAY (cmd, "indexes", &specs);
      ok = run (t, db, cmd, &reply, "createIndexes");
      bson_destroy (&reply);
   }
   bson_destroy (&specs);
   return ok;
}

static bool
has_suffix (const char *name, const char *suffix, size_t *stem)
{
   size_t n = strlen (name), m = strlen (suffix);
   *stem = n > m ? n - m : 0;
   return n > m && !strcmp (name + n - m, suffix);
}

static int
by_name (const void *a, const void *b)
{
   return strcmp (*(char *const *) a, *(char *const *) b);
}

/* The entries of dir ending in suffix, sorted (owned array of owned names). */
static char **
list_dir (const char *dir, const char *suffix, bool dirs, int *count)
{
   DIR *d = opendir (dir);
   char **names = NULL;
   int n = 0, cap = 0;
   struct dirent *e;
   while (d && (e = readdir (d))) {
      size_t stem;
      if (e->d_name[0] == '.') {
         continue;
      }
      char *path = bson_strdup_printf ("%s/%s", dir, e->d_name);
      struct stat st;
      bool is_dir = stat (path, &st) == 0 && S_ISDIR (st.st_mode);
      bson_free (path);
      if (dirs ? !is_dir : (is_dir || !has_suffix (e->d_name, suffix, &stem))) {
         continue;
      }
      if (n == cap) {
         cap = cap ? cap * 2 : 16;
         names = bson_realloc (names, (size_t) cap * sizeof *names);
      }
      names[n++] = bson_strdup (e->d_name);
   }
   if (d) {
      closedir (d);
   }
   if (n) {
      qsort (names, (size_t) n, sizeof *names, by_name);
   }
   *count = n;
   return names;
}

/* One database directory: collections (options, documents, indexes), then
 * views (which may read those collections). */
static bool
restore_db (dj_transport_t *t, const char *dir, const char *db, bool drop, int *ncoll, int64_t *ndocs, int64_t *failed)
{
   int n;
   char **metas = list_dir (dir, ".metadata.json", false, &n);
   bool ok = true;
   for (int pass = 0; ok && pass < 2; pass++) { /* 0: collections, 1: views */
      for (int i = 0; ok && i < n; i++) {
         size_t stem;
         has_suffix (metas[i], ".metadata.json", &stem);
         char *path = bson_strdup_printf ("%s/%s", dir, metas[i]);
         bson_t *meta = read_json_file (path);
         bson_free (path);
         if (!meta) {
            ok = false;
            break;
         }
         bson_iter_t it;
         bool view = bson_iter_init_find (&it, meta, "type") && BSON_ITER_HOLDS_UTF8 (&it) &&
                     !strcmp (bson_iter_utf8 (&it, NULL), "view");
         char *coll = bson_iter_init_find (&it, meta, "collectionName") && BSON_ITER_HOLDS_UTF8 (&it)
                         ? bson_strdup (bson_iter_utf8 (&it, NULL))
                         : unescape_name (metas[i], stem);
         if (view == (pass == 1)) {
            ok = create_from_metadata (t, db, coll, meta, drop);
            if (ok && !view) {
               char *file = bson_strndup (metas[i], stem);
               char *bson_path = bson_strdup_printf ("%s/%s.bson", dir, file);
               struct stat st;
               if (stat (bson_path, &st) == 0) {
                  ok = restore_documents (t, db, coll, bson_path, ndocs, failed);
               }
               ok = ok && restore_indexes (t, db, coll, meta);
               bson_free (bson_path);
               bson_free (file);
            }
            (*ncoll)++;
         }
         bson_free (coll);
         bson_destroy (meta);
      }
   }
   dj_strv_free (metas, n);
   return ok;
}

int
dj_restore (dj_transport_t *t, const char *in_dir, bool drop)
{
   struct stat st;
   if (stat (in_dir, &st) != 0 || !S_ISDIR (st.st_mode)) {
      fprintf (stderr, "djongo-engine: %s is not a dump directory\n", in_dir);
      return 1;
   }
   int ndb;
   char **dbs = list_dir (in_dir, "", true, &ndb);
   bool ok = true;
   int ncoll = 0;
   int64_t ndocs = 0, failed = 0;
   for (int i = 0; ok && i < ndb; i++) {
      char *dir = bson_strdup_printf ("%s/%s", in_dir, dbs[i]);
      ok = restore_db (t, dir, dbs[i], drop, &ncoll, &ndocs, &failed);
      bson_free (dir);
   }
   dj_strv_free (dbs, ndb);
   if (!ndb) {
      fprintf (stderr, "djongo-engine: %s holds no database directories (DIR/<db>/<collection>.bson)\n", in_dir);
      return 1;
   }
   if (ok) {
      printf ("restored %d collections (%lld documents", ncoll, (long long) (ndocs - failed));
      if (failed) {
         printf ("; %lld not inserted", (long long) failed);
      }
      printf (") from %s\n", in_dir);
   }
   return ok && !failed ? 0 : 1;
}
