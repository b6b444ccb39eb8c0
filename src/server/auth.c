/*
 * auth.c -- SCRAM-SHA-256 authentication (RFC 5802 with RFC 7677's hash),
 * as MongoDB speaks it: saslStart / saslContinue with the SCRAM messages
 * as the payload. https://www.mongodb.com/docs/manual/core/security-scram/
 *
 * The users file holds, per line, "user:iterations:salt:StoredKey:ServerKey"
 * (base64): what the server needs to verify a proof, never the password
 * (`djongo-server --add-user FILE USER` derives them). Users are not tied
 * to a database: any authSource names the same user.
 *
 * Passwords are limited to printable ASCII, where SASLprep (RFC 4013),
 * which MongoDB applies to SCRAM-SHA-256 passwords, changes nothing; other
 * passwords are refused when added rather than stored in a form a driver
 * would not reproduce.
 *
 * Failed logins are slowed, not locked out: a failure's reply waits
 * 100 ms, doubled for each failure in a row of that user (server-wide) or
 * of that connection, up to 5 s; a success resets the user's count. The
 * rightful user is never refused, and guessing costs seconds per try on
 * every connection slot an attacker holds.
 */
#include <sys/stat.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "server-private.h"

#define KEY_LEN 32        /* SHA-256 */
#define SALT_LEN 28       /* as mongod's SCRAM-SHA-256 credentials */
#define ITERATIONS 15000  /* mongod's scramSHA256IterationCount default */
#define MAX_USERS 1024
#define MAX_LINE 1024

typedef struct {
   char *name;
   int iterations;
   uint8_t salt[64];
   int salt_len;
   uint8_t stored_key[KEY_LEN], server_key[KEY_LEN];
   int fails; /* failed logins in a row (guarded by dj_users.mu) */
} user_t;

struct dj_users {
   user_t *v; /* owned, with each name */
   int n;
   char *path; /* owned: the users file */
   pthread_mutex_t mu; /* guards v and n (createUser, updateUser and dropUser change them) and each user's fails */
};

/* One connection's conversation (owned by the connection). */
struct dj_auth_conv {
   user_t user;         /* a copy of the user's keys (its name owned): the table may change meanwhile */
   char *first_bare;    /* owned: client-first-message-bare */
   char *server_first;  /* owned */
   char *nonce;         /* owned: client nonce + server nonce */
   bool skip_empty;     /* the driver asked to skip the empty last step */
   bool proved;         /* waiting for the empty last saslContinue */
};

/* ---- base64 (OpenSSL's, which pads as SCRAM wants) ---- */

static char *
b64_encode (const uint8_t *p, int n)
{
   char *out = bson_malloc ((size_t) (4 * ((n + 2) / 3) + 1));
   EVP_EncodeBlock ((unsigned char *) out, p, n);
   return out;
}

/* Decodes into out (at most cap bytes); returns the length or -1. */
static int
b64_decode (const char *s, size_t len, uint8_t *out, int cap)
{
   if (len == 0 || len % 4 || (int) (len / 4 * 3) > cap + 2) {
      return -1;
   }
   uint8_t *tmp = bson_malloc (len / 4 * 3 + 1);
   int n = EVP_DecodeBlock (tmp, (const unsigned char *) s, (int) len);
   if (n >= 0) {
      n -= (len >= 1 && s[len - 1] == '=') + (len >= 2 && s[len - 2] == '=');
   }
   if (n < 0 || n > cap) {
      bson_free (tmp);
      return -1;
   }
   memcpy (out, tmp, (size_t) n);
   bson_free (tmp);
   return n;
}

static void
hmac (const uint8_t *key, int key_len, const void *msg, size_t len, uint8_t out[KEY_LEN])
{
   unsigned int n = KEY_LEN;
   HMAC (EVP_sha256 (), key, key_len, msg, len, out, &n);
}

/* ---- the users file ---- */

