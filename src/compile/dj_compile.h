/*
 * dj_compile.h -- SQL statement -> MongoDB commands.
 *
 * @mainpage
 * A dj_plan_t is a parsed SQL statement ready to be bound: dj_plan_new()
 * parses once; dj_plan_bind() takes the parameter values (BSON values, never
 * text: a parameter is always a value, it can never become an operator or a
 * field name) and produces the MongoDB command(s) to run, in a dj_mql_t.
 * The driver caches plans by SQL text and binds them again with new values;
 * a SELECT whose commands take its values as they are is compiled once per
 * parameter types and connection (dj_plan_bind_kept, bound.c).
 *
 * Translation rules (the "why" is beside each rule in the .c files):
 *  - the cheapest correct command: `find` for a plain filter/sort/limit/
 *    projection on one table, `aggregate` otherwise ($lookup+$unwind for
 *    joins, $group for GROUP BY and aggregates, $facet so that an aggregate
 *    without GROUP BY returns its one row on an empty table); `insert`
 *    (after an aggregate over $documents that computes expressions in
 *    VALUES; as one upsert per row for ON CONFLICT (keys) DO UPDATE),
 *    `update` (a pipeline update when a SET value is an expression),
 *    `delete`; DDL -> create / drop / createIndexes / dropIndexes / update
 *    (backfill, $unset, $rename) / renameCollection.
 *  - SQL's three-valued logic is kept exactly: every predicate is compiled
 *    into the filter of the rows where it is TRUE and, under NOT, of the rows
 *    where it is FALSE; NULL (or a missing field) is neither. So
 *    `a <> 1` does not match a NULL `a`, `NOT (a = 1)` neither, and
 *    `a NOT IN (1, NULL)` matches nothing, as in SQL.
 *  - Columns are document fields of the same name; a join's columns live
 *    under "__dj_<alias>" while the pipeline runs. JOIN ... ON looks up by
 *    its first column equality (localField/foreignField); an INNER join's
 *    other ON conditions filter the joined rows, a LEFT join's (and those
 *    of an ON without such an equality) go into the $lookup's pipeline,
 *    the earlier tables' columns as `let` variables.
 *  - A correlated subquery reads an outer column through a `let` variable
 *    of the $lookup right inside the query that has the column, at any
 *    depth (nested $lookup pipelines see the variables of those around).
 *  - `*` and `t.*` that a find cannot serve (joins, expressions beside
 *    them) project each table's row document and come out as star columns
 *    (dj_mql_column_t.star_table) that the executor expands into the
 *    table's recorded columns. Result columns of an
 *    aggregate are "c0", "c1", ... in SELECT order; of a find, the field
 *    names. dj_mql_t.columns says which, so rows come out in SELECT order.
 *  - SELECT ... FOR UPDATE: an update that writes the matched rows without
 *    changing them (write.c, cx_compile_claim), then the read.
 *  - SQL functions MongoDB has no operator for (MD5, SHA*, CHR, ASCII)
 *    use the embedded engine's own $_djongo... operators and mark the
 *    statement (dj_mql_t.engine_only) so that a MongoDB server refuses it
 *    by name before it runs.
 *  - Anything that parses but has no faithful translation fails with
 *    DJ_SQL_UNSUPPORTED naming the construct and its byte offset.
 *
 * @section memory_sec Memory
 * A plan owns its parsed statement; a dj_mql_t owns its commands and column
 * arrays (dj_mql_cleanup()). Plans are immutable after dj_plan_new(): one plan
 * may be bound from several threads at once.
 */
#ifndef DJ_COMPILE_H
#define DJ_COMPILE_H

#include <bson/bson.h>

#include "dj_error.h"
#include "dj_sql.h"

typedef struct dj_plan dj_plan_t;

/* The collection where CREATE TABLE records each table's columns, in order,
 * and its AUTOINCREMENT column with its counter: {table, columns, types,
 * notnull, auto, seq[, checks, fks]} (auto: null when there is none;
 * dj_exec.h says how INSERTs use it; checks: [{name, columns, validator}],
 * fks: [{name, columns, table, to, deferred}], ddl.c says what they are).
 * ALTER TABLE keeps it up to date. */
#define DJ_TABLES_COLLECTION "__djongo_tables"

/* The field SELECT ... FOR UPDATE sets and unsets in the rows it claims
 * (dj_mql_t.for_update): reserved, a column of that name would be lost. */
#define DJ_CLAIM_FIELD "__djongo_claim"

