/*
 * dj_sql.h -- djongo's SQL dialect: tokenizer, parser and the typed AST.
 *
 * @mainpage
 * dj_sql_parse() turns one SQL statement -- the SQL Django 5.2 emits through
 * our backend, or SQL a person writes for raw()/cursor.execute() -- into a
 * tree the compiler (src/compile/dj_compile.h) turns into MongoDB commands.
 *
 * The dialect (operations.py quotes and spells things this way):
 *  - identifiers: bare (case kept) or "double quoted" ("" escapes a quote);
 *  - strings: 'single quoted' ('' escapes a quote); no backslash escapes;
 *  - parameters: %s (Django's format paramstyle) or ? (sqlite3's qmark),
 *    one kind as good as the other, numbered 0.. in order of appearance;
 *    %% is the modulo operator written the way Django's %-formatting
 *    would leave it;
 *  - operators: = <> != < <= > >= + - * / % || ^ (power), the bitwise
 *    & | # (xor) << >> (PostgreSQL's, which Django's bitand()... emit), and the regex match
 *    operators ~ or REGEXP (case-sensitive) and ~* (case-insensitive); LIKE
 *    (case sensitive) and ILIKE, both with an optional ESCAPE '<char>';
 *  - INSERT OR IGNORE / INSERT ... ON CONFLICT DO NOTHING skip rows that
 *    would break a unique index (Django's ignore_conflicts); INSERT ... ON
 *    CONFLICT (cols) DO UPDATE SET c = EXCLUDED.c, ... updates the row
 *    whose cols equal the new row's instead (Django's update_conflicts).
 *  - e COLLATE name (Django's Collate(), a function COLLATE(e, 'name') in
 *    the tree): names are binary (code points), nocase (case-insensitive,
 *    any script), <locale>-x-icu (ICU's rules for the locale, e.g.
 *    sv-x-icu) and <locale>-u-ks-level1|2|3 (at that ICU strength: level2
 *    ignores case, level1 case and accents, e.g. sv-u-ks-level2); src/compile/function.c;
 *  - SELECT ... FOR UPDATE (Django's select_for_update()), without OF,
 *    NOWAIT, SKIP LOCKED or NO KEY, which are refused (DJ_SQL_UNSUPPORTED).
 *
 * Everything the parser accepts is in the grammar comment of parse.c.
 * Whatever is syntactically wrong fails here with a message that names the
 * token and its byte offset ("near \"FROM\" at offset 7: expected ...");
 * what parses but cannot be translated is the compiler's NotSupported.
 *
 * @section memory_sec Memory
 * A parsed statement and every node in it live in one arena owned by the
 * dj_sql_stmt_t: dj_sql_stmt_destroy() frees the lot, there is no per-node
 * free. Strings in nodes are NUL-terminated copies (unquoted, unescaped).
 *
 * @section threads_sec Threads
 * No global state: parse in as many threads as you like. A statement is
 * read-only after parsing and may be shared between threads.
 */
#ifndef DJ_SQL_H
#define DJ_SQL_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj_error.h"

/* Codes in DJ_DOMAIN_SQL. The driver maps UNSUPPORTED to
 * NotSupportedError, VALUE to DataError, NO_COLUMN to OperationalError (as
 * SQLite's "no such column") and the others to ProgrammingError. */
enum {
   DJ_SQL_SYNTAX = 1,      /* not SQL of our dialect */
   DJ_SQL_UNSUPPORTED = 2, /* valid SQL that djongo cannot translate */
   DJ_SQL_PARAMS = 3,      /* wrong number or type of parameters */
   DJ_SQL_TOO_DEEP = 4,    /* nesting beyond DJ_SQL_MAX_DEPTH */
   DJ_SQL_VALUE = 5,       /* a value SQL itself rejects: a unit or field name no
                              database knows (PostgreSQL's 22023, a DataError) */
   DJ_SQL_NO_COLUMN = 6    /* a column the table's recorded schema lacks */
};

/* Expression and subquery nesting limit: deeper input is refused instead of
 * exhausting the C stack (the parser and compiler recurse). */
#define DJ_SQL_MAX_DEPTH 200