static bool
parse_user (char *line, user_t *u)
{
   char *f[5];
   int nf = 0;
   for (char *p = line, *tok; nf < 5 && (tok = strsep (&p, ":")); ) {
      f[nf++] = tok;
   }
   if (nf != 5 || !*f[0]) {
      return false;
   }
   u->iterations = atoi (f[1]);
   u->salt_len = b64_decode (f[2], strlen (f[2]), u->salt, sizeof u->salt);
   return u->iterations >= 4096 && u->salt_len > 0 &&
          b64_decode (f[3], strlen (f[3]), u->stored_key, KEY_LEN) == KEY_LEN &&
          b64_decode (f[4], strlen (f[4]), u->server_key, KEY_LEN) == KEY_LEN && (u->name = bson_strdup (f[0]));
}

dj_users_t *
dj_users_load (const char *path, bson_error_t *error)
{
   FILE *f = fopen (path, "r");
   struct stat st;
   if (!f) {
      dj_err (error, DJ_BadValue, "cannot read the users file %s: %s", path,
                    strerror (errno));
      return NULL;
   }
   /* anyone who reads the keys can pose as this server to its users and
    * try passwords offline against them: like ssh's private keys, the file
    * must be the owner's alone */
   if (fstat (fileno (f), &st) == 0 && (st.st_mode & 077)) {
      dj_err (error, DJ_BadValue, "the users file %s can be read or written by other users (mode %03o); it must be "
                                  "the owner's only: chmod 600 %s", path, (unsigned) (st.st_mode & 0777), path);
      fclose (f);
      return NULL;
   }
   dj_users_t *us = bson_malloc0 (sizeof *us);
   us->v = bson_malloc0 (sizeof (user_t) * MAX_USERS);
   us->path = bson_strdup (path);
   pthread_mutex_init (&us->mu, NULL);
   char line[MAX_LINE];
   int lineno = 0;
   bool ok = true;
   while (ok && fgets (line, sizeof line, f)) {
      lineno++;
      line[strcspn (line, "\r\n")] = '\0';
      if (!*line || *line == '#') {
         continue;
      }
      if (us->n == MAX_USERS || !parse_user (line, &us->v[us->n])) {
         dj_err (error, DJ_BadValue, "users file %s, line %d: %s", path, lineno,
                       us->n == MAX_USERS ? "too many users" : "not user:iterations:salt:storedKey:serverKey");
         ok = false;
      } else {
         us->n++;
      }
   }
   fclose (f);
   if (!ok) {
      dj_users_destroy (us);
      return NULL;
   }
   return us;
}

void
dj_users_destroy (dj_users_t *us)
{
   if (!us) {
      return;
   }
   for (int i = 0; i < us->n; i++) {
      bson_free (us->v[i].name);
   }
   bson_free (us->v);
   bson_free (us->path);
   pthread_mutex_destroy (&us->mu);
   bson_free (us);
}

/* Caller holds us->mu. */
static user_t *
find_user (dj_users_t *us, const char *name)
{
   for (int i = 0; us && i < us->n; i++) {
      if (!strcmp (us->v[i].name, name)) {
         return &us->v[i];
      }
   }
   return NULL;
}

bool
dj_users_has (dj_users_t *us, const char *name)
{
   pthread_mutex_lock (&us->mu);
   bool has = find_user (us, name) != NULL;
   pthread_mutex_unlock (&us->mu);
   return has;
}

/* The user's keys, copied (out->name owned by the caller), or false. */
static bool
copy_user (dj_users_t *us, const char *name, user_t *out)
{
   pthread_mutex_lock (&us->mu);
   user_t *u = find_user (us, name);
   if (u) {
      *out = *u;
      out->name = bson_strdup (u->name);
   }
   pthread_mutex_unlock (&us->mu);
   return u != NULL;
}

/* Reads the users file again (after createUser, updateUser, dropUser) and
 * takes its table: conversations hold copies, so nothing points into the
 * old one. Failure counts of users still there are kept. */
static bool
reload_users (dj_users_t *us, bson_error_t *error)
{
   dj_users_t *fresh = dj_users_load (us->path, error);
   if (!fresh) {
      return false;
   }
   pthread_mutex_lock (&us->mu);
   for (int i = 0; i < fresh->n; i++) {
      user_t *old = find_user (us, fresh->v[i].name);
      fresh->v[i].fails = old ? old->fails : 0;
   }
   user_t *v = us->v;
   int n = us->n;
   us->v = fresh->v;
   us->n = fresh->n;
   fresh->v = v;
   fresh->n = n;
   pthread_mutex_unlock (&us->mu);
   dj_users_destroy (fresh); /* the old table */
   return true;
}

