/*
 * run_scripts -- runs the engine's command scripts (tests/engine/scripts/).
 *
 *   run_scripts FILE.test ...
 *
 * A script is a sequence of lines, each file in a fresh data directory:
 *
 *   # text                  a comment (cite the manual page a case checks)
 *   db NAME                 switch database (default "test")
 *   run {command}           run a command (MongoDB Extended JSON)
 *   ok                      the last reply has ok: 1 and no writeErrors
 *   expect {doc}            the last reply contains doc (subset match:
 *                           every field given must be there, recursively;
 *                           arrays must have exactly the elements given)
 *   docs [doc, ...]         the last reply's cursor batch is exactly these
 *                           documents, in this order, with these types
 *   error CODE              the last reply failed with CODE (ok: 0), or its
 *                           first writeError has CODE
 *   errmsg TEXT             the error message contains TEXT
 *   keep NAME               the last reply opened a cursor (cursor.id is not
 *                           0): later lines may write @NAME for its id, as
 *                           cursor ids are random (not known in advance)
 *
 * Prints each failure with file:line, then "N passed, N failed".
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "dj_bson_keys.h"
#include "dj_values.h"

static int passed, failed;

/* libbson's JSON reader takes {"$type": ...} and {"$regex": ..., "$options":
 * ...} for legacy Extended JSON syntax, so scripts' "$type", "$regex" and
 * "$options" are read as "$__type" (etc.) and renamed back here. */
static const char *
unescape_key (const char *k, char *buf, size_t size)
{
   if (!strncmp (k, "$__", 3) && strlen (k) < size) {
      snprintf (buf, size, "$%s", k + 3);
      return buf;
   }
   return k;
}

/* The cursor ids `keep` remembered, by name, for one script. */
typedef struct {
   int n;
   char name[16][32];
   int64_t id[16];
} kept_t;

/* @NAME at p: appends the kept id as {"$numberLong": "..."} and returns the
 * length consumed, or 0 when p is not a kept name. */
static size_t
kept_id (const kept_t *k, const char *p, dj_buf_t *b)
{
   if (*p != '@') {
      return 0;
   }
   for (int i = 0; i < k->n; i++) {
      size_t n = strlen (k->name[i]);
      if (!strncmp (p + 1, k->name[i], n) && !isalnum ((unsigned char) p[1 + n]) && p[1 + n] != '_') {
         char num[64];
         int len = snprintf (num, sizeof num, "{\"$numberLong\": \"%lld\"}", (long long) k->id[i]);
         dj_buf_append (b, num, (size_t) len);
         return n + 1;
      }
   }
   return 0;
}

static bson_t *
parse_json (const char *text, const kept_t *kept, bson_error_t *err)
{
   dj_buf_t b;
   dj_buf_init (&b);
   for (const char *p = text; *p;) {
      size_t used = kept_id (kept, p, &b);
      if (used) {
         p += used;
         continue;
      }
      static const char *const legacy[] = {"\"$type\"", "\"$regex\"", "\"$options\"", NULL};
      bool hit = false;
      for (int i = 0; legacy[i] && !hit; i++) {
         size_t n = strlen (legacy[i]);
         if (!strncmp (p, legacy[i], n)) {
            dj_buf_append (&b, "\"$__", 4);
            dj_buf_append (&b, legacy[i] + 2, n - 2);
            p += n;
            hit = true;
         }
      }
      if (!hit) {
         dj_buf_putc (&b, (uint8_t) *p++);
      }
   }
   dj_buf_putc (&b, 0);
   char *esc = (char *) b.data;
   bson_t *raw = bson_new_from_json ((const uint8_t *) esc, -1, err);
   bson_free (esc);
   if (!raw) {
      return NULL;
   }
   return dj_bson_rename_keys (raw, unescape_key);
}

static bool
values_match (const bson_value_t *want, const bson_value_t *got, bool subset);

