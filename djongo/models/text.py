"""Text search: MongoDB's text index, its $text query and its score.

  class Entry(models.Model):
      headline = models.CharField(max_length=255)
      body_text = models.TextField()
      class Meta:
          indexes = [models.TextIndex(fields=["headline", "body_text"], weights={"headline": 5},
                                      default_language="english", name="entry_text")]

  Entry.objects.filter(headline__search="coffee -tea")            # $text
  Entry.objects.filter(headline__search=TextQuery("café", language="french"))
  Entry.objects.filter(body_text__search="cake").annotate(score=TextScore()).order_by("-score")

A collection has one text index, and $text searches all of it: the field a
``__search`` names must be one of its fields (any of them gives the same
search). The search string is MongoDB's: words (stemmed, stop words
dropped, in the index's language), "phrases" and -negations.
https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
https://www.mongodb.com/docs/manual/reference/operator/query/text/

In djongo's SQL (src/sql/dj_sql.h) the index is ``CREATE INDEX ... ("f" TEXT
WEIGHT n, ...) WITH (default_language = '...')``, the lookup
``MATCH_TEXT(%s[, %s])`` and the score ``TEXT_SCORE()``; the search string
and language are bound parameters.
"""
from django.db import NotSupportedError
from django.db.models import CharField, Expression, FloatField, Index, Lookup, TextField

LANGUAGES = ("danish", "dutch", "english", "finnish", "french", "german", "hungarian", "italian", "norwegian",
             "portuguese", "romanian", "russian", "spanish", "swedish", "turkish", "none",
             "da", "nl", "en", "fi", "fr", "de", "hu", "it", "nb", "pt", "ro", "ru", "es", "sv", "tr")


def _check_language(language, what):
    # https://www.mongodb.com/docs/manual/reference/text-search-languages/
    if language is not None and language not in LANGUAGES:
        raise ValueError("%s %r is not one of MongoDB's text search languages" % (what, language))


class TextIndex(Index):
    """A MongoDB text index on string fields (``fields``: no '-' order),
    with per-field ``weights`` (default 1), the ``default_language`` and the
    name of the documents' ``language_override`` field."""

    suffix = "text"

    def __init__(self, *, fields=(), weights=None, default_language=None, language_override=None, **kwargs):
        if not fields or any(str(f).startswith("-") for f in fields):
            raise ValueError("TextIndex takes one or more fields, without an order ('-')")
        weights = dict(weights or {})
        for f, w in weights.items():
            if f not in fields:
                raise ValueError("TextIndex weight for %r, which is not one of its fields" % (f,))
            if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 99999:
                raise ValueError("TextIndex weights are whole numbers from 1 to 99999, not %r" % (w,))
        _check_language(default_language, "TextIndex default_language")
        if language_override is not None and (not isinstance(language_override, str) or not language_override):
            raise ValueError("TextIndex language_override is a field name")
        self.weights = weights
        self.default_language = default_language
        self.language_override = language_override
        super().__init__(fields=fields, **kwargs)

    def create_sql(self, model, schema_editor, using="", **kwargs):
        fields = [model._meta.get_field(name) for name, _ in self.fields_orders]
        suffixes = ["TEXT WEIGHT %d" % self.weights[name] if name in self.weights else "TEXT"
                    for name, _ in self.fields_orders]
        statement = schema_editor._create_index_sql(
            model, fields=fields, name=self.name, using=using, db_tablespace=self.db_tablespace,
            col_suffixes=suffixes, opclasses=self.opclasses,
            condition=self._get_condition_sql(model, schema_editor), **kwargs)
        options = []
        if self.default_language:
            options.append("default_language = %s" % schema_editor.quote_value(self.default_language))
        if self.language_override:
            options.append("language_override = %s" % schema_editor.quote_value(self.language_override))
        if options:
            statement.parts["extra"] = " WITH (%s)%s" % (", ".join(options), statement.parts["extra"])
        return statement

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        if self.weights:
            kwargs["weights"] = self.weights
        if self.default_language:
            kwargs["default_language"] = self.default_language
        if self.language_override:
            kwargs["language_override"] = self.language_override
        return "djongo.models.TextIndex", args, kwargs


class TextQuery:
    """A $text search string with its $language (a search in another
    language than the index's default)."""

    def __init__(self, search, language=None):
        if not isinstance(search, str):
            raise TypeError("TextQuery searches a string, not %r" % (search,))
        _check_language(language, "TextQuery language")
        self.search = search
        self.language = language


def _djongo_only(connection, what):
    if connection.vendor != "djongo":
        raise NotSupportedError("%s is MongoDB's text search: djongo's backend only" % what)


class TextSearch(Lookup):
    """``field__search="words"``: the model's text index searched with
    $text (the field must be one of the index's)."""

    lookup_name = "search"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        _djongo_only(connection, "__search")
        field = getattr(self.lhs, "target", None)
        model = getattr(field, "model", None)
        indexed = [name for ix in (model._meta.indexes if model else ()) if isinstance(ix, TextIndex)
                   for name in ix.fields]
        if field is None or field.name not in indexed:
            raise NotSupportedError("%s__search: the field is in no TextIndex of its model (MongoDB's $text needs "
                                    "the collection's text index)" % getattr(field, "name", "?"))
        value = self.rhs
        if hasattr(value, "resolve_expression"):
            raise NotSupportedError("__search takes a string or a TextQuery, not an expression")
        query = value if isinstance(value, TextQuery) else TextQuery(value)
        if query.language:
            return "MATCH_TEXT(%s, %s)", [query.search, query.language]
        return "MATCH_TEXT(%s)", [query.search]


CharField.register_lookup(TextSearch)
TextField.register_lookup(TextSearch)


class TextScore(Expression):
    """How well a document matched the query's ``__search``: MongoDB's
    {$meta: "textScore"}, for annotate() and order_by()."""

    output_field = FloatField()

    def as_sql(self, compiler, connection):
        _djongo_only(connection, "TextScore()")
        return "TEXT_SCORE()", []
