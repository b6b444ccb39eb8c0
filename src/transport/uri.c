/*
 * uri.c -- a server HOST plus its connection options -> libmongoc's
 * mongoc_uri_t, through libmongoc's URI API: options are set one by one
 * (mongoc_uri_set_option_as_*, read preference, write and read concern
 * objects), never pasted into URI text, so a value holding '&', '/' or '@'
 * cannot become another option. The options and their meaning are
 * MongoDB's connection-string options:
 * https://www.mongodb.com/docs/manual/reference/connection-string-options/
 * Every error names the option and what it accepts; the same code checks
 * settings (dj_transport_check()) and opens connections.
 */
#include <ctype.h>
#include <mongoc/mongoc.h>
#include <string.h>
#include <unistd.h>

#include "dj_transport.h"
#include "transport-private.h"

static bool
opt_error (bson_error_t *error, const char *fmt, ...) BSON_GNUC_PRINTF (2, 3);

static bool
opt_error (bson_error_t *error, const char *fmt, ...)
{
   va_list ap;
   va_start (ap, fmt);
   char *msg = bson_strdupv_printf (fmt, ap);
   va_end (ap);
   /* libmongoc's own domain and code for a bad URI, so callers treat both alike */
   bson_set_error (error, MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, "%s", msg);
   bson_free (msg);
   return false;
}

/* ---- the read preference ---------------------------------------------------- */

static const struct {
   const char *name;
   mongoc_read_mode_t mode;
} read_modes[] = {{"primary", MONGOC_READ_PRIMARY},
                  {"primaryPreferred", MONGOC_READ_PRIMARY_PREFERRED},
                  {"secondary", MONGOC_READ_SECONDARY},
                  {"secondaryPreferred", MONGOC_READ_SECONDARY_PREFERRED},
                  {"nearest", MONGOC_READ_NEAREST}};

/* One tag set: a document of strings, or the URI's "dc:ny,rack:1" text
 * ("" is the empty set: any member). Appended to tags (an array) at key. */
static bool
append_tag_set (bson_t *tags, const char *key, const bson_iter_t *it, bson_error_t *error)
{
   bson_t set;
   bson_append_document_begin (tags, key, -1, &set);
   bool ok = true;
   if (BSON_ITER_HOLDS_DOCUMENT (it)) {
      bson_iter_t f;
      bson_iter_recurse (it, &f);
      while (ok && bson_iter_next (&f)) {
         if (!BSON_ITER_HOLDS_UTF8 (&f)) {
            ok = opt_error (error, "readPreferenceTags: tag '%s' must be a string", bson_iter_key (&f));
         } else {
            bson_append_iter (&set, NULL, 0, &f);
         }
      }
   } else if (BSON_ITER_HOLDS_UTF8 (it)) {
      const char *s = bson_iter_utf8 (it, NULL);
      while (ok && *s) {
         size_t n = strcspn (s, ",");
         const char *colon = memchr (s, ':', n);
         if (!colon || colon == s) {
            ok = opt_error (error, "readPreferenceTags: '%.*s' is not name:value", (int) n, s);
            break;
         }
         bson_append_utf8 (&set, s, (int) (colon - s), colon + 1, (int) (s + n - colon - 1));
         s += n + (s[n] == ',');
      }
   } else {
      ok = opt_error (error, "readPreferenceTags: a tag set is a dict of strings or 'name:value,...' text");
   }
   bson_append_document_end (tags, &set);
   return ok;
}

/* readPreference, readPreferenceTags and maxStalenessSeconds together (the
 * ones given; the URI's for the others): the read preference spec's rules
 * -- no tags or staleness with primary, staleness -1 (none) or at least
 * 90 s -- checked here, with the option's name, rather than at the first
 * read. https://www.mongodb.com/docs/manual/core/read-preference/ */