static bool rewrite_users (const char *path, const char *name, const char *entry, bson_error_t *error);

bool
dj_users_add (const char *path, const char *name, const char *password, bson_error_t *error)
{
   if (!*name || strchr (name, ':') || strchr (name, '\n')) {
      return dj_err (error, DJ_BadValue, "a user name may not be empty or hold ':'");
   }
   for (const char *p = password; *p; p++) {
      if (*p < 0x20 || *p > 0x7e) {
         return dj_err (error, DJ_BadValue,
                              "passwords are printable ASCII (where SASLprep changes nothing)");
      }
   }
   if (!*password) {
      return dj_err (error, DJ_BadValue, "an empty password");
   }
   uint8_t salt[SALT_LEN], salted[KEY_LEN], client_key[KEY_LEN], stored[KEY_LEN], server_key[KEY_LEN];
   if (RAND_bytes (salt, sizeof salt) != 1 ||
       PKCS5_PBKDF2_HMAC (password, (int) strlen (password), salt, sizeof salt, ITERATIONS, EVP_sha256 (), KEY_LEN,
                          salted) != 1) {
      return dj_err (error, DJ_BadValue, "OpenSSL could not derive the keys");
   }
   hmac (salted, KEY_LEN, "Client Key", 10, client_key);
   SHA256 (client_key, KEY_LEN, stored);
   hmac (salted, KEY_LEN, "Server Key", 10, server_key);
   OPENSSL_cleanse (salted, sizeof salted);
   char *s = b64_encode (salt, sizeof salt), *sk = b64_encode (stored, KEY_LEN), *vk = b64_encode (server_key, KEY_LEN);
   char *entry = bson_strdup_printf ("%s:%d:%s:%s:%s\n", name, ITERATIONS, s, sk, vk);
   DJ_FREE (s, sk, vk);
   bool ok = rewrite_users (path, name, entry, error);
   bson_free (entry);
   return ok;
}

/* Rewrites the users file without name's line, plus `entry` (a line, or
 * NULL to drop the user): a new file renamed over the old one, so a crash
 * leaves one or the other. */
static bool
rewrite_users (const char *path, const char *name, const char *entry, bson_error_t *error)
{
   bson_string_t *text = bson_string_new (NULL);
   FILE *in = fopen (path, "r");
   if (in) {
      char line[MAX_LINE];
      size_t nlen = strlen (name);
      while (fgets (line, sizeof line, in)) {
         if (!(strncmp (line, name, nlen) == 0 && line[nlen] == ':')) {
            bson_string_append (text, line);
         }
      }
      fclose (in);
   }
   if (entry) {
      bson_string_append (text, entry);
   }
   char *tmp = bson_strdup_printf ("%s.tmp", path);
   int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600); /* keys: readable by the owner only */
   bool ok = fd >= 0 && write (fd, text->str, text->len) == (ssize_t) text->len && fsync (fd) == 0;
   if (fd >= 0) {
      ok = close (fd) == 0 && ok;
   }
   ok = ok && rename (tmp, path) == 0;
   if (!ok) {
      dj_err (error, DJ_BadValue, "cannot write %s: %s", path, strerror (errno));
      unlink (tmp);
   }
   bson_free (tmp);
   bson_string_free (text, true);
   return ok;
}

bool
dj_server_add_user (const char *path, const char *user, const char *password, bson_error_t *error)
{
   return dj_users_add (path, user, password, error);
}

/* ---- the conversation ---- */

void
dj_auth_conv_free (dj_auth_conv_t *cv)
{
   if (cv) {
      DJ_FREE (cv->user.name, cv->first_bare, cv->server_first, cv->nonce, cv);
   }
}

static void
fail (bson_t *reply, int code, const char *name, const char *msg)
{
   BSON_APPEND_DOUBLE (reply, "ok", 0.0);
   BSON_APPEND_UTF8 (reply, "errmsg", msg);
   BSON_APPEND_INT32 (reply, "code", code);
   BSON_APPEND_UTF8 (reply, "codeName", name);
}

