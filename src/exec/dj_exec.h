/*
 * dj_exec.h -- runs compiled SQL (a dj_mql_t) over one transport.
 *
 * @mainpage
 * Between the compiler and a MongoDB (embedded or real) sits one seam, a
 * function that runs a command: dj_run_command_fn. Everything a statement
 * needs beyond its commands happens here, once, for every client (the
 * djongo-sql tool and the DB-API driver alike):
 *  - rows: cursor batches drained with getMore, each document turned into a
 *    row in SELECT order (a missing field is NULL) -- or kept as it came for
 *    a client that reads each one's cells itself (dj_exec_set_row_docs,
 *    dj_exec_row_cells: the DB-API driver);
 *  - write results: rowcount from the reply's n; per-document writeErrors
 *    become the statement's error (DuplicateKey 11000 ...), except those an
 *    INSERT OR IGNORE asked to skip;
 *  - IF [NOT] EXISTS: the server code the plan says to ignore;
 *  - integer auto-increment keys (AUTOINCREMENT columns): CREATE TABLE
 *    records the column in DJ_TABLES_COLLECTION ("__djongo_tables",
 *    documents {table, auto, seq, idkey}); an INSERT that
 *    leaves it out (or gives NULL) gets ids from a per-table counter there,
 *    advanced atomically by findAndModify to max(counter, largest id in the
 *    collection) + n -- so ids written by other tools are never reused; an
 *    explicit id advances the counter too, so an id once used is not given
 *    again after its row is deleted (SQLite's AUTOINCREMENT rule). A
 *    single-row INSERT outside a transaction takes its id from a block of
 *    ids the connection reserved (idblock.c: after four single ids, blocks
 *    of 2, 4 .. 64), so that it runs as its insert alone: ids stay unique
 *    and are never reused, but connections interleave theirs and a
 *    connection's unused ones are gaps, as with PostgreSQL's cached sequences.
 *    A table whose entry says idkey (an AUTOINCREMENT INTEGER PRIMARY KEY
 *    NOT NULL) gives each row without an _id its integer key as its _id,
 *    the table's _id index being record-keyed (src/engine/storage/ridkey.c);
 *    others an ObjectId. lastrowid is the last id given; RETURNING reads the
 *    inserted values;
 *  - INSERT with expressions in VALUES: the values computed first
 *    (dj_mql_t.values_from, dj_mql_set_values), so ids, NOT NULL and
 *    RETURNING see plain values;
 *  - INSERT ... ON CONFLICT (keys) DO UPDATE: the conflict target must be
 *    a unique index's columns (else SQLite's error, DJ_SQL_SYNTAX); the
 *    documents, ids given, become one upsert each (dj_mql_to_upserts);
 *    RETURNING gives an inserted row's values, an updated row as stored;
 *  - the embedded engine's own operators (dj_mql_t.engine_only) are
 *    refused by name unless dj_exec_set_engine_ops() said they run;
 *  - NOT NULL: the columns CREATE/ALTER TABLE declared NOT NULL (the
 *    entry's notnull list): an INSERT value or UPDATE SET that is NULL
 *    fails with DocumentValidationFailure (121, IntegrityError in the
 *    driver), "NOT NULL constraint failed: t.c"; a column an INSERT leaves
 *    out, or a value an expression computes, is not checked;
 *  - column DEFAULTs (defaults.c): an INSERT's document without a column
 *    whose constant DEFAULT the table's entry records (defaults {c: v})
 *    gets it, before generated columns are computed;
 *  - stored generated columns (generated.c): the table entry's generated
 *    {c: e} computed from the row's final values on every INSERT (the
 *    documents through a $documents pipeline: RETURNING sees them), UPDATE
 *    (stages after the SET, a pipeline update) and upsert; a statement
 *    that writes one itself fails (DJ_SQL_SYNTAX, SQLite's words);
 *  - CHECK constraints (constraint.c): ALTER TABLE ADD/DROP CONSTRAINT, ADD
 *    or DROP COLUMN rebuild the collection's validator from the CHECKs in
 *    the table's entry (collMod), after checking the existing rows (121
 *    when one breaks it); RENAME COLUMN rewrites the CHECKs and FOREIGN
 *    KEYs that name the column, and rebuilds on its new name the indexes
 *    that name it; DROP COLUMN drops those (rename_indexes.c);
 *  - FOREIGN KEYs (constraint.c): a write checks the keys of the rows it
 *    writes and the references to the rows it removes, with queries, at
 *    the statement's end (inside its atomic unit) or, DEFERRABLE INITIALLY
 *    DEFERRED inside a transaction, at COMMIT (which then fails, 121,
 *    "FOREIGN KEY constraint failed", and leaves the transaction open);
 *    dj_exec_set_fk_checks() turns the recording off;
 *  - transactions: BEGIN/COMMIT/ROLLBACK and SAVEPOINT/RELEASE/ROLLBACK TO
 *    go to the transport's dj_txn_fn; every write or DDL statement runs as
 *    one atomic unit (DJ_TXN_STMT_*), so a multi-row INSERT that meets a
 *    duplicate key leaves no rows, and an auto-increment counter moves only
 *    with its rows -- where the transport can do that (the embedded engine;
 *    on a MongoDB server only inside a transaction); SELECT ... FOR UPDATE
 *    inside a transaction is one too: its claim (dj_mql_t.for_update) and
 *    its read.
 *
 * @section threads_sec Threads
 * A dj_exec_t is one session: use it from one thread at a time (the DB-API
 * driver enforces that per connection). It holds no global state.
 *
 * @section memory_sec Memory
 * dj_exec_t owns its table cache; dj_result_t owns its rows
 * (dj_result_cleanup()).
 */
