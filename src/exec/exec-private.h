/*
 * exec-private.h -- what exec.c, constraint.c, generated.c, defaults.c, rename_indexes.c, rows.c and catalog.c
 * (dj_catalog_t over the table entries) share (not installed).
 */
#ifndef DJ_EXEC_PRIVATE_H
#define DJ_EXEC_PRIVATE_H

#include "dj_buf.h"
#include "dj_exec.h"

/* A block of AUTOINCREMENT ids this connection reserved (idblock.c). */
typedef struct {
   char *table;          /* owned */
   int64_t next, last;   /* the ids not given yet: next..last (none when next > last) */
   int64_t taken;        /* reservations since the block was last dropped (the size grows with them) */
} exec_idblock_t;

/* catalog.c: the compiler's questions about a table's columns, answered
 * from an index of its entry kept until the entries are dropped */
typedef struct exec_catalog exec_catalog_t;
void exec_catalog_free (exec_catalog_t *cat);

struct dj_exec {
   dj_run_command_fn run;
   dj_run_command_fn outside_run; /* listIndexes, explain: outside the transaction (dj_exec_set_outside_run) */
   dj_txn_fn txn; /* may be NULL */
   dj_tables_mode_t tables_mode;
   bool engine_ops; /* the transport runs the embedded engine's $_djongo operators */
   void *ctx;
   char *db;     /* owned */
   bson_t *tables; /* owned cache {table: its tables-collection entry, or null}; cleared by DDL and rollbacks */
   bson_t *plain;  /* owned cache {collection: true} of collections CREATE TABLE did not make that exist;
                      cleared with `tables` */
   bson_t *refs;   /* owned cache {table: [{child, fk}...] of the FOREIGN KEYs referencing it};
                      cleared with `tables` */
   uint64_t tables_gen; /* counts the times `tables` was cleared, or an entry could not be read for the
                           catalog (catalog.c: unread): dj_exec_tables_generation */
   bson_t *fk_pending; /* owned: the deferred FOREIGN KEY checks of the open transaction
                          (an array of constraint.c's items), run at COMMIT, dropped at ROLLBACK */
   uint32_t fk_npending;
   bool fk_off;    /* dj_exec_set_fk_checks (false): writes record no FOREIGN KEY checks */
   bool fk_in_insert; /* dj_exec_set_insert_references: an INSERT's keys go in its insert command */
   bool fk_deferred_in_insert; /* dj_exec_set_deferred_references: its deferred keys in a transaction too */
   uint64_t fk_unsettled;      /* the statement's insert: bit i, its djongoUnsettled listed item i */
   bool max_in_reserve;        /* dj_exec_set_djongo_max: take_ids reads the table's largest id itself */
   exec_idblock_t *blocks; /* owned, nblocks: reserved AUTOINCREMENT ids per table (idblock.c) */
   size_t nblocks, capblocks;
   bool stmt_in_txn;  /* the running statement is inside a transaction */
   bool blocks_off;   /* the running statement takes its ids from the counter */
   bool block_used;   /* the running statement took an id from a block */
   bool row_docs;     /* dj_exec_set_row_docs */
   exec_catalog_t *catalog; /* owned, NULL until asked: catalog.c's answers per table */
};

/* exec.c */
/* Runs one command; write errors (reported with ok: 1) become the error,
 * except DuplicateKey ones when ignore_dups. */
bool exec_run_cmd (dj_exec_t *x, const char *db, const bson_t *cmd, bool ignore_dups, bson_t *reply, bson_error_t *error);
/* The field `key` of the table's entry in the tables collection (*it valid
 * until the next DDL or rollback); *found false when absent. */
/* catalog.c: whether `table` recorded `column` as DATETIME or TIMESTAMP */
bool exec_catalog_is_datetime (void *ctx, const char *table, const char *column);
bool exec_entry_field (dj_exec_t *x, const char *table, const char *key, bson_iter_t *it, bool *found, bson_error_t *error);
/* After DDL or a rollback: drops the cached entries. */
void exec_forget_tables (dj_exec_t *x);
/* The next document of an array iterator into *doc (static); false at the end. */
bool exec_next_document (bson_iter_t *arr, bson_t *doc);
/* Rewrites an INSERT's documents (commands[0]) one by one: fn appends the
 * new form of doc under key into arr, or fails with error set. */
typedef bool (*exec_doc_rewrite_fn) (const bson_t *doc, const char *key, bson_t *arr, void *ctx, bson_error_t *error);
bool exec_rewrite_documents (dj_mql_t *m, exec_doc_rewrite_fn fn, void *ctx, bson_error_t *error);

/* rows.c: documents turned into rows of a statement's columns */
/* A batch of rows being written: begun, each document added, ended (the
 * rows appended to `rows` at once; *nrows counts them and keys the next). */
typedef struct {
   bson_t *rows;   /* borrowed: the result's array */
   int64_t *nrows; /* borrowed */
   dj_buf_t b;     /* owned: the rows' elements as a document's bytes */
} exec_rows_t;

void exec_rows_begin (exec_rows_t *r, bson_t *rows, int64_t *nrows);
void exec_rows_add (exec_rows_t *r, const dj_mql_t *m, const bson_t *doc);
/* doc itself added (a result of documents: dj_result_t.docs). */
void exec_rows_add_doc (exec_rows_t *r, const bson_t *doc);
void exec_rows_end (exec_rows_t *r);