/*
 * Datetimes to the microsecond (src/compile/exact_dt.c; README "Datetimes").
 * A DATETIME (or TIMESTAMP) column `c` holds a BSON date: the instant
 * floored to the millisecond, what every MongoDB tool, index and date
 * operator reads. The microseconds below it (1..999) are in the sibling
 * field "c" DJ_US_SUFFIX, absent when 0 (data written by other tools reads
 * as remainder 0); a column named "<datetime column>__us" is therefore
 * reserved. Writes store the pair; filters, ORDER BY, GROUP BY, DISTINCT,
 * MIN/MAX, joins, subqueries, window keys and a result's value compare,
 * sort and read it (exact_dt.c lists what reads the date alone).
 *
 * An exact datetime as a value -- a parameter in (the driver binds a
 * datetime with microseconds below the millisecond so), a result cell out
 * (the executor makes one of a column's pair) -- is binary subtype
 * DJ_EXACT_DT_SUBTYPE (user-defined) of 8 bytes: microseconds since the
 * Unix epoch, a little-endian int64. It is never stored: a stored one
 * becomes the pair (cx_append_stored, dj_exact_dt_store).
 */
#define DJ_US_SUFFIX "__us"
#define DJ_EXACT_DT_SUBTYPE 0x80

/** Whether @p v is an exact datetime (*us: microseconds since the epoch). */
bool dj_exact_dt_value (const bson_value_t *v, int64_t *us);
/** Appends microseconds @p us since the epoch: a BSON date when they are
 *  whole milliseconds, else an exact datetime (binary, see above). */
bool dj_exact_dt_append (bson_t *b, const char *key, int64_t us);
/** The date (floored milliseconds) and remainder (0..999) of @p us. */
void dj_exact_dt_split (int64_t us, int64_t *ms, int32_t *rem);
/** Appends @p v under @p key as a value to store: an exact datetime as the
 *  pair (the date under key, the remainder under key DJ_US_SUFFIX), any
 *  other value as it is. */
bool dj_exact_dt_store (bson_t *b, const char *key, const bson_value_t *v);

/* What running the commands yields. */
typedef enum {
   DJ_MQL_ROWS,  /* commands[last] returns a cursor of rows */
   DJ_MQL_WRITE, /* a write; rowcount = the reply's n (inserts: documents) */
   DJ_MQL_DDL,   /* schema change; no rows, rowcount -1 */
   DJ_MQL_TXN    /* BEGIN/COMMIT/ROLLBACK/SAVEPOINT/...: no command, the
                    driver acts on `txn` (and `name` for savepoints) */
} dj_mql_kind_t;

#define DJ_MQL_MAX_COMMANDS 8

typedef struct {
   char *name; /* the column's name for cursor.description (owned) */
   char *path; /* field path in a result document (owned) */
   char *star_table; /* NULL, or (owned) the table of a `*` / `t.*` that
                        the compiler could not expand (it knows no schema):
                        the document of that table's row is at `path`, and
                        the executor puts in this column's place the columns
                        CREATE TABLE recorded for the table, in their order,
                        each at "<path>.<column>" (src/exec/exec.c,
                        expand_star_columns) */
   bool us;          /* a DATETIME column: the microseconds below the
                        millisecond are at "<path>" DJ_US_SUFFIX; the
                        executor gives the cell as an exact datetime when
                        they are not 0 */
} dj_mql_column_t;