#ifndef DJ_EXEC_H
#define DJ_EXEC_H

#include <bson/bson.h>

#include "dj_compile.h"
#include "dj_error.h"

/**
 * Runs one MongoDB command. Must initialise @p reply in every case. Returns
 * false with @p error set when the command failed (a reply with ok: 0 is
 * such a failure: domain DJ_DOMAIN_SERVER, code = the server's code).
 */
typedef bool (*dj_run_command_fn) (void *ctx, const char *db, const bson_t *cmd, bson_t *reply, bson_error_t *error);

/** What a dj_txn_fn is asked to do. */
typedef enum {
   DJ_TXN_BEGIN,       /* BEGIN: error if a transaction is open */
   DJ_TXN_BEGIN_DEFERRED, /* BEGIN for a transaction whose first statement
                             reads: where the transport can, a snapshot that
                             takes the write lock at its first write, or
                             fails then with WriteConflict (112) if another
                             transaction committed since (dj_transport.h) */
   DJ_TXN_COMMIT,      /* COMMIT: no-op without a transaction (PEP 249 commit()) */
   DJ_TXN_ROLLBACK,    /* ROLLBACK: no-op without a transaction */
   DJ_TXN_SAVEPOINT,   /* SAVEPOINT name (outside a transaction: begins one, as SQLite) */
   DJ_TXN_RELEASE,     /* RELEASE [SAVEPOINT] name: keeps its writes, ends it and the later ones */
   DJ_TXN_ROLLBACK_TO, /* ROLLBACK TO [SAVEPOINT] name: undoes since it; it stays open */
   DJ_TXN_STMT_BEGIN,  /* the start of one statement's atomic unit */
   DJ_TXN_STMT_COMMIT, /* ... its successful end */
   DJ_TXN_STMT_ABORT,  /* ... its failed end (must not fail) */
   DJ_TXN_ACTIVE       /* returns whether a transaction is open (no error) */
} dj_txn_op_t;

/**
 * Carries out a transaction operation. @p name is the savepoint's, else NULL.
 * @return false with @p error set (a savepoint that does not exist, BEGIN
 *         inside a transaction, savepoints on a transport without them:
 *         DJ_DOMAIN_SQL/DJ_SQL_UNSUPPORTED).
 */
typedef bool (*dj_txn_fn) (void *ctx, dj_txn_op_t op, const char *name, bson_error_t *error);

typedef struct dj_exec dj_exec_t;

/**
 * A session on database @p db over @p run and @p txn (with @p ctx passed
 * through). @p txn may be NULL: transaction statements are then refused
 * (DJ_SQL_UNSUPPORTED) and statements are not atomic units.
 * @return a session the caller owns (dj_exec_destroy()).
 */
dj_exec_t *dj_exec_new (dj_run_command_fn run, dj_txn_fn txn, void *ctx, const char *db);