typedef struct dj_expr dj_expr_t;
typedef struct dj_select dj_select_t;
typedef struct dj_sql_stmt dj_sql_stmt_t;

/* A growable array of pointers, storage in the statement's arena. */
typedef struct {
   void **v;
   int n, cap;
} dj_list_t;

typedef enum {
   DJ_X_COLUMN,   /* table.name or name; name "*" for t.*; a path into
                     a document (col -> 'key' -> 0) is name "col.key.0" */
   DJ_X_PARAM,    /* %s; ival = parameter index */
   DJ_X_INT,      /* ival */
   DJ_X_FLOAT,    /* dval (text in name, for exact decimals) */
   DJ_X_STRING,   /* name */
   DJ_X_NULL,
   DJ_X_BOOL,     /* ival 0/1 (TRUE / FALSE) */
   DJ_X_STAR,     /* the * of SELECT * or COUNT(*) */
   DJ_X_NEG,      /* -a */
   DJ_X_BINARY,   /* a op b: arithmetic, ||, comparisons */
   DJ_X_AND,      /* args: two or more conjuncts */
   DJ_X_OR,       /* args: two or more disjuncts */
   DJ_X_NOT,      /* NOT a */
   DJ_X_IS_NULL,  /* a IS [NOT] NULL */
   DJ_X_IN_LIST,  /* a [NOT] IN (args) */
   DJ_X_IN_SELECT,/* a [NOT] IN (sub) */
   DJ_X_BETWEEN,  /* a [NOT] BETWEEN b AND c */
   DJ_X_LIKE,     /* a [NOT] LIKE|ILIKE b [ESCAPE c] */
   DJ_X_REGEX,    /* a ~ b, a ~* b */
   DJ_X_EXISTS,   /* [NOT] EXISTS (sub) */
   DJ_X_SUBQUERY, /* (sub) as a scalar */
   DJ_X_FUNC,     /* name(args) [FILTER (WHERE a)] [OVER (...)] */
   DJ_X_CASE,     /* CASE [a] WHEN..THEN.. [ELSE b] END; args: when,then,... */
   DJ_X_CAST,     /* CAST(a AS name) */
   DJ_X_ROW       /* (a, b, ...): args; as `row IN (SELECT x, y ...)`
                     or `row = (SELECT x, y ...)` (DJ_XF_ROW_EQ; <> is
                     its NOT); the parser writes row = row, row <> row
                     and row IN (rows) as ANDs and ORs of the components */
} dj_expr_kind_t;

/* Binary operators (dj_expr_t.op for DJ_X_BINARY). */
typedef enum {
   DJ_OP_EQ, DJ_OP_NE, DJ_OP_LT, DJ_OP_LE, DJ_OP_GT, DJ_OP_GE,
   DJ_OP_ADD, DJ_OP_SUB, DJ_OP_MUL, DJ_OP_DIV, DJ_OP_MOD, DJ_OP_CONCAT,
   DJ_OP_BITAND, DJ_OP_BITOR, DJ_OP_BITXOR, DJ_OP_SHL, DJ_OP_SHR, /* & | # << >> */
   DJ_OP_POW /* ^ (PostgreSQL's exponent; Django's ** on F()) */
} dj_op_t;

/* dj_expr_t.flags */
enum {
   DJ_XF_NOT = 1 << 0,      /* NOT IN / NOT BETWEEN / NOT LIKE / IS NOT NULL / NOT EXISTS */
   DJ_XF_ICASE = 1 << 1,    /* ILIKE, ~* */
   DJ_XF_DISTINCT = 1 << 2, /* COUNT(DISTINCT a) */
   DJ_XF_STAR = 1 << 3,     /* COUNT(*) */
   DJ_XF_ROW_EQ = 1 << 4,   /* DJ_X_IN_SELECT of a row: row = (SELECT ...), a
                               comparison with the subquery's one row (none:
                               NULL), not a search among its rows */
   DJ_XF_COLLKEY = 1 << 5   /* COLLATE(e, 'name') where it decides an order
                               or an equality: its value is e's sort key under
                               the collation (set by the compiler only) */
};

