/*
 * djongo-server -- the embedded engine over MongoDB's wire protocol.
 *
 *   djongo-server --dbpath DIR [--port 27017] [--bind 127.0.0.1] [--unix PATH] [--nosync]
 *                 [--txn-lifetime SECONDS] [--auth USERS-FILE] [--quiet]
 *                 [--max-conns N] [--auth-timeout S] [--idle-timeout S] [--message-timeout S]
 *                 [--max-incoming-mb N] [--ttl-monitor-sleep-secs S] [--oplogSize MB]
 *                 [--networkMessageCompressors snappy,zstd,zlib|disabled]
 *                 [--setParameter enableTestCommands=1]
 *                 [--tls-mode requireTLS|preferTLS|allowTLS|disabled] [--tls-cert-key-file PEM]
 *                 [--tls-ca-file PEM] [--tls-allow-connections-without-certificates]
 *   djongo-server --add-user USERS-FILE USER      (the password from stdin)
 *
 * --auth: clients authenticate with SCRAM-SHA-256 as a user of the file
 * (mongodb://user:password@127.0.0.1/?authMechanism=SCRAM-SHA-256, or
 * without the mechanism: the server says it is SCRAM-SHA-256).
 *
 * Binds loopback unless --bind says otherwise. Connect with any MongoDB
 * driver, mongosh or Compass: mongodb://127.0.0.1:27017/ (the server is a
 * one-member replica set named "djongo", so transactions work).
 * SIGINT/SIGTERM stop it cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dj_engine.h"
#include "dj_server.h"
#include "dj_transport.h"

static const char usage_text[] =
   "usage: djongo-server --dbpath DIR [--port N] [--bind ADDRESS] [--unix PATH] [--nosync]\n"
   "                     [--txn-lifetime SECONDS] [--auth USERS-FILE] [--quiet]\n"
   "                     [--max-conns N] [--auth-timeout S] [--idle-timeout S] [--message-timeout S]\n"
   "                     [--max-incoming-mb N] [--ttl-monitor-sleep-secs S]\n"
   "                     [--oplogSize MB] [--networkMessageCompressors LIST]\n"
   "                     [--tls-mode MODE] [--tls-cert-key-file PEM] [--tls-ca-file PEM]\n"
   "                     [--tls-allow-connections-without-certificates]\n"
   "       djongo-server --add-user USERS-FILE USER   (reads the password from stdin)\n"
   "       djongo-server --help | --version\n";

static const char help_text[] =
   "\n"
   "Serves a djongo data directory (the embedded engine) over MongoDB's wire\n"
   "protocol, so pymongo, libmongoc, mongosh and Compass can connect:\n"
   "mongodb://127.0.0.1:27017/\n"
   "\n"
   "  --dbpath DIR            the data directory (created if missing)\n"
   "  --port N                TCP port on the bind address (default 27017; 0: any free port,\n"
   "                          printed on start)\n"
   "  --bind ADDRESS          the address to listen on (default 127.0.0.1)\n"
   "  --unix PATH             also listen on a unix socket\n"
   "  --nosync                do not fsync each commit (faster; a machine crash may lose\n"
   "                          the last commits, never corrupt the data)\n"
   "  --txn-lifetime SECONDS  abort transactions open longer than this (default 60)\n"
   "  --auth USERS-FILE       require SCRAM-SHA-256 authentication (users from the file)\n"
   "  --max-conns N           connections open at once (default 1000); more are closed\n"
   "  --auth-timeout S        with --auth: close a connection not logged in that is silent\n"
   "                          for S seconds (default 20)\n"
   "  --idle-timeout S        close a connection silent for S seconds (default: never)\n"
   "  --message-timeout S     a message must arrive whole within S seconds of its first\n"
   "                          byte (default 30)\n"
   "  --max-incoming-mb N     memory the messages being received may hold, all connections\n"
   "                          together (default 1024); a message past it closes its connection\n"
   "  --ttl-monitor-sleep-secs S\n"
   "                          seconds between the passes that delete documents TTL indexes\n"
   "                          expire (default 60, as mongod's ttlMonitorSleepSecs)\n"
   "  --oplogSize MB          the change log change streams resume from keeps this much\n"
   "                          history (default 192); older changes are dropped, and a\n"
   "                          stream resuming before them fails (ChangeStreamHistoryLost)\n"
   "  --networkMessageCompressors LIST\n"
   "                          the wire compressors clients may use, as mongod's: names\n"
   "                          from snappy, zstd, zlib, noop separated by commas, or\n"
   "                          disabled (default snappy,zstd,zlib)\n"
   "  --quiet                 no log lines\n"
   "  --tls-cert-key-file PEM the server's certificate (then its chain) and private key:\n"
   "                          TCP clients connect with TLS (mongodb://...?tls=true)\n"
   "  --tls-ca-file PEM       CAs that must have signed the clients' certificates (clients\n"
   "                          then present one: tlsCertificateKeyFile)\n"
   "  --tls-allow-connections-without-certificates\n"
   "                          with --tls-ca-file: a client without a certificate is let in\n"
   "  --tls-mode MODE         as mongod's net.tls.mode: requireTLS (the default with a\n"
   "                          certificate: plain connections are closed), preferTLS and\n"
   "                          allowTLS (TLS and plain clients both served), disabled\n"
  "  --setParameter enableTestCommands=1\n"
  "                          test commands, as mongod's: configureFailPoint (the\n"
  "                          failCommand fail point drivers' test suites use)\n"
   "  --add-user USERS-FILE USER\n"
   "                          add or replace USER in the users file (created 0600); the\n"
   "                          file keeps SCRAM keys, never the password\n";

static int
usage (void)
{
   fputs (usage_text, stderr);
   return 2;
}

/* A count or a number of seconds: a positive integer, else usage. */
static int
positive (const char *text)
{
   char *end;
   long v = strtol (text, &end, 10);
   if (*end || v <= 0 || v > 1000000000) {
      fprintf (stderr, "djongo-server: '%s' is not a positive whole number\n", text);
      exit (usage ());
   }
   return (int) v;
}