typedef struct {
   dj_mql_kind_t kind;
   dj_stmt_kind_t stmt;       /* what the SQL statement was */
   char *collection;          /* target collection (owned), NULL for none */
   int ncommands;
   bson_t *commands[DJ_MQL_MAX_COMMANDS];  /* owned; run in order */
   int32_t ignore_code[DJ_MQL_MAX_COMMANDS]; /* a server error code that counts
                                                as success (IF [NOT] EXISTS), or 0 */
   bool admin[DJ_MQL_MAX_COMMANDS];        /* run against "admin" (renameCollection) */
   int ncolumns;
   dj_mql_column_t *columns;  /* owned; SELECT order; RETURNING for inserts */
   bool star;                 /* SELECT *: each document's own fields, _id last-in */
   char *name;                /* savepoint name for DJ_MQL_TXN (owned) */
   int feed_to;               /* > 0: commands[feed_to] is a write whose
                                 filter is the _ids ("c0" of each row) that
                                 commands[feed_to - 1] returns: an UPDATE or
                                 DELETE with a subquery in WHERE, a FOR
                                 UPDATE claim over a join. See
                                 dj_mql_feed_ids(). */
   bool auto_ids;             /* an INSERT: the executor fills AUTOINCREMENT keys */
   bool positional;           /* INSERT without a column list: the documents'
                                 fields are "0", "1", ...; the executor names
                                 them from the columns CREATE TABLE recorded */
   bool ignore_duplicates;    /* INSERT OR IGNORE: writeErrors that are all
                                 DuplicateKey (11000) are not an error; the
                                 rowcount is the documents inserted */
   bool for_update;           /* SELECT ... FOR UPDATE: commands[0] (or [1],
                                 fed by [0] as feed_to says, for a join or a
                                 subquery) is an update that claims the rows
                                 of the first table in FROM that the query
                                 reads (sets, then unsets, DJ_CLAIM_FIELD), so
                                 that concurrent writers of them conflict; the
                                 executor runs it, as one atomic unit with the
                                 read, only inside a transaction (else
                                 dj_mql_drop_claim) */
   int values_from;           /* 1: an INSERT with expressions in VALUES:
                                 commands[0] computes the values (the
                                 SELECT without FROM of them all, row after
                                 row: one row c0, c1, ..), commands[1] is
                                 the insert, its values null until
                                 dj_mql_set_values() puts them in */
   bson_t *upsert;            /* INSERT ... ON CONFLICT (keys) DO UPDATE SET
                                 c = EXCLUDED.s: {keys: [..], set: {c: s}}
                                 (owned); the executor turns commands[0]
                                 into upserts with dj_mql_to_upserts() once
                                 the documents are final (ids given) */
   const char *engine_only;   /* the first SQL function (static text:
                                 "MD5") compiled to one of the embedded
                                 engine's own operators ($_djongo...), which
                                 a MongoDB server has not; NULL for none. The
                                 executor refuses the statement on a server
                                 (dj_exec_set_engine_ops) */
   bool explain;              /* EXPLAIN SELECT: commands[last] is {explain:
                                 the read, verbosity: "queryPlanner"} (a
                                 FOR UPDATE claim dropped); its one row is
                                 the reply as JSON text, in the one column
                                 "QUERY PLAN" */
   bool sync_checks;          /* ALTER TABLE: the executor rebuilds the
                                 collection's validator from the CHECKs in the
                                 table's entry (its `checks`) after the
                                 commands ran (collMod; ddl.c says why) */
   char *constraint;          /* ALTER TABLE DROP CONSTRAINT: its name
                                 (owned): commands[0] drops an index of that
                                 name, whose IndexNotFound counts as success
                                 only when the entry has a CHECK or FOREIGN
                                 KEY of that name */
   char *rename_from, *rename_to; /* ALTER TABLE RENAME COLUMN (owned): the
                                 executor renames the column in the CHECKs and
                                 FOREIGN KEYs of the table's entry, and moves
                                 the indexes that name it to the new name */
   char *drop_column;         /* ALTER TABLE DROP COLUMN (owned): the executor
                                 drops the indexes that name the column (as
                                 PostgreSQL does) */
} dj_mql_t;

/**
 * Parses @p sql into a plan.
 * @param[out] error DJ_DOMAIN_SQL: DJ_SQL_SYNTAX or DJ_SQL_TOO_DEEP.
 * @return a plan the caller owns (dj_plan_destroy()), or NULL.
 */
dj_plan_t *dj_plan_new (const char *sql, size_t len, bson_error_t *error);

void dj_plan_destroy (dj_plan_t *plan);

/** Number of %s parameters the statement takes. */
int dj_plan_nparams (const dj_plan_t *plan);

/** The parsed statement (borrowed: valid while the plan lives). */
const dj_sql_stmt_t *dj_plan_stmt (const dj_plan_t *plan);

/**
 * Binds parameter values and produces the MongoDB commands.
 *
 * @param[in]  plan    the plan.
 * @param[in]  db      database name (renameCollection needs full names).
 * @param[in]  params  @p nparams values (borrowed: copied into the commands).
 * @param[out] out     uninitialised storage; initialised on success only,
 *                     then owned by the caller (dj_mql_cleanup()).
 * @param[out] error   DJ_DOMAIN_SQL: DJ_SQL_PARAMS (count or a value's type,
 *                     e.g. a LIMIT that is not an integer), DJ_SQL_UNSUPPORTED
 *                     (names the construct and its byte offset).
 * @return true on success.
 */
bool dj_plan_bind (const dj_plan_t *plan, const char *db, const bson_value_t *params, int nparams, dj_mql_t *out,
                   bson_error_t *error);

/**
 * What the compiler may ask about the tables: the executor's recorded
 * columns (dj_exec_catalog). With it, an unqualified column in a query over
 * several tables is the one table's that has it -- as SQL resolves it --
 * where without it the compiler refuses to guess.
 */
typedef struct {
   /* whether `table`'s recorded columns include `column` (false: no, or unknown) */
   bool (*has_column) (void *ctx, const char *table, const char *column);
   /* whether `table` recorded `column` as DATETIME or TIMESTAMP, i.e. with
    * its microseconds in the sibling field (false: no, or unknown; NULL:
    * never asked, no column is) */
   bool (*is_datetime) (void *ctx, const char *table, const char *column);
   /* appends `table`'s recorded columns, in CREATE TABLE's order, to `names`
    * (an initialised array the caller owns) as "0", "1" ...; false: the
    * table has no recorded schema (a collection made elsewhere) or it cannot
    * be read. NULL: never asked -- a column is never refused (schema.c) */
   bool (*columns) (void *ctx, const char *table, bson_t *names);
   void *ctx;
} dj_catalog_t;