/* A window frame bound. */
typedef enum {
   DJ_BOUND_UNBOUNDED_PRECEDING, DJ_BOUND_PRECEDING, DJ_BOUND_CURRENT, DJ_BOUND_FOLLOWING,
   DJ_BOUND_UNBOUNDED_FOLLOWING
} dj_bound_t;

typedef enum { DJ_FRAME_NONE, DJ_FRAME_ROWS, DJ_FRAME_RANGE, DJ_FRAME_GROUPS } dj_frame_t;

/* A frame's EXCLUDE clause: rows of the frame left out (NO OTHERS, the
 * default, leaves none out; GROUP the current row and its peers, TIES its
 * peers but not itself). */
typedef enum { DJ_EXCLUDE_NO_OTHERS, DJ_EXCLUDE_CURRENT_ROW, DJ_EXCLUDE_GROUP, DJ_EXCLUDE_TIES } dj_exclude_t;

/* A window specification: OVER (PARTITION BY .. ORDER BY .. [frame]). */
typedef struct {
   dj_list_t partition; /* dj_expr_t * */
   dj_list_t order;     /* dj_order_t * */
   dj_frame_t frame;    /* DJ_FRAME_NONE: SQL's default frame */
   dj_bound_t start, end;
   int64_t start_n, end_n; /* the n of "n PRECEDING" / "n FOLLOWING" */
   dj_exclude_t exclude;
   uint32_t frame_pos;
} dj_window_t;

struct dj_expr {
   dj_expr_kind_t kind;
   dj_op_t op;
   int flags;
   uint32_t pos;      /* byte offset of the first token, for messages */
   char *table;       /* DJ_X_COLUMN qualifier, or NULL */
   char *name;        /* column / function (upper-cased) / type / string text */
   int64_t ival;
   double dval;
   dj_expr_t *a, *b, *c;
   dj_list_t args;     /* dj_expr_t * */
   dj_select_t *sub;   /* subquery */
   dj_expr_t *filter;  /* aggregate FILTER (WHERE ...) */
   dj_window_t *over;  /* window function */
};

typedef struct {
   dj_expr_t *expr;
   char *alias; /* AS alias, or NULL */
} dj_item_t;

typedef struct {
   dj_expr_t *expr;
   bool desc;
   int nulls; /* 0: default, 1: NULLS FIRST, 2: NULLS LAST */
   bool hashed; /* CREATE INDEX key `col HASHED`: a MongoDB hashed index field */
   bool text;   /* CREATE INDEX key `col TEXT [WEIGHT n]`: a MongoDB text index field */
   dj_expr_t *weight; /* its WEIGHT, NULL: 1 */
   int geo;     /* CREATE INDEX key `col GEOSPHERE` (1: "2dsphere") or `col GEO2D` (2: "2d") */
} dj_order_t;

typedef enum { DJ_JOIN_NONE, DJ_JOIN_INNER, DJ_JOIN_LEFT, DJ_JOIN_CROSS } dj_join_t;

/* One FROM entry; the first has join DJ_JOIN_NONE. */
typedef struct {
   char *name;        /* table name, or NULL for a derived table */
   char *alias;       /* alias, or NULL (then the name is the alias) */
   dj_select_t *sub;  /* (SELECT ...) alias */
   dj_join_t join;
   dj_expr_t *on;
   uint32_t pos;
} dj_from_t;

typedef enum {
   DJ_SET_NONE, DJ_SET_UNION, DJ_SET_UNION_ALL, DJ_SET_INTERSECT, DJ_SET_INTERSECT_ALL, DJ_SET_EXCEPT, DJ_SET_EXCEPT_ALL
} dj_setop_t;

struct dj_select {
   bool distinct;
   dj_list_t items;    /* dj_item_t * */
   dj_list_t from;     /* dj_from_t * */
   dj_expr_t *where;
   dj_list_t group_by; /* dj_expr_t * */
   dj_expr_t *having;
   dj_list_t order_by; /* dj_order_t * */
   dj_expr_t *limit, *offset;
   dj_setop_t setop;   /* this SELECT <setop> next */
   dj_select_t *next;
   uint32_t pos;
};