/* --add-user FILE USER: the password is one line of stdin (not an
 * argument: arguments show in `ps`). */
static int
add_user (const char *file, const char *user)
{
   char pw[1024];
   if (!fgets (pw, sizeof pw, stdin)) {
      fprintf (stderr, "djongo-server: no password on stdin\n");
      return 1;
   }
   pw[strcspn (pw, "\r\n")] = '\0';
   bson_error_t error;
   bool ok = dj_server_add_user (file, user, pw, &error);
   memset (pw, 0, sizeof pw);
   if (!ok) {
      fprintf (stderr, "djongo-server: %s\n", error.message);
      return 1;
   }
   printf ("user %s added to %s\n", user, file);
   return 0;
}

int
main (int argc, char **argv)
{
   dj_server_options_t o = {0};
   /* the options that take a value: a path or a name as given, or a positive number */
   const struct {
      const char *flag;
      const char **text;
      int *number;
   } valued[] = {{"--dbpath", &o.dbpath, NULL},
                 {"--bind", &o.bind, NULL},
                 {"--unix", &o.unix_path, NULL},
                 {"--auth", &o.auth_file, NULL},
                 {"--tls-cert-key-file", &o.tls_cert_key_file, NULL},
                 {"--tls-ca-file", &o.tls_ca_file, NULL},
                 {"--networkMessageCompressors", &o.network_compressors, NULL},
                 {"--max-conns", NULL, &o.max_connections},
                 {"--auth-timeout", NULL, &o.auth_timeout_s},
                 {"--idle-timeout", NULL, &o.idle_timeout_s},
                 {"--max-incoming-mb", NULL, &o.max_incoming_mb},
                 {"--ttl-monitor-sleep-secs", NULL, &o.ttl_monitor_secs},
                 {"--oplogSize", NULL, &o.oplog_size_mb},
                 {"--message-timeout", NULL, &o.message_timeout_s}};
   const size_t nvalued = sizeof valued / sizeof valued[0];

   dj_transport_process_init (); /* before any thread */
   for (int i = 1; i < argc; i++) {
      const char *a = argv[i];
      bool more = i + 1 < argc;
      size_t k = 0;
      while (k < nvalued && strcmp (a, valued[k].flag)) {
         k++;
      }
      if (k < nvalued && more) {
         if (valued[k].text) {
            *valued[k].text = argv[++i];
         } else {
            *valued[k].number = positive (argv[++i]);
         }
      } else if (!strcmp (a, "--port") && more) {
         o.port = atoi (argv[++i]);
         if (o.port == 0) {
            o.port = DJ_SERVER_ANY_PORT; /* --port 0: any free port, printed below */
         }
      } else if (!strcmp (a, "--nosync")) {
         o.engine_flags |= DJ_ENGINE_NOSYNC;
      } else if (!strcmp (a, "--txn-lifetime") && more) {
         o.txn_lifetime_s = atoi (argv[++i]);
      } else if (!strcmp (a, "--add-user") && i + 2 < argc) {
         return add_user (argv[i + 1], argv[i + 2]);
      } else if (!strcmp (a, "--setParameter") && more) {
         /* mongod's spelling; the one parameter this server has */
         const char *p = argv[++i];
         if (!strcmp (p, "enableTestCommands=1") || !strcmp (p, "enableTestCommands=true")) {
            o.test_commands = true;
         } else if (strcmp (p, "enableTestCommands=0") && strcmp (p, "enableTestCommands=false")) {
            fprintf (stderr, "djongo-server: unknown --setParameter '%s' (only enableTestCommands=0|1)\n", p);
            return 2;
         }
      } else if (!strcmp (a, "--tls-allow-connections-without-certificates")) {
         o.tls_allow_no_cert = true;
      } else if (!strcmp (a, "--tls-mode") && more) {
         const char *m = argv[++i];
         o.tls_mode = dj_tls_mode_from_name (m);
         if (!o.tls_mode) {
            fprintf (stderr, "djongo-server: unknown --tls-mode '%s' (requireTLS, preferTLS, allowTLS or disabled)\n", m);
            return 2;
         }
      } else if (!strcmp (a, "--quiet")) {
         o.quiet = true;
      } else if (!strcmp (a, "--help") || !strcmp (a, "-h")) {
         printf ("%s%s", usage_text, help_text);
         return 0;
      } else if (!strcmp (a, "--version")) {
         printf ("djongo-server %s\n", DJONGO_VERSION);
         return 0;
      } else {
         return usage ();
      }
   }
   if (!o.dbpath) {
      return usage ();
   }
   bson_error_t error;
   dj_server_t *srv = dj_server_new (&o, &error);
   if (!srv) {
      fprintf (stderr, "djongo-server: %s\n", error.message);
      return 1;
   }
   printf ("djongo-server listening on port %d\n", dj_server_port (srv));
   fflush (stdout);
   dj_server_run (srv, true);
   dj_server_destroy (srv);
   return 0;
}