static bool
docs_match (const uint8_t *wd, uint32_t wl, const uint8_t *gd, uint32_t gl, bool subset, bool is_array)
{
   bson_iter_t wi, gi;
   bson_iter_init_from_data (&wi, wd, wl);
   if (subset && !is_array) {
      while (bson_iter_next (&wi)) {
         bson_iter_init_from_data (&gi, gd, gl);
         if (!bson_iter_find (&gi, bson_iter_key (&wi)) ||
             !values_match (bson_iter_value (&wi), bson_iter_value (&gi), subset)) {
            return false;
         }
      }
      return true;
   }
   bson_iter_init_from_data (&gi, gd, gl);
   for (;;) {
      bool hw = bson_iter_next (&wi), hg = bson_iter_next (&gi);
      if (hw != hg) {
         return false;
      }
      if (!hw) {
         return true;
      }
      if ((!is_array && strcmp (bson_iter_key (&wi), bson_iter_key (&gi))) ||
          !values_match (bson_iter_value (&wi), bson_iter_value (&gi), subset)) {
         return false;
      }
   }
}

static bool
values_match (const bson_value_t *want, const bson_value_t *got, bool subset)
{
   if (want->value_type != got->value_type) {
      return false;
   }
   if (want->value_type == BSON_TYPE_DOCUMENT || want->value_type == BSON_TYPE_ARRAY) {
      return docs_match (want->value.v_doc.data, want->value.v_doc.data_len, got->value.v_doc.data,
                         got->value.v_doc.data_len, subset, want->value_type == BSON_TYPE_ARRAY);
   }
   return dj_value_cmp (want, got) == 0;
}

static void
fail (const char *file, int line, const char *what, const bson_t *reply, const char *extra)
{
   char *r = bson_as_relaxed_extended_json (reply, NULL);
   printf ("FAIL %s:%d: %s\n  reply: %s\n%s%s%s", file, line, what, r, extra ? "  wanted: " : "", extra ? extra : "",
           extra ? "\n" : "");
   bson_free (r);
   failed++;
}

static bool
reply_error (const bson_t *reply, int32_t *code, const char **msg)
{
   bson_iter_t it, we;
   if (bson_iter_init_find (&it, reply, "ok") && bson_iter_as_double (&it) == 0.0) {
      if (bson_iter_init_find (&it, reply, "code")) {
         *code = bson_iter_int32 (&it);
      }
      if (bson_iter_init_find (&it, reply, "errmsg")) {
         *msg = bson_iter_utf8 (&it, NULL);
      }
      return true;
   }
   if (bson_iter_init_find (&it, reply, "writeErrors") && bson_iter_recurse (&it, &we) && bson_iter_next (&we)) {
      bson_iter_t f;
      bson_iter_recurse (&we, &f);
      while (bson_iter_next (&f)) {
         if (!strcmp (bson_iter_key (&f), "code")) {
            *code = bson_iter_int32 (&f);
         } else if (!strcmp (bson_iter_key (&f), "errmsg")) {
            *msg = bson_iter_utf8 (&f, NULL);
         }
      }
      return true;
   }
   return false;
}