/* Counts a failure (of user u, if known) and waits before the reply says
 * so: 100 ms << (failures in a row - 1), at most 5 s. */
static void
slow_down (struct dj_server *srv, dj_conn_t *c, const char *user)
{
   int n = ++c->auth_fails;
   if (user) {
      pthread_mutex_lock (&srv->users->mu);
      user_t *w = find_user (srv->users, user);
      if (w && ++w->fails > n) {
         n = w->fails;
      }
      pthread_mutex_unlock (&srv->users->mu);
   }
   int64_t ms = n > 6 ? 5000 : 100LL << (n - 1);
   if (ms > 5000) {
      ms = 5000;
   }
   struct timespec ts = {(time_t) (ms / 1000), (long) (ms % 1000) * 1000000L};
   while (nanosleep (&ts, &ts) != 0 && errno == EINTR) {
   }
}

static void
auth_failed (struct dj_server *srv, dj_conn_t *c, bson_t *reply)
{
   slow_down (srv, c, c->conv ? c->conv->user.name : NULL);
   dj_auth_conv_free (c->conv);
   c->conv = NULL;
   fail (reply, 18, "AuthenticationFailed", "Authentication failed.");
}

/* A login succeeded: the user's count starts again. */
static void
logged_in (struct dj_server *srv, dj_conn_t *c, const char *user)
{
   pthread_mutex_lock (&srv->users->mu);
   user_t *w = find_user (srv->users, user);
   if (w) {
      w->fails = 0;
   }
   pthread_mutex_unlock (&srv->users->mu);
   c->auth_fails = 0;
   bson_free (c->user); /* a connection may authenticate again */
   c->user = bson_strdup (user);
}

/* The payload as text (BinData or a string; at most 4 KiB). */
static bool
payload (const bson_t *cmd, char *out, size_t cap)
{
   bson_iter_t it;
   const uint8_t *data = NULL;
   uint32_t n = 0;
   if (!bson_iter_init_find (&it, cmd, "payload")) {
      return false;
   }
   if (BSON_ITER_HOLDS_BINARY (&it)) {
      bson_subtype_t st;
      bson_iter_binary (&it, &st, &n, &data);
   } else if (BSON_ITER_HOLDS_UTF8 (&it)) {
      data = (const uint8_t *) bson_iter_utf8 (&it, &n);
   } else {
      return false;
   }
   if (n >= cap || memchr (data, '\0', n)) {
      return false;
   }
   memcpy (out, data, n);
   out[n] = '\0';
   return true;
}

static void
reply_payload (bson_t *reply, const char *text, bool done)
{
   BSON_APPEND_INT32 (reply, "conversationId", 1);
   BSON_APPEND_BOOL (reply, "done", done);
   bson_append_binary (reply, "payload", 7, BSON_SUBTYPE_BINARY, (const uint8_t *) text, (uint32_t) strlen (text));
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
}

/* "n=name" with SCRAM's escapes (=2C ",", =3D "="); false if malformed. */
static bool
unescape_name (const char *s, size_t n, char *out, size_t cap)
{
   size_t o = 0;
   for (size_t i = 0; i < n; i++) {
      if (o + 1 >= cap) {
         return false;
      }
      if (s[i] == '=') {
         if (n - i < 3) {
            return false;
         }
         if (!strncmp (s + i, "=2C", 3)) {
            out[o++] = ',';
         } else if (!strncmp (s + i, "=3D", 3)) {
            out[o++] = '=';
         } else {
            return false;
         }
         i += 2;
      } else {
         out[o++] = s[i];
      }
   }
   out[o] = '\0';
   return true;
}