typedef struct {
   char *name;
   char *type;        /* type name as written, upper-cased, or NULL */
   bool not_null, primary_key, unique, autoincrement;
   bool drop_not_null; /* ALTER COLUMN c DROP NOT NULL */
   bool drop_default;  /* ALTER COLUMN c DROP DEFAULT */
   dj_expr_t *default_value;
   char *ref_table, *ref_column; /* REFERENCES t (c) */
   bool ref_deferred;  /* ... DEFERRABLE INITIALLY DEFERRED */
   dj_expr_t *check;   /* CHECK (e), or NULL */
   char *check_name;   /* CONSTRAINT n CHECK (e): n, or NULL */
   dj_expr_t *generated; /* [GENERATED ALWAYS] AS (e) [STORED | VIRTUAL]: e, or NULL */
   bool stored;        /* ... STORED (without it, SQLite's default: VIRTUAL) */
   char *collation;    /* COLLATE name (also ALTER COLUMN c TYPE t COLLATE name), or NULL */
} dj_coldef_t;

typedef struct {
   char *name;         /* CONSTRAINT name, or NULL */
   bool primary_key;   /* else UNIQUE, CHECK or FOREIGN KEY: */
   dj_expr_t *check;   /* CHECK (e): e; NULL for the other kinds */
   char *ref_table;    /* FOREIGN KEY (columns) REFERENCES ref_table (ref_columns) */
   dj_list_t ref_columns; /* char *; empty: the referenced table's primary key */
   bool ref_deferred;  /* ... DEFERRABLE INITIALLY DEFERRED */
   dj_list_t columns;  /* char * */
   dj_expr_t *where;   /* partial (conditional) constraint/index */
} dj_tconstraint_t;

typedef enum {
   DJ_STMT_SELECT, DJ_STMT_INSERT, DJ_STMT_UPDATE, DJ_STMT_DELETE,
   DJ_STMT_CREATE_TABLE, DJ_STMT_DROP_TABLE, DJ_STMT_ALTER_TABLE,
   DJ_STMT_CREATE_INDEX, DJ_STMT_DROP_INDEX,
   DJ_STMT_BEGIN, DJ_STMT_COMMIT, DJ_STMT_ROLLBACK,
   DJ_STMT_SAVEPOINT, DJ_STMT_RELEASE, DJ_STMT_ROLLBACK_TO
} dj_stmt_kind_t;

typedef enum {
   DJ_ALTER_ADD_COLUMN, DJ_ALTER_DROP_COLUMN, DJ_ALTER_RENAME_COLUMN,
   DJ_ALTER_RENAME_TABLE, DJ_ALTER_ADD_CONSTRAINT, DJ_ALTER_DROP_CONSTRAINT,
   DJ_ALTER_ALTER_COLUMN
} dj_alter_kind_t;

struct dj_sql_stmt {
   dj_stmt_kind_t kind;
   int nparams;        /* number of %s in the text */
   char *table;        /* INSERT/UPDATE/DELETE/DDL target */
   char *alias;        /* UPDATE/DELETE target alias */
   dj_select_t *select;/* SELECT, or INSERT ... SELECT */
   dj_list_t columns;  /* INSERT column names (char *); CREATE INDEX keys (dj_order_t *) */
   dj_list_t rows;     /* INSERT VALUES: dj_list_t * of dj_expr_t * */
   dj_list_t returning;/* RETURNING items (dj_item_t *) */
   dj_list_t sets;     /* UPDATE: dj_item_t * (alias = column, expr = value) */
   dj_expr_t *where;   /* UPDATE/DELETE WHERE; CREATE INDEX ... WHERE */
   dj_expr_t *expire_after; /* CREATE INDEX ... WITH (expireAfterSeconds = n): a TTL index */
   dj_expr_t *default_language, *language_override; /* ... WITH (default_language = 'x', ...): a text index's */
   dj_list_t coldefs;  /* CREATE TABLE / ADD COLUMN: dj_coldef_t * */
   dj_list_t constraints; /* dj_tconstraint_t * */
   char *name;         /* index / savepoint / constraint / new name */
   char *column;       /* ALTER: column */
   dj_alter_kind_t alter;
   bool unique, if_exists, if_not_exists;
   bool ignore_conflicts; /* INSERT OR IGNORE / ON CONFLICT DO NOTHING */
   dj_list_t conflict_target; /* ON CONFLICT (cols): column names (char *) */
   dj_list_t conflict_sets;   /* ON CONFLICT (..) DO UPDATE SET: dj_item_t *
                                 (alias = column, expr = value; EXCLUDED.c
                                 is a column of table "EXCLUDED") */
   dj_expr_t *conflict_where; /* ... DO UPDATE SET .. WHERE expr */
   bool for_update;    /* SELECT ... FOR UPDATE */
   bool explain;       /* EXPLAIN SELECT ...: the read's plan, not its rows */
   bool view;          /* CREATE VIEW table AS select (kind CREATE_TABLE) */
   uint32_t for_update_pos; /* ... the offset of its FOR */
   void *arena_;       /* private: the arena owning everything */
};