/* One document's row appended to rows (a batch of one). */
void exec_append_row (const dj_mql_t *m, const bson_t *doc, bson_t *rows, int64_t *nrows);

/* A cursor reply's batch (an array's bytes), where the reply holds it. */
typedef struct {
   const uint8_t *data;
   uint32_t len;
} exec_batch_t;

/* idblock.c: AUTOINCREMENT ids reserved in blocks per connection */
/* The next id of this connection's block for table; false when it has none
 * left, *want then the size of the block to reserve. */
bool exec_block_next (dj_exec_t *x, const char *table, int64_t *id, int64_t *want);
/* The block first..last, just reserved from the table's counter. */
void exec_block_set (dj_exec_t *x, const char *table, int64_t first, int64_t last);
/* Drops the unused ids of table's block (NULL: of every table's). */
void exec_blocks_forget (dj_exec_t *x, const char *table);
void exec_blocks_free (dj_exec_t *x);

/* notnull.c */
/* A row query's COUNT(c) over a joined table whose entry declares c NOT
 * NULL (a $lookup pipeline's leading $group) written {$sum: 1}. */
bool exec_counts_not_null (dj_exec_t *x, dj_mql_t *m, bson_error_t *error);

/* constraint.c */
/* ALTER TABLE: the validator rebuilt from the entry's checks (collMod),
 * after the existing rows were checked against it. */
bool exec_sync_checks (dj_exec_t *x, const char *table, bson_error_t *error);
/* RENAME COLUMN: the entry's checks, foreign keys and generated columns'
 * expressions follow the column. */
bool exec_rename_in_constraints (dj_exec_t *x, const char *table, const char *from, const char *to, bson_error_t *error);
/* `path` with its leading column `from` (the whole path or its first
 * part) named `to`, owned by the caller; NULL when it does not start so. */
char *exec_renamed_path (const char *path, const char *from, const char *to);
/* A query filter with the column renamed (keys naming it, $expr paths). */
void exec_rename_in_filter (const bson_t *in, const char *from, const char *to, bson_t *out);

/* rename_indexes.c: RENAME / DROP COLUMN's indexes. Before the statement,
 * the table's indexes that name the column `from` are dropped (*moved: a
 * new bson_t the caller hands to exec_indexes_after_rename, {name: {old:
 * spec, new: spec with from named to}}); after it the `which` ("new" or
 * "old") specs are created again, none for NULL; that call destroys moved. */
bool exec_indexes_before_rename (dj_exec_t *x, const char *table, const char *from, const char *to, bson_t **moved,
                                 bson_error_t *error);
bool exec_indexes_after_rename (dj_exec_t *x, const char *table, bson_t *moved, const char *which, bson_error_t *error);
/* Whether the entry has a CHECK or FOREIGN KEY named `name`. */
bool exec_entry_has_constraint (dj_exec_t *x, const char *table, const char *name, bool *has, bson_error_t *error);
/* FOREIGN KEYs: a write statement's checks collected into `items` (an
 * array, *n of them): before commands[i] (cmd) of an UPDATE or DELETE runs
 * (the referenced values its rows hold), after an INSERT or UPDATE ran (the
 * values it wrote); settled at the statement's end (checked, or kept for
 * COMMIT when deferred inside a transaction); the kept ones checked at
 * COMMIT, forgotten at ROLLBACK. */
bool exec_fk_before_write (dj_exec_t *x, const dj_mql_t *m, const bson_t *cmd, bson_t *items, uint32_t *n,
                           bson_error_t *error);
bool exec_fk_after_write (dj_exec_t *x, const dj_mql_t *m, bson_t *items, uint32_t *n, bson_error_t *error);
/* An INSERT's insert command `cmd` given the FOREIGN KEYs checked at the
 * statement's end as its djongoReferences, when the transport's engine
 * reads them (exec_fk_after_write then leaves those out). */
bool exec_fk_into_insert (dj_exec_t *x, const dj_mql_t *m, bson_t *cmd, bson_error_t *error);
/* A command's reply: an insert's djongoUnsettled into x->fk_unsettled. */
void exec_fk_insert_reply (dj_exec_t *x, const bson_t *reply);
bool exec_fk_settle (dj_exec_t *x, const bson_t *items, bool in_txn, bson_error_t *error);
bool exec_fk_commit (dj_exec_t *x, bson_error_t *error);
void exec_fk_forget (dj_exec_t *x);

/* generated.c */
/* INSERT / UPDATE of a table with stored generated columns: the insert's
 * documents computed (a $documents aggregate), each update's u followed
 * by the computing stages; a statement that writes one itself fails. */
bool exec_generated_before (dj_exec_t *x, dj_mql_t *m, bson_error_t *error);
/* INSERT ... ON CONFLICT DO UPDATE: the rows its keys name computed again
 * (`inserted`: the insert before dj_mql_to_upserts). */
bool exec_generated_after_upsert (dj_exec_t *x, const dj_mql_t *m, const bson_t *inserted, bson_error_t *error);

/* defaults.c */
/* INSERT: each document without a column that has a recorded DEFAULT gets
 * it (the entry's defaults {c: v}). */
bool exec_defaults_before (dj_exec_t *x, dj_mql_t *m, bson_error_t *error);

#endif