static void
sasl_start (struct dj_server *srv, dj_conn_t *c, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, opt;
   char msg[4096], name[256];
   dj_auth_conv_free (c->conv); /* a new saslStart abandons any conversation before it */
   c->conv = NULL;
   if (!bson_iter_init_find (&it, cmd, "mechanism") || !BSON_ITER_HOLDS_UTF8 (&it) ||
       strcmp (bson_iter_utf8 (&it, NULL), "SCRAM-SHA-256")) {
      fail (reply, 2, "BadValue", "Unsupported mechanism: djongo-server offers SCRAM-SHA-256");
      return;
   }
   /* client-first-message: gs2 header "n,," (no channel binding), then the bare part "n=user,r=nonce" */
   if (!payload (cmd, msg, sizeof msg) || strncmp (msg, "n,,", 3)) {
      auth_failed (srv, c, reply);
      return;
   }
   const char *bare = msg + 3;
   const char *r = strstr (bare, ",r=");
   if (strncmp (bare, "n=", 2) || !r || !unescape_name (bare + 2, (size_t) (r - bare - 2), name, sizeof name) ||
       strlen (r + 3) < 8 || strchr (r + 3, ',')) {
      auth_failed (srv, c, reply);
      return;
   }
   user_t found;
   uint8_t snonce[18];
   if (!copy_user (srv->users, name, &found)) {
      auth_failed (srv, c, reply); /* the same answer for an unknown user as for a wrong password */
      return;
   }
   if (RAND_bytes (snonce, sizeof snonce) != 1) {
      bson_free (found.name);
      auth_failed (srv, c, reply);
      return;
   }
   dj_auth_conv_free (c->conv);
   c->conv = bson_malloc0 (sizeof *c->conv);
   c->conv->user = found; /* takes found.name */
   const user_t *u = &c->conv->user;
   c->conv->first_bare = bson_strdup (bare);
   char *sn = b64_encode (snonce, sizeof snonce), *salt = b64_encode (u->salt, u->salt_len);
   c->conv->nonce = bson_strdup_printf ("%s%s", r + 3, sn);
   c->conv->server_first = bson_strdup_printf ("r=%s,s=%s,i=%d", c->conv->nonce, salt, u->iterations);
   bson_free (sn);
   bson_free (salt);
   if (bson_iter_init_find (&it, cmd, "options") && BSON_ITER_HOLDS_DOCUMENT (&it) && bson_iter_recurse (&it, &opt) &&
       bson_iter_find (&opt, "skipEmptyExchange")) {
      c->conv->skip_empty = bson_iter_as_bool (&opt);
   }
   reply_payload (reply, c->conv->server_first, false);
}

static void
sasl_continue (struct dj_server *srv, dj_conn_t *c, const bson_t *cmd, bson_t *reply)
{
   char msg[4096];
   dj_auth_conv_t *cv = c->conv;
   if (!cv || !payload (cmd, msg, sizeof msg)) {
      auth_failed (srv, c, reply);
      return;
   }
   if (cv->proved) { /* the empty last step of a driver that did not skip it */
      logged_in (srv, c, cv->user.name);
      dj_auth_conv_free (cv);
      c->conv = NULL;
      reply_payload (reply, "", true);
      return;
   }
   /* client-final-message: "c=biws,r=<nonce>,p=<proof>" (biws: base64 of "n,,") */
   char *p = strstr (msg, ",p=");
   if (strncmp (msg, "c=biws,r=", 9) || !p || strncmp (msg + 9, cv->nonce, strlen (cv->nonce)) ||
       msg + 9 + strlen (cv->nonce) != p) {
      auth_failed (srv, c, reply);
      return;
   }
   uint8_t proof[KEY_LEN], sig[KEY_LEN], client_key[KEY_LEN], stored[KEY_LEN], server_sig[KEY_LEN];
   if (b64_decode (p + 3, strlen (p + 3), proof, KEY_LEN) != KEY_LEN) {
      auth_failed (srv, c, reply);
      return;
   }
   *p = '\0'; /* msg is now client-final-message-without-proof */
   char *auth_msg = bson_strdup_printf ("%s,%s,%s", cv->first_bare, cv->server_first, msg);
   hmac (cv->user.stored_key, KEY_LEN, auth_msg, strlen (auth_msg), sig);
   for (int i = 0; i < KEY_LEN; i++) {
      client_key[i] = proof[i] ^ sig[i];
   }
   SHA256 (client_key, KEY_LEN, stored);
   bool good = CRYPTO_memcmp (stored, cv->user.stored_key, KEY_LEN) == 0;
   hmac (cv->user.server_key, KEY_LEN, auth_msg, strlen (auth_msg), server_sig);
   bson_free (auth_msg);
   if (!good) {
      auth_failed (srv, c, reply);
      return;
   }
   char *v = b64_encode (server_sig, KEY_LEN);
   char *final = bson_strdup_printf ("v=%s", v);
   bson_free (v);
   if (cv->skip_empty) {
      logged_in (srv, c, cv->user.name);
      dj_auth_conv_free (cv);
      c->conv = NULL;
      reply_payload (reply, final, true);
   } else {
      cv->proved = true;
      reply_payload (reply, final, false);
   }
   bson_free (final);
}