static void
run_file (const char *file)
{
   char dir[] = "/tmp/djongo-test-XXXXXX";
   char db[128] = "test";
   FILE *f = fopen (file, "r");
   char *line = NULL;
   size_t cap = 0;
   int lineno = 0;
   bson_t reply = BSON_INITIALIZER;
   bson_error_t err;
   kept_t kept = {0};

   if (!f || !mkdtemp (dir)) {
      printf ("FAIL %s: cannot open or make a data directory\n", file);
      failed++;
      if (f) {
         fclose (f);
      }
      return;
   }
   dj_engine_options_t opts = {.flags = DJ_ENGINE_NOSYNC};
   dj_engine_t *e = dj_engine_open (dir, &opts, &err);
   if (!e) {
      printf ("FAIL %s: %s\n", file, err.message);
      failed++;
      fclose (f);
      return;
   }
   while (getline (&line, &cap, f) > 0) {
      lineno++;
      line[strcspn (line, "\n")] = '\0';
      char *arg = strchr (line, ' ');
      if (arg) {
         *arg++ = '\0';
      }
      if (!line[0] || line[0] == '#') {
         continue;
      }
      if (!strcmp (line, "db")) {
         snprintf (db, sizeof db, "%s", arg);
      } else if (!strcmp (line, "run")) {
         bson_t *cmd = parse_json (arg, &kept, &err);
         bson_destroy (&reply);
         if (!cmd) {
            printf ("FAIL %s:%d: bad JSON in script: %s\n", file, lineno, err.message);
            failed++;
            bson_init (&reply);
            continue;
         }
         dj_engine_run_command (e, db, cmd, &reply);
         bson_destroy (cmd);
      } else if (!strcmp (line, "ok")) {
         int32_t code = 0;
         const char *msg = "";
         if (reply_error (&reply, &code, &msg)) {
            fail (file, lineno, "expected success", &reply, NULL);
         } else {
            passed++;
         }
      } else if (!strcmp (line, "expect") || !strcmp (line, "docs")) {
         bool is_docs = line[0] == 'd';
         char *wrapped = bson_strdup_printf ("{\"v\": %s}", arg ? arg : "null");
         bson_t *want = parse_json (wrapped, &kept, &err);
         bson_free (wrapped);
         if (!want) {
            printf ("FAIL %s:%d: bad JSON in script: %s\n", file, lineno, err.message);
            failed++;
            continue;
         }
         bson_iter_t wi, gi, ci;
         bson_iter_init_find (&wi, want, "v");
         bool ok;
         if (is_docs) {
            ok = bson_iter_init_find (&gi, &reply, "cursor") && bson_iter_recurse (&gi, &ci) &&
                 (bson_iter_find (&ci, "firstBatch") || (bson_iter_recurse (&gi, &ci) && bson_iter_find (&ci, "nextBatch"))) &&
                 values_match (bson_iter_value (&wi), bson_iter_value (&ci), false);
         } else {
            bson_value_t rv;
            dj_value_from_doc (&reply, false, &rv);
            ok = values_match (bson_iter_value (&wi), &rv, true);
         }
         if (ok) {
            passed++;
         } else {
            fail (file, lineno, is_docs ? "docs differ" : "reply does not contain the expected fields", &reply, arg);
         }
         bson_destroy (want);
      } else if (!strcmp (line, "error")) {
         int32_t code = 0;
         const char *msg = "";
         if (!reply_error (&reply, &code, &msg) || code != atoi (arg)) {
            fail (file, lineno, "expected an error", &reply, arg);
         } else {
            passed++;
         }
      } else if (!strcmp (line, "errmsg")) {
         int32_t code = 0;
         const char *msg = "";
         if (!reply_error (&reply, &code, &msg) || !strstr (msg, arg)) {
            fail (file, lineno, "expected an error message", &reply, arg);
         } else {
            passed++;
         }
      } else if (!strcmp (line, "keep")) {
         bson_iter_t it;
         int64_t id = bson_iter_init (&it, &reply) && bson_iter_find_descendant (&it, "cursor.id", &it) &&
                            BSON_ITER_HOLDS_INT64 (&it)
                         ? bson_iter_int64 (&it)
                         : 0;
         if (!arg || strlen (arg) >= sizeof kept.name[0] || kept.n == 16) {
            printf ("FAIL %s:%d: keep needs a short name (at most 16 a script)\n", file, lineno);
            failed++;
         } else if (id == 0) {
            fail (file, lineno, "expected an open cursor (cursor.id not 0)", &reply, arg);
         } else {
            snprintf (kept.name[kept.n], sizeof kept.name[0], "%s", arg);
            kept.id[kept.n++] = id;
            passed++;
         }
      } else {
         printf ("FAIL %s:%d: unknown script verb '%s'\n", file, lineno, line);
         failed++;
      }
   }
   free (line);
   fclose (f);
   bson_destroy (&reply);
   dj_engine_close (e);
   char *rm = bson_strdup_printf ("rm -rf '%s'", dir);
   if (system (rm) != 0) {
      printf ("warning: could not remove %s\n", dir);
   }
   bson_free (rm);
}

int
main (int argc, char **argv)
{
   for (int i = 1; i < argc; i++) {
      run_file (argv[i]);
   }
   printf ("scripts: %d passed, %d failed\n", passed, failed);
   return failed ? 1 : 0;
}
