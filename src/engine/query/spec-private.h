/*
 * spec-private.h -- the tree a projection specification parses into, shared
 * by find projections (project.c) and the shaping stages (reshape.c). Not
 * installed.
 *
 * {a: 1, "b.c": 0, "b.d": {$slice: 2}} becomes one node per path component
 * under a root: a, b, and below b: c and d. A node either takes the whole
 * value at its path (included, excluded, computed, $elemMatch, "a.$") or
 * leads to more nodes (DJ_SPEC_SUB); $slice trims an array and lets paths
 * below it through.
 * Memory: each node owns its name, its children and its expression or
 * matcher; dj_spec_free frees a tree.
 * Also here: struct dj_reshape, which find projections share with the
 * shaping stages.
 */
#ifndef DJ_SPEC_PRIVATE_H
#define DJ_SPEC_PRIVATE_H

#include "dj_query.h"

typedef enum {
   DJ_SPEC_SUB = 0,    /* a path component with more below it */
   DJ_SPEC_INCLUDE,    /* {a: 1} / {a: true} */
   DJ_SPEC_EXCLUDE,    /* {a: 0} / {a: false} */
   DJ_SPEC_EXPR,       /* stages: a computed field, expr */
   DJ_SPEC_SLICE,      /* find: {a: {$slice: ...}}, skip and limit */
   DJ_SPEC_ELEMMATCH,  /* find: {a: {$elemMatch: q}}, elem */
   DJ_SPEC_POSITIONAL, /* find: {"a.$": 1} */
} dj_spec_kind_t;

typedef struct dj_spec_node dj_spec_node_t;
struct dj_spec_node {
   char *name; /* owned; NULL at the root */
   dj_spec_kind_t kind;
   dj_expr_t *expr;      /* DJ_SPEC_EXPR: owned */
   dj_matcher_t *elem;   /* DJ_SPEC_ELEMMATCH: owned */
   int64_t skip, limit;  /* DJ_SPEC_SLICE: skip may be negative (from the end) */
   dj_spec_node_t **kids; /* owned */
   int nkids;
};

/* A shaping: a stage ($project, $addFields, $unset, $replaceRoot) or a
 * find projection without expressions (RS_FIND; one with expressions is a
 * $project). dj_projection_t and dj_reshape_t are this one type. */
typedef enum { RS_PROJECT, RS_ADDFIELDS, RS_REPLACEROOT, RS_FIND } dj_rskind_t;
typedef struct dj_rpaths dj_rpaths_t;
struct dj_reshape {
   dj_rskind_t kind;
   dj_spec_node_t *shape; /* RS_PROJECT, RS_ADDFIELDS, RS_FIND: owned */
   bool inclusion, id_excluded;
   dj_expr_t *root; /* RS_REPLACEROOT: the new root, owned */
   bson_t *meta;    /* RS_FIND: {field: "textScore", ...} added after shaping (owned, NULL: none) */
   dj_rpaths_t *paths; /* owned: a $project of field paths alone, applied in one pass (NULL: not one) */
};

/* reshape_paths.c: r's fields as paths read in one pass over a document,
 * when r is a $project excluding _id whose every field is a field path
 * ("$a.b"); else NULL. Borrows from r's shape (freed before it). */
dj_rpaths_t *dj_rpaths_new (const dj_reshape_t *r);
void dj_rpaths_free (dj_rpaths_t *rp);
/* dj_reshape_apply's result (text score included) for such a shaping. */
bool dj_rpaths_apply (const dj_rpaths_t *rp, dj_eval_t *ev, const bson_t *doc, bson_t *out);

/* A new, empty root (DJ_SPEC_SUB): the caller frees it with dj_spec_free. */
dj_spec_node_t *dj_spec_new (void);
/* Frees n and everything below it (n may be NULL). */
void dj_spec_free (dj_spec_node_t *n);
/* n's child named `name`, or NULL; *index (if not NULL) receives its
 * position among n's children (-1 when absent). Inline: applying a
 * projection asks it for every field of every document. */
static inline dj_spec_node_t *
dj_spec_child (const dj_spec_node_t *n, const char *name, int *index)
{
   for (int i = 0; i < n->nkids; i++) {
      if (!strcmp (n->kids[i]->name, name)) {
         if (index) {
            *index = i;
         }
         return n->kids[i];
      }
   }
   if (index) {
      *index = -1;
   }
   return NULL;
}

/* Whether n takes the whole value at its path: no path may go below it. */
static inline bool
dj_spec_whole (const dj_spec_node_t *n)
{
   return n->kind != DJ_SPEC_SUB && n->kind != DJ_SPEC_SLICE;
}
/* Adds the node for the dotted path under root, making the components on
 * the way (DJ_SPEC_SUB); the new node is DJ_SPEC_SUB too, for the caller to
 * set. NULL with error when a component is empty or the path collides with
 * one already there (it exists, or goes below a node that takes the whole
 * value): error 31250. `stage`: the words of the $project stage rather than
 * of a find projection. */
dj_spec_node_t *dj_spec_add (dj_spec_node_t *root, const char *dotted, bool stage, bson_error_t *error);
/* A specification value that includes or excludes: a bool or a number
 * (*out: whether it includes). False for anything else. */
bool dj_spec_truthy (const bson_value_t *v, bool *out);

#endif