/** How the session treats tables CREATE TABLE never made (collections
 *  written by other tools, or models used without migrations). */
typedef enum {
   DJ_TABLES_PLAIN = 0,    /* as they are: plain collections, no auto-increment keys */
   DJ_TABLES_IMPLICIT = 1, /* an INSERT into such a table that RETURNING a column it does
                              not give records that column as the table's AUTOINCREMENT
                              key (Django's models without migrations get their ids) */
   DJ_TABLES_STRICT = 2    /* writes to such a table fail: NamespaceNotFound "no such table" */
} dj_tables_mode_t;

void dj_exec_set_tables_mode (dj_exec_t *x, dj_tables_mode_t mode);

/** Whether the transport runs the embedded engine's own expression
 *  operators ($_djongoMd5 ...: dj_mql_t.engine_only); false (the default)
 *  refuses a statement that needs one with DJ_SQL_UNSUPPORTED naming its
 *  SQL function, as a MongoDB server would only say "Unrecognized
 *  expression". */
void dj_exec_set_engine_ops (dj_exec_t *x, bool available);
/** Whether writes check FOREIGN KEYs (default true); off, they record no
 *  checks (Django's disable_constraint_checking(), for loaddata, which then
 *  calls check_constraints()). Checks already deferred to COMMIT stay. */
void dj_exec_set_fk_checks (dj_exec_t *x, bool on);
/** Whether the transport's engine checks an insert's djongoReferences
 *  (the embedded engine and djongo-server do; a MongoDB server refuses the
 *  field): an INSERT's FOREIGN KEYs are then checked by its insert command
 *  itself -- one command, over the wire one round trip -- rather than by a
 *  query after it (default false). The failure is the same either way. */
void dj_exec_set_insert_references (dj_exec_t *x, bool on);
/** Whether the engine also reads djongoReferences' deferred items: a
 *  DEFERRABLE INITIALLY DEFERRED key written inside a transaction goes in
 *  the insert too, which reports the values without their parent row
 *  instead of failing; only those keys are checked at COMMIT (default
 *  false: all of them are). Needs dj_exec_set_insert_references. */
void dj_exec_set_deferred_references (dj_exec_t *x, bool on);
/** Whether the engine reads findAndModify's djongoMax (the embedded
 *  engine and djongo-server: src/engine/commands/maxof.c): AUTOINCREMENT
 *  ids are then reserved by one command that reads the table's largest id
 *  itself, rather than by a find of it and then the counter's
 *  findAndModify (default false). */
void dj_exec_set_djongo_max (dj_exec_t *x, bool on);
/** How the commands a MongoDB transaction refuses are run while one may be
 *  open -- listIndexes (ON CONFLICT's target check) and explain (EXPLAIN:
 *  the plan over the committed data) -- since a server refuses them inside
 *  one and leaves it aborted; the transport's dj_transport_run_outside goes
 *  here (same ctx). Default: the dj_exec_new() run function. */
void dj_exec_set_outside_run (dj_exec_t *x, dj_run_command_fn run);

/** The catalog dj_plan_bind_catalog asks: the columns CREATE/ALTER TABLE
 *  recorded for each table (its entry), read through @p x's table cache.
 *  Valid while @p x lives. */
dj_catalog_t dj_exec_catalog (dj_exec_t *x);

/** Runs a transaction operation (the driver's commit()/rollback(); see dj_txn_op_t). */
bool dj_exec_txn (dj_exec_t *x, dj_txn_op_t op, const char *name, bson_error_t *error);
void dj_exec_destroy (dj_exec_t *x);
const char *dj_exec_db (const dj_exec_t *x);

typedef struct {
   bson_t *rows;       /* owned: an array of rows, each an array in column order;
                          or, when `docs`, of the cursor's documents, whose
                          cells dj_exec_row_cells() reads */
   int64_t rowcount;   /* rows returned, or documents written; -1 for DDL */
   int64_t lastrowid;  /* last auto-increment id an INSERT gave, if has_lastrowid */
   bool has_lastrowid;
   bool docs;          /* rows are documents (dj_exec_set_row_docs) */
   uint8_t *held;      /* owned, or NULL: the bytes of the cursor reply whose
                          batch `rows` is, read-only, when it came in one
                          batch of documents only (`docs`): viewed there,
                          not copied */
} dj_result_t;

