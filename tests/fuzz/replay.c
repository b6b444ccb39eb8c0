/*
 * replay -- runs the fuzz harness over a corpus (files or directories), as
 * SQLite's fuzzcheck does: crashes, sanitizer reports and leaks show up in
 * the test command's normal and ASan+UBSan builds without needing clang.
 *
 *   replay_TARGET DIR|FILE ...     prints "replay_TARGET: N passed, 0 failed"
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int count;

static void
one (const char *path)
{
   FILE *f = fopen (path, "rb");
   struct stat st;
   if (!f || fstat (fileno (f), &st) != 0) {
      fprintf (stderr, "replay: cannot open %s\n", path);
      exit (1);
   }
   /* the whole file: the wire corpus holds messages above 16 MiB */
   size_t size = (size_t) st.st_size;
   uint8_t *buf = malloc (size ? size : 1);
   size_t n = fread (buf, 1, size, f);
   fclose (f);
   LLVMFuzzerTestOneInput (buf, n);
   free (buf);
   count++;
}

int
main (int argc, char **argv)
{
   for (int i = 1; i < argc; i++) {
      struct stat st;
      if (stat (argv[i], &st) == 0 && S_ISDIR (st.st_mode)) {
         DIR *d = opendir (argv[i]);
         struct dirent *e;
         while (d && (e = readdir (d))) {
            if (e->d_name[0] != '.') {
               char p[4096];
               snprintf (p, sizeof p, "%s/%s", argv[i], e->d_name);
               one (p);
            }
         }
         if (d) {
            closedir (d);
         }
      } else {
         one (argv[i]);
      }
   }
   /* a crash or sanitizer report never gets here */
   const char *name = strrchr (argv[0], '/');
   printf ("%s: %d passed, 0 failed\n", name ? name + 1 : argv[0], count);
   return 0;
}