/**
 * Parses one SQL statement (an optional trailing ';' is allowed).
 *
 * @param[in]  sql    the text; need not be NUL-terminated.
 * @param[in]  len    its length in bytes.
 * @param[out] error  on failure: DJ_DOMAIN_SQL, DJ_SQL_SYNTAX (message names
 *                    the token and byte offset) or DJ_SQL_TOO_DEEP.
 * @return a statement the caller owns (dj_sql_stmt_destroy()), or NULL.
 */
dj_sql_stmt_t *dj_sql_parse (const char *sql, size_t len, bson_error_t *error);

/** Frees a statement and every node in it. NULL is a no-op. */
void dj_sql_stmt_destroy (dj_sql_stmt_t *stmt);

/* Token types of the tokenizer (exposed for the fuzzer and tests). */
typedef enum {
   DJ_TK_EOF, DJ_TK_ID, DJ_TK_QID, DJ_TK_STRING, DJ_TK_INT, DJ_TK_FLOAT, DJ_TK_PARAM,
   DJ_TK_LP, DJ_TK_RP, DJ_TK_COMMA, DJ_TK_DOT, DJ_TK_SEMI,
   DJ_TK_EQ, DJ_TK_NE, DJ_TK_LT, DJ_TK_LE, DJ_TK_GT, DJ_TK_GE,
   DJ_TK_PLUS, DJ_TK_MINUS, DJ_TK_STAR, DJ_TK_SLASH, DJ_TK_PERCENT, DJ_TK_CONCAT,
   DJ_TK_TILDE, DJ_TK_TILDE_STAR, DJ_TK_ARROW, DJ_TK_AMP, DJ_TK_PIPE, DJ_TK_HASH, DJ_TK_SHL, DJ_TK_SHR,
   DJ_TK_CARET, DJ_TK_ILLEGAL
} dj_token_type_t;

/**
 * Reads the token that starts at @p z (at most @p n bytes). The caller skips
 * whitespace and comments first, with dj_sql_skip_space().
 * @return the token's length in bytes (0 only at the end of input, with
 *         *type DJ_TK_EOF); an unterminated string or a byte outside the
 *         dialect is a DJ_TK_ILLEGAL token.
 */
size_t dj_sql_get_token (const char *z, size_t n, dj_token_type_t *type);

/** Length of the whitespace/comments at @p z (at most @p n bytes). */
size_t dj_sql_skip_space (const char *z, size_t n);

/**
 * Where the first statement of @p z ends, for prompts that read statements
 * across lines (like sqlite3_complete(): a ';' ends a statement only
 * outside quoted strings, quoted names and comments).
 * @return the length through that ';', or 0 when no statement is complete
 *         yet (no such ';', or an unterminated quote or comment).
 */
size_t dj_sql_statement_end (const char *z, size_t n);

/**
 * The format paramstyle's other half: when a statement comes with
 * parameters (even none: an empty list), %% inside its quoted strings and
 * names stands for one % -- psycopg's and Django's SQLite backend's rule,
 * which SQL written for them relies on ('100%%' is the text 100%). Outside
 * quotes %% stays the modulo operator. Without parameters (None), the text
 * is taken as it is.
 * @return a NUL-terminated copy with the quoted %% halved (bson_free()), and
 *         its length in *out_len; NULL when nothing needs halving.
 */
char *dj_sql_unescape_percents (const char *sql, size_t len, size_t *out_len);

#endif