static bool
apply_read_prefs (mongoc_uri_t *uri, const bson_iter_t *mode_it, const bson_iter_t *tags_it,
                  const bson_iter_t *stale_it, bson_error_t *error)
{
   mongoc_read_prefs_t *rp = mongoc_read_prefs_copy (mongoc_uri_get_read_prefs_t (uri));
   bool ok = true;
   if (mode_it) {
      const char *name = BSON_ITER_HOLDS_UTF8 (mode_it) ? bson_iter_utf8 (mode_it, NULL) : NULL;
      bool found = false;
      for (size_t i = 0; name && i < sizeof read_modes / sizeof read_modes[0]; i++) {
         if (!strcasecmp (name, read_modes[i].name)) {
            mongoc_read_prefs_set_mode (rp, read_modes[i].mode);
            found = true;
         }
      }
      if (!found) {
         ok = opt_error (error,
                         "readPreference must be primary, primaryPreferred, secondary, secondaryPreferred or nearest");
      }
   }
   if (ok && tags_it) {
      bson_t tags = BSON_INITIALIZER;
      if (BSON_ITER_HOLDS_ARRAY (tags_it)) {
         bson_iter_t e;
         bson_iter_recurse (tags_it, &e);
         while (ok && bson_iter_next (&e)) {
            ok = append_tag_set (&tags, bson_iter_key (&e), &e, error);
         }
      } else {
         ok = append_tag_set (&tags, "0", tags_it, error);
      }
      if (ok) {
         mongoc_read_prefs_set_tags (rp, &tags);
      }
      bson_destroy (&tags);
   }
   if (ok && stale_it) {
      int64_t s = BSON_ITER_HOLDS_INT (stale_it) ? bson_iter_as_int64 (stale_it) : 0;
      if (!BSON_ITER_HOLDS_INT (stale_it) || (s != -1 && s < MONGOC_SMALLEST_MAX_STALENESS_SECONDS)) {
         ok = opt_error (error, "maxStalenessSeconds must be a whole number of seconds, at least %d (or -1: no limit)",
                         MONGOC_SMALLEST_MAX_STALENESS_SECONDS);
      } else {
         mongoc_read_prefs_set_max_staleness_seconds (rp, s);
      }
   }
   if (ok && mongoc_read_prefs_get_mode (rp) == MONGOC_READ_PRIMARY) {
      if (!bson_empty (mongoc_read_prefs_get_tags (rp))) {
         ok = opt_error (error, "readPreferenceTags cannot be used with readPreference primary (the primary is "
                                "chosen by election, not by tags)");
      } else if (mongoc_read_prefs_get_max_staleness_seconds (rp) != MONGOC_NO_MAX_STALENESS) {
         ok = opt_error (error, "maxStalenessSeconds cannot be used with readPreference primary");
      }
   }
   if (ok && !mongoc_read_prefs_is_valid (rp)) {
      ok = opt_error (error, "the read preference is not valid");
   }
   if (ok) {
      mongoc_uri_set_read_prefs_t (uri, rp);
   }
   mongoc_read_prefs_destroy (rp);
   return ok;
}

/* ---- write and read concern ------------------------------------------------- */

/* w, wTimeoutMS, journal (those given; the URI's for the others).
 * https://www.mongodb.com/docs/manual/reference/write-concern/ */