/**
 * Whether a SELECT's result may hold the cursor's documents as they came
 * (dj_result_t.docs) rather than rows made of them: a client that reads
 * each document's cells once (the DB-API driver, building its tuples)
 * saves writing every row. Off by default (djongo-sql prints rows). A
 * SELECT * of a table without recorded columns, and EXPLAIN, still give rows.
 */
void dj_exec_set_row_docs (dj_exec_t *x, bool on);

/**
 * The cells of doc's row for m's columns, in order: fn (ctx, i, type,
 * value bytes) for column i -- the field at its path (usually the next
 * one: a projection keeps the columns' order), NULL when missing, a
 * DATETIME column's date and microseconds as one exact datetime. For a
 * SELECT * m (star), each field of doc. The bytes are valid during the call.
 */
typedef void (*dj_exec_cell_fn) (void *ctx, int i, uint8_t type, const uint8_t *val, uint32_t len);
void dj_exec_row_cells (const dj_mql_t *m, const bson_t *doc, dj_exec_cell_fn fn, void *ctx);

/** A column as dj_exec_row_in_order() looks for it, and its cell as a
 *  document holds it. */
typedef struct {
   uint64_t key;       /* the column's key and its 0, as the first bytes of a
                          word (for a key under 8 bytes; else 0) */
   uint64_t mask;      /* those bytes of the word (0: a longer key) */
   uint32_t klen;      /* the key's length */
   uint8_t type;       /* the cell: its element's type and value bytes */
   uint32_t len;       /*   (borrowed from the document) */
   const uint8_t *val;
} dj_exec_cell_t;

/**
 * Prepares cells[0 .. m->ncolumns) for dj_exec_row_in_order(): each
 * column's key as a word. False when m's rows are not read field by field
 * in order (SELECT *; a DATETIME column, whose remainder is another field).
 */
bool dj_exec_row_keys (const dj_mql_t *m, dj_exec_cell_t *cells);

/**
 * The cells of the document of @p len bytes at @p data when its first
 * fields are m's columns, in order, by name -- the layout the engine's
 * projection of a select list makes -- into cells[0 .. m->ncolumns)
 * (prepared by dj_exec_row_keys): what dj_exec_row_cells() hands out for
 * such a document, each key compared as a word where the document has
 * room (else byte by byte), with no search. False (cells partly written)
 * at the first field that is not the next column, or when the document
 * ends first: the caller reads that row with dj_exec_row_cells().
 */
bool dj_exec_row_in_order (const dj_mql_t *m, const uint8_t *data, uint32_t len, dj_exec_cell_t *cells);

/**
 * Runs a bound statement. @p m is modified (an INSERT gets its ids; an
 * UPDATE/DELETE with a subquery gets the matching _ids).
 * @param[out] out   initialised on success only; the caller owns it.
 * @param[out] error DJ_DOMAIN_SERVER (the server's code and message),
 *                   DJ_DOMAIN_SQL (DJ_SQL_UNSUPPORTED: transaction
 *                   statements, which the driver handles itself).
 */
bool dj_exec_run (dj_exec_t *x, dj_mql_t *m, dj_result_t *out, bson_error_t *error);

/** Parses, binds and runs @p sql (a convenience over dj_plan_* + dj_exec_run). */
bool dj_exec_sql (dj_exec_t *x, const char *sql, size_t len, const bson_value_t *params, int nparams, dj_result_t *out,
                  bson_error_t *error);

void dj_result_cleanup (dj_result_t *r);

/**
 * The type CREATE TABLE (or ALTER TABLE ADD COLUMN) declared for @p column
 * of @p table, upper-cased as written ("VARCHAR(20)"), for
 * cursor.description. May run one query (then cached per session).
 * @return an owned string (bson_free()), or NULL when unknown.
 */
char *dj_exec_column_type (dj_exec_t *x, const char *table, const char *column);

/**
 * A number that changes whenever the session forgets what it knew of
 * tables (after DDL, a rollback, a constraint rebuilt), or could not read
 * a table's entry for the compiler (exec/catalog.c): what was derived from
 * dj_exec_column_type() or dj_exec_catalog() under another number may be
 * stale.
 */
uint64_t dj_exec_tables_generation (const dj_exec_t *x);

#endif