/** dj_plan_bind with a catalog (borrowed for the call; NULL: none). */
bool dj_plan_bind_catalog (const dj_plan_t *plan, const char *db, const dj_catalog_t *catalog, const bson_value_t *params,
                           int nparams, dj_mql_t *out, bson_error_t *error);

/**
 * Sets the filter of commands[feed_to] to {_id: {$in: ids}}.
 * @param[in] ids an array (borrowed: copied).
 */
void dj_mql_feed_ids (dj_mql_t *mql, const bson_t *ids);

/**
 * values_from: puts the values commands[0] computed into the insert, in
 * order (document after document, field after field), then drops
 * commands[0]; clears values_from.
 * @param[in] rows what commands[0] returned, as rows: an array holding one
 *                 array of all the values (borrowed).
 * @return false when the values do not fit the insert (another number).
 */
bool dj_mql_set_values (dj_mql_t *mql, const bson_t *rows);

/**
 * upsert: replaces the insert commands[0] by an update of one upsert per
 * document, in order: {q: {key: value, ...}, u: {$set: {c: the document's
 * s}, $setOnInsert: {the document's other fields}}, upsert: true}. A
 * document with a NULL or absent key cannot conflict (SQL's NULLs are
 * distinct): its q matches nothing ({$expr: false}), so it is inserted.
 */
void dj_mql_to_upserts (dj_mql_t *mql);

/** SELECT ... FOR UPDATE run outside a transaction: drops the claim (and
 *  the aggregate feeding it), leaving the read; clears for_update. */
void dj_mql_drop_claim (dj_mql_t *mql);

void dj_mql_cleanup (dj_mql_t *mql);

/*
 * Plan cache: SQL text -> plan, parsed once and shared. Least recently used
 * plans are dropped past the capacity. The cache has its own lock: one cache
 * may serve every connection of a process.
 *
 * A plan from dj_plan_cache_get() is counted: the caller gives it back with
 * dj_plan_release() (it stays valid until then, even if the cache drops it).
 * Errors are not cached: a statement that does not parse is parsed again.
 */
typedef struct dj_plan_cache dj_plan_cache_t;

/** A cache of at most @p capacity plans (0: 512). Owned by the caller. */
dj_plan_cache_t *dj_plan_cache_new (size_t capacity);
void dj_plan_cache_destroy (dj_plan_cache_t *cache);

/**
 * The plan for @p sql, from the cache or parsed now.
 * @return a counted reference (dj_plan_release()), or NULL with @p error
 *         set as dj_plan_new() sets it.
 */
dj_plan_t *dj_plan_cache_get (dj_plan_cache_t *cache, const char *sql, size_t len, bson_error_t *error);

/** Gives back a reference from dj_plan_cache_get(). NULL is a no-op. */
void dj_plan_release (dj_plan_t *plan);

/** Hits and misses so far (for benchmarks and tests). */
void dj_plan_cache_stats (dj_plan_cache_t *cache, uint64_t *hits, uint64_t *misses);

/*
 * Bound SELECTs kept per connection (bound.c): a SELECT whose commands do
 * not depend on its parameters' values (only on their types: the compiler
 * notes every other read) is compiled once per parameter types and catalog
 * generation; its next executions copy that command with their values put
 * in, instead of compiling it again. It keeps 256 plans (64 sets of 4,
 * by the plan's serial; the least recently used of a set goes): a page
 * through a queryset, one plan per LIMIT/OFFSET, stays kept. Not
 * thread-safe: one per connection.
 */
typedef struct dj_bound_cache dj_bound_cache_t;

dj_bound_cache_t *dj_bound_cache_new (void);
/** Releases the plans it holds. NULL is a no-op. */
void dj_bound_cache_destroy (dj_bound_cache_t *cache);

/**
 * dj_plan_bind_catalog, through @p cache: the same dj_mql_t, from the kept
 * command when there is one for this plan, these parameters' types, @p db
 * and catalog generation @p gen (dj_exec_tables_generation: any change of
 * what the catalog answers counts it up). @p plan: from dj_plan_cache_get
 * (the cache takes a reference of its own); other plans, and statements
 * other than SELECT, are bound as dj_plan_bind_catalog binds them.
 */
/** Statements bound from a kept command so far (for tests). */
uint64_t dj_bound_cache_hits (const dj_bound_cache_t *cache);

bool dj_plan_bind_kept (dj_bound_cache_t *cache, dj_plan_t *plan, uint64_t gen, const char *db,
                        const dj_catalog_t *catalog, const bson_value_t *params, int nparams, dj_mql_t *out,
                        bson_error_t *error);

#endif