static bool
apply_write_concern (mongoc_uri_t *uri, const bson_iter_t *w_it, const bson_iter_t *wt_it, const bson_iter_t *j_it,
                     bson_error_t *error)
{
   mongoc_write_concern_t *wc = mongoc_write_concern_copy (mongoc_uri_get_write_concern (uri));
   bool ok = true;
   if (w_it) {
      if (BSON_ITER_HOLDS_INT (w_it) && bson_iter_as_int64 (w_it) >= 0 && bson_iter_as_int64 (w_it) <= INT32_MAX) {
         mongoc_write_concern_set_w (wc, (int32_t) bson_iter_as_int64 (w_it));
      } else if (BSON_ITER_HOLDS_UTF8 (w_it) && !strcmp (bson_iter_utf8 (w_it, NULL), "majority")) {
         mongoc_write_concern_set_w (wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
      } else if (BSON_ITER_HOLDS_UTF8 (w_it) && *bson_iter_utf8 (w_it, NULL)) {
         mongoc_write_concern_set_wtag (wc, bson_iter_utf8 (w_it, NULL)); /* a custom write concern name */
      } else {
         ok = opt_error (error, "w must be a number of members (0 or more), 'majority', or a custom write concern name");
      }
   }
   if (ok && wt_it) {
      if (!BSON_ITER_HOLDS_INT (wt_it) || bson_iter_as_int64 (wt_it) < 0) {
         ok = opt_error (error, "wTimeoutMS must be a whole number of milliseconds, 0 or more");
      } else {
         mongoc_write_concern_set_wtimeout_int64 (wc, bson_iter_as_int64 (wt_it));
      }
   }
   if (ok && j_it) {
      if (!BSON_ITER_HOLDS_BOOL (j_it)) {
         ok = opt_error (error, "journal must be True or False");
      } else {
         mongoc_write_concern_set_journal (wc, bson_iter_bool (j_it));
      }
   }
   if (ok && !mongoc_write_concern_is_valid (wc)) {
      ok = opt_error (error, "w 0 (unacknowledged) cannot be combined with journal True");
   }
   if (ok) {
      mongoc_uri_set_write_concern (uri, wc);
   }
   mongoc_write_concern_destroy (wc);
   return ok;
}

/* https://www.mongodb.com/docs/manual/reference/read-concern/ */
static bool
apply_read_concern (mongoc_uri_t *uri, const bson_iter_t *it, bson_error_t *error)
{
   static const char *const levels[] = {"local", "available", "majority", "linearizable", "snapshot"};
   const char *level = BSON_ITER_HOLDS_UTF8 (it) ? bson_iter_utf8 (it, NULL) : NULL;
   bool known = false;
   for (size_t i = 0; level && i < sizeof levels / sizeof levels[0]; i++) {
      known |= !strcmp (level, levels[i]);
   }
   if (!known) {
      return opt_error (error, "readConcernLevel must be local, available, majority, linearizable or snapshot");
   }
   mongoc_read_concern_t *rc = mongoc_read_concern_new ();
   mongoc_read_concern_set_level (rc, level);
   mongoc_uri_set_read_concern (uri, rc);
   mongoc_read_concern_destroy (rc);
   return true;
}

/* compressors: a list of names or "zstd,zlib" text; each must be one this
 * libmongoc was built with (libmongoc would drop it with a warning). */
static bool
apply_compressors (mongoc_uri_t *uri, const bson_iter_t *it, bson_error_t *error)
{
   char *joined = NULL;
   if (BSON_ITER_HOLDS_UTF8 (it)) {
      joined = bson_strdup (bson_iter_utf8 (it, NULL));
   } else if (BSON_ITER_HOLDS_ARRAY (it)) {
      bson_string_t *s = bson_string_new (NULL);
      bson_iter_t e;
      bson_iter_recurse (it, &e);
      while (bson_iter_next (&e)) {
         if (!BSON_ITER_HOLDS_UTF8 (&e) || strchr (bson_iter_utf8 (&e, NULL), ',')) {
            bson_string_free (s, true);
            return opt_error (error, "compressors: each entry is a compressor's name (zstd, zlib, snappy)");
         }
         bson_string_append_printf (s, "%s%s", s->len ? "," : "", bson_iter_utf8 (&e, NULL));
      }
      joined = bson_string_free (s, false);
   } else {
      return opt_error (error, "compressors must be a list of names, or names joined by commas");
   }
   bool ok = true;
   char *save = NULL;
   char *copy = bson_strdup (joined);
   for (char *name = strtok_r (copy, ",", &save); ok && name; name = strtok_r (NULL, ",", &save)) {
      if (strcmp (name, "zstd") && strcmp (name, "zlib") && strcmp (name, "snappy")) {
         ok = opt_error (error, "compressors: '%s' is not one MongoDB has (zstd, zlib, snappy)", name);
         break;
      }
      /* libmongoc keeps exactly the ones it was built with (dropping
       * others with a warning): the name must survive */
      mongoc_uri_t *probe = mongoc_uri_new_for_host_port ("localhost", 27017);
      mongoc_uri_set_compressors (probe, name);
      bson_iter_t found;
      if (!bson_iter_init_find_case (&found, mongoc_uri_get_compressors (probe), name)) {
         ok = opt_error (error, "compressors: '%s' is not built into this libmongoc", name);
      }
      mongoc_uri_destroy (probe);
   }
   bson_free (copy);
   if (ok && !mongoc_uri_set_compressors (uri, joined)) {
      ok = opt_error (error, "compressors: '%s' was refused by libmongoc", joined);
   }
   bson_free (joined);
   return ok;
}

/* ---- the other options, by libmongoc's own table of their types ------------- */

/* key: the option lower-cased (libmongoc's tables); name: as the user
 * spelled it, for messages */
static bool
apply_typed (mongoc_uri_t *uri, const char *key, const char *name, const bson_iter_t *it, bson_error_t *error)
{
   if (mongoc_uri_option_is_bool (key)) {
      if (!BSON_ITER_HOLDS_BOOL (it)) {
         return opt_error (error, "%s must be True or False", name);
      }
      if (!mongoc_uri_set_option_as_bool (uri, key, bson_iter_bool (it))) {
         return opt_error (error, "%s cannot be set on this URI", name);
      }
      return true;
   }
   if (mongoc_uri_option_is_int32 (key) || mongoc_uri_option_is_int64 (key)) {
      if (!BSON_ITER_HOLDS_INT (it) || bson_iter_as_int64 (it) < 0) {
         return opt_error (error, "%s must be a whole number, 0 or more", name);
      }
      int64_t v = bson_iter_as_int64 (it);
      bool set = mongoc_uri_option_is_int64 (key) ? mongoc_uri_set_option_as_int64 (uri, key, v)
                 : v <= INT32_MAX                 ? mongoc_uri_set_option_as_int32 (uri, key, (int32_t) v)
                                                  : false;
      if (!set) {
         return opt_error (error, "%s: %lld is not a value libmongoc accepts", name, (long long) v);
      }
      return true;
   }
   if (mongoc_uri_option_is_utf8 (key)) {
      if (!BSON_ITER_HOLDS_UTF8 (it)) {
         return opt_error (error, "%s must be a string", name);
      }
      const char *v = bson_iter_utf8 (it, NULL);
      /* a file the TLS layer will read: said now, by name, rather than as
       * a handshake failure at the first query */
      if ((!strcasecmp (key, MONGOC_URI_TLSCAFILE) || !strcasecmp (key, MONGOC_URI_TLSCERTIFICATEKEYFILE)) &&
          access (v, R_OK) != 0) {
         return opt_error (error, "%s: cannot read %s", name, v);
      }
      bool set = !strcasecmp (key, MONGOC_URI_APPNAME)       ? mongoc_uri_set_appname (uri, v)
                 : !strcasecmp (key, MONGOC_URI_AUTHSOURCE)    ? mongoc_uri_set_auth_source (uri, v)
                 : !strcasecmp (key, MONGOC_URI_AUTHMECHANISM) ? mongoc_uri_set_auth_mechanism (uri, v)
                                                                : mongoc_uri_set_option_as_utf8 (uri, key, v);
      if (!set && !strcasecmp (key, MONGOC_URI_APPNAME)) {
         return opt_error (error, "appname: '%s' is refused by libmongoc (at most 128 bytes)", v);
      }
      if (!set) {
         return opt_error (error, "%s: '%s' is refused by libmongoc", name, v);
      }
      return true;
   }
   return opt_error (error, "unknown MongoDB connection option '%s' "
                            "(https://www.mongodb.com/docs/manual/reference/connection-string-options/)",
                     name);
}

/* ---- HOST ----------------------------------------------------------------------- */

/* A host name, [IPv6] (bracketed, as libmongoc wants it) or IPv4 address,
 * optionally ":port" (the port option wins): mongoc_uri_new_for_host_port,
 * after refusing the characters that would make it something else in a
 * URI. */
static mongoc_uri_t *
uri_for_host_name (const char *host, const bson_iter_t *port_it, bson_error_t *error)
{
   if (!*host || strpbrk (host, "/?@,#% ")) {
      opt_error (error, "'%s' is not a host name (a MongoDB URI starts with mongodb:// or mongodb+srv://)", host);
      return NULL;
   }
   char *name = bson_strdup (host);
   long port = 27017;
   char *colon = strrchr (name, ':');
   if (colon && (name[0] != '[' || colon > strchr (name, ']'))) {
      char *end;
      port = strtol (colon + 1, &end, 10);
      if (*end || colon[1] == '\0') {
         port = -1;
      }
      *colon = '\0';
   }
   if (port_it) {
      port = BSON_ITER_HOLDS_INT (port_it) ? (long) bson_iter_as_int64 (port_it)
             : BSON_ITER_HOLDS_UTF8 (port_it) ? strtol (bson_iter_utf8 (port_it, NULL), NULL, 10)
                                              : -1;
   }
   if (port < 1 || port > 65535) {
      opt_error (error, "the port of '%s' must be a number from 1 to 65535", host);
      bson_free (name);
      return NULL;
   }
   mongoc_uri_t *uri = mongoc_uri_new_for_host_port (name, (uint16_t) port);
   if (!uri) {
      opt_error (error, "'%s' is not a host name libmongoc accepts", host);
   }
   bson_free (name);
   return uri;
}

mongoc_uri_t *
dj_transport_uri (const char *host, const bson_t *options, bson_error_t *error)
{
   bson_iter_t it, port_it;
   bool has_port = options && bson_iter_init_find_case (&port_it, options, "port");
   mongoc_uri_t *uri;
   if (!strncmp (host, "mongodb://", 10) || !strncmp (host, "mongodb+srv://", 14)) {
      if (has_port) {
         opt_error (error, "port applies to a host name; a MongoDB URI says its own ports");
         return NULL;
      }
      uri = mongoc_uri_new_with_error (host, error);
   } else {
      uri = uri_for_host_name (host, has_port ? &port_it : NULL, error);
   }
   if (!uri || !options) {
      return uri;
   }
   /* the read preference's and write concern's parts go together, after
    * the loop, whatever order they came in */
   bson_iter_t rp0, rp1, rp2, wc0, wc1, wc2; /* (bson_iter_t's alignment forbids an array) */
   bson_iter_t *const rp[3] = {&rp0, &rp1, &rp2}, *const wc[3] = {&wc0, &wc1, &wc2};
   bson_iter_t *rp_p[3] = {NULL}, *wc_p[3] = {NULL};
   static const char *const rp_keys[3] = {MONGOC_URI_READPREFERENCE, MONGOC_URI_READPREFERENCETAGS,
                                          MONGOC_URI_MAXSTALENESSSECONDS};
   static const char *const wc_keys[3] = {MONGOC_URI_W, MONGOC_URI_WTIMEOUTMS, MONGOC_URI_JOURNAL};
   bool ok = bson_iter_init (&it, options);
   while (ok && bson_iter_next (&it)) {
      const char *key = bson_iter_key (&it);
      if (BSON_ITER_HOLDS_NULL (&it)) {
         continue; /* None: not set */
      }
      bool grouped = false;
      for (int i = 0; i < 3; i++) {
         if (!strcasecmp (key, rp_keys[i])) {
            *rp[i] = it, rp_p[i] = rp[i], grouped = true;
         }
         if (!strcasecmp (key, wc_keys[i])) {
            *wc[i] = it, wc_p[i] = wc[i], grouped = true;
         }
      }
      if (grouped || !strcasecmp (key, "port")) {
         continue;
      }
      if (!strcasecmp (key, "username") || !strcasecmp (key, "password")) {
         if (!BSON_ITER_HOLDS_UTF8 (&it)) {
            ok = opt_error (error, "%s must be a string", key);
         } else if (!(key[0] == 'u' || key[0] == 'U' ? mongoc_uri_set_username (uri, bson_iter_utf8 (&it, NULL))
                                                     : mongoc_uri_set_password (uri, bson_iter_utf8 (&it, NULL)))) {
            ok = opt_error (error, "%s is not valid UTF-8", key);
         }
      } else if (!strcasecmp (key, MONGOC_URI_READCONCERNLEVEL)) {
         ok = apply_read_concern (uri, &it, error);
      } else if (!strcasecmp (key, MONGOC_URI_COMPRESSORS)) {
         ok = apply_compressors (uri, &it, error);
      } else if (!strcasecmp (key, MONGOC_URI_AUTHMECHANISMPROPERTIES)) {
         bson_t props;
         const uint8_t *data;
         uint32_t len;
         if (!BSON_ITER_HOLDS_DOCUMENT (&it)) {
            ok = opt_error (error, "authMechanismProperties must be a dict");
         } else {
            bson_iter_document (&it, &len, &data);
            ok = bson_init_static (&props, data, len) && mongoc_uri_set_mechanism_properties (uri, &props);
            if (!ok) {
               opt_error (error, "authMechanismProperties: refused by libmongoc");
            }
         }
      } else {
         char lower[64];
         size_t n = strlen (key);
         if (n >= sizeof lower) {
            ok = opt_error (error, "unknown MongoDB connection option '%s'", key);
            break;
         }
         for (size_t i = 0; i <= n; i++) {
            lower[i] = (char) tolower ((unsigned char) key[i]);
         }
         ok = apply_typed (uri, lower, key, &it, error);
      }
   }
   if (ok && (rp_p[0] || rp_p[1] || rp_p[2])) {
      ok = apply_read_prefs (uri, rp_p[0], rp_p[1], rp_p[2], error);
   }
   if (ok && (wc_p[0] || wc_p[1] || wc_p[2])) {
      ok = apply_write_concern (uri, wc_p[0], wc_p[1], wc_p[2], error);
   }
   if (!ok) {
      mongoc_uri_destroy (uri);
      return NULL;
   }
   return uri;
}