bool
dj_auth_command (struct dj_server *srv, dj_conn_t *c, const char *name, const bson_t *cmd, bson_t *reply)
{
   if (!strcmp (name, "saslStart")) {
      bson_init (reply);
      if (!srv->users) {
         fail (reply, 2, "BadValue", "authentication is not enabled (djongo-server --auth FILE)");
      } else {
         sasl_start (srv, c, cmd, reply);
      }
      return true;
   }
   if (!strcmp (name, "saslContinue")) {
      bson_init (reply);
      sasl_continue (srv, c, cmd, reply);
      return true;
   }
   if (!strcmp (name, "logout")) {
      bson_init (reply);
      bson_free (c->user);
      c->user = NULL;
      BSON_APPEND_DOUBLE (reply, "ok", 1.0);
      return true;
   }
   if (srv->users && !c->user && !dj_auth_exempt (name)) {
      /* https://www.mongodb.com/docs/manual/core/authentication/ */
      char msg[160];
      bson_init (reply);
      snprintf (msg, sizeof msg, "Command %s requires authentication", name);
      fail (reply, 13, "Unauthorized", msg);
      return true;
   }
   return false;
}

/* ---- user management: createUser, updateUser, dropUser, usersInfo ----
 * The users are the users file's (SCRAM-SHA-256 keys, one line each); a
 * change rewrites the file and takes its new table. djongo-server has no
 * roles: an authenticated user may manage users, and `roles` is accepted
 * and not kept (usersInfo shows none).
 * https://www.mongodb.com/docs/manual/reference/command/createUser/ */

static const char *
string_field (const bson_t *cmd, const char *key)
{
   bson_iter_t it;
   return bson_iter_init_find (&it, cmd, key) && BSON_ITER_HOLDS_UTF8 (&it) ? bson_iter_utf8 (&it, NULL) : NULL;
}

static void
user_doc (bson_t *arr, int i, const char *db, const char *user)
{
   bson_t d, roles, mechs;
   char kb[16];
   const char *key;
   bson_uint32_to_string ((uint32_t) i, &key, kb, sizeof kb);
   BSON_APPEND_DOCUMENT_BEGIN (arr, key, &d);
   char *id = bson_strdup_printf ("%s.%s", db, user);
   BSON_APPEND_UTF8 (&d, "_id", id);
   bson_free (id);
   BSON_APPEND_UTF8 (&d, "user", user);
   BSON_APPEND_UTF8 (&d, "db", db);
   BSON_APPEND_ARRAY_BEGIN (&d, "roles", &roles);
   bson_append_array_end (&d, &roles);
   BSON_APPEND_ARRAY_BEGIN (&d, "mechanisms", &mechs);
   BSON_APPEND_UTF8 (&mechs, "0", "SCRAM-SHA-256");
   bson_append_array_end (&d, &mechs);
   bson_append_document_end (arr, &d);
}

/* usersInfo: 1 (every user), a name, {user, db}, or an array of those */
static void
users_info (struct dj_server *srv, const char *db, const bson_t *cmd, bson_t *reply)
{
   bson_iter_t it, a;
   bson_t arr;
   int n = 0;
   bson_iter_init_find (&it, cmd, "usersInfo");
   BSON_APPEND_ARRAY_BEGIN (reply, "users", &arr);
   pthread_mutex_lock (&srv->users->mu);
   if (BSON_ITER_HOLDS_NUMBER (&it)) {
      for (int i = 0; i < srv->users->n; i++) {
         user_doc (&arr, n++, db, srv->users->v[i].name);
      }
   } else {
      bool many = BSON_ITER_HOLDS_ARRAY (&it);
      if (many) {
         bson_iter_recurse (&it, &a);
      }
      while (many ? bson_iter_next (&a) : true) {
         bson_iter_t *one = many ? &a : &it, f;
         const char *name = NULL;
         if (BSON_ITER_HOLDS_UTF8 (one)) {
            name = bson_iter_utf8 (one, NULL);
         } else if (BSON_ITER_HOLDS_DOCUMENT (one) && bson_iter_recurse (one, &f) && bson_iter_find (&f, "user") &&
                    BSON_ITER_HOLDS_UTF8 (&f)) {
            name = bson_iter_utf8 (&f, NULL);
         }
         if (name && find_user (srv->users, name)) {
            user_doc (&arr, n++, db, name);
         }
         if (!many) {
            break;
         }
      }
   }
   pthread_mutex_unlock (&srv->users->mu);
   bson_append_array_end (reply, &arr);
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
}

bool
dj_users_command (struct dj_server *srv, const char *db, const char *name, const bson_t *cmd, bson_t *reply)
{
   bool create = !strcmp (name, "createUser"), update = !strcmp (name, "updateUser"), drop = !strcmp (name, "dropUser");
   if (!create && !update && !drop && strcmp (name, "usersInfo")) {
      return false;
   }
   bson_init (reply);
   if (!srv->users && (create || !strcmp (name, "usersInfo"))) {
      /* without --auth there are no users: usersInfo lists none, as a
       * mongod that has none does */
      if (!create) {
         bson_t none;
         BSON_APPEND_ARRAY_BEGIN (reply, "users", &none);
         bson_append_array_end (reply, &none);
         BSON_APPEND_DOUBLE (reply, "ok", 1.0);
         return true;
      }
      fail (reply, 2, "BadValue", "users live in the users file: start djongo-server with --auth USERS-FILE");
      return true;
   }
   if (!srv->users) { /* updateUser / dropUser: a user that is not there */
      char none[300];
      const char *who = string_field (cmd, name);
      snprintf (none, sizeof none, "Could not find user \"%s\" for db \"%s\"", who ? who : "", db);
      fail (reply, 11, "UserNotFound", none);
      return true;
   }
   if (!create && !update && !drop) {
      users_info (srv, db, cmd, reply);
      return true;
   }
   const char *user = string_field (cmd, name), *pwd = string_field (cmd, "pwd");
   bson_error_t error = {0};
   char msg[300];
   if (!user || (create && !pwd) || (update && !pwd)) {
      fail (reply, 9, "FailedToParse", create || update ? "a user name and a pwd (strings) are needed"
                                                          : "a user name (a string) is needed");
      return true;
   }
   bool exists = dj_users_has (srv->users, user);
   if (create && exists) {
      snprintf (msg, sizeof msg, "User \"%s@%s\" already exists", user, db);
      fail (reply, 51003, "Location51003", msg);
      return true;
   }
   if (!create && !exists) {
      snprintf (msg, sizeof msg, "Could not find user \"%s\" for db \"%s\"", user, db);
      fail (reply, 11, "UserNotFound", msg);
      return true;
   }
   bool ok = drop ? rewrite_users (srv->users->path, user, NULL, &error)
                  : dj_users_add (srv->users->path, user, pwd, &error);
   if (!ok || !reload_users (srv->users, &error)) {
      fail (reply, 2, "BadValue", error.message);
      return true;
   }
   BSON_APPEND_DOUBLE (reply, "ok", 1.0);
   return true;
}

bool
dj_auth_exempt (const char *name)
{
   static const char *const open_cmds[] = {"hello", "isMaster", "ismaster", "ping", "buildInfo", "buildinfo",
                                           "endSessions", "saslStart", "saslContinue", "logout", NULL};
   for (int i = 0; open_cmds[i]; i++) {
      if (!strcmp (name, open_cmds[i])) {
         return true;
      }
   }
   return false;
}
