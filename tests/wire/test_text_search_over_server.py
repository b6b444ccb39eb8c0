"""Text indexes and $text through pymongo against djongo-server: the same
questions tests/engine/scripts/text_{index,search}.test ask the engine,
asked the way an application asks them.

https://www.mongodb.com/docs/manual/core/indexes/index-types/index-text/
https://www.mongodb.com/docs/manual/reference/operator/query/text/
https://www.mongodb.com/docs/manual/reference/operator/aggregation/meta/
"""
import pymongo
import pytest
from pymongo.errors import OperationFailure, WriteError

# the manual's $text examples
ARTICLES = [
    {"_id": 1, "subject": "coffee", "author": "xyz", "views": 50},
    {"_id": 2, "subject": "Coffee Shopping", "author": "efg", "views": 5},
    {"_id": 3, "subject": "Baking a cake", "author": "abc", "views": 90},
    {"_id": 4, "subject": "baking", "author": "xyz", "views": 100},
    {"_id": 5, "subject": "Café Con Leche", "author": "abc", "views": 200},
    {"_id": 6, "subject": "Сырники", "author": "jkl", "views": 80},
    {"_id": 7, "subject": "coffee and cream", "author": "efg", "views": 10},
    {"_id": 8, "subject": "Cafe con Leche", "author": "xyz", "views": 10},
]


@pytest.fixture
def db(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        yield c.test


def _ids(cursor):
    return sorted(d["_id"] for d in cursor)


def test_text_index_required(db):
    db.articles.insert_many(ARTICLES)
    with pytest.raises(OperationFailure) as e:
        list(db.articles.find({"$text": {"$search": "coffee"}}))
    assert e.value.code == 27
    assert "text index required for $text query" in str(e.value)


def test_create_index_and_list(db):
    db.articles.insert_many(ARTICLES)
    name = db.articles.create_index([("subject", pymongo.TEXT)])
    assert name == "subject_text"
    info = db.articles.index_information()["subject_text"]
    assert info["key"] == [("_fts", "text"), ("_ftsx", 1)]
    assert info["weights"] == {"subject": 1}
    assert info["default_language"] == "english"
    assert info["language_override"] == "language"
    assert info["textIndexVersion"] == 3
    # one text index per collection
    with pytest.raises(OperationFailure) as e:
        db.articles.create_index([("author", pymongo.TEXT)])
    assert e.value.code == 85


def test_search_forms(db):
    db.articles.insert_many(ARTICLES)
    db.articles.create_index([("subject", pymongo.TEXT)])
    find = db.articles.find
    assert _ids(find({"$text": {"$search": "coffee"}})) == [1, 2, 7]
    assert _ids(find({"$text": {"$search": "bake coffee cake"}})) == [1, 2, 3, 4, 7]
    assert _ids(find({"$text": {"$search": '"coffee shop"'}})) == [2]
    assert _ids(find({"$text": {"$search": "coffee -shop"}})) == [1, 7]
    assert _ids(find({"$text": {"$search": "leche", "$language": "es"}})) == [5, 8]
    assert _ids(find({"$text": {"$search": "сы́рники CAFÉS"}})) == [5, 6, 8]
    assert _ids(find({"$text": {"$search": "Coffee", "$caseSensitive": True}})) == [2]
    assert _ids(find({"$text": {"$search": "CAFÉ", "$diacriticSensitive": True}})) == [5]
    assert _ids(find({"$text": {"$search": "leches -cafés", "$diacriticSensitive": True}})) == [8]
    assert db.articles.count_documents({"$text": {"$search": "coffee cake"}}) == 4


def test_text_score_projection_and_sort(db):
    db.articles.insert_many(ARTICLES)
    db.articles.create_index([("subject", pymongo.TEXT)])
    score = {"$meta": "textScore"}
    docs = list(db.articles.find({"$text": {"$search": "cake"}}, {"score": score}))
    assert docs == [{"_id": 3, "subject": "Baking a cake", "author": "abc", "views": 90, "score": 0.75}]
    top = db.articles.find({"$text": {"$search": "coffee bake"}}, {"_id": 1, "score": score})
    top = list(top.sort([("score", score), ("_id", 1)]).limit(2))
    assert top == [{"_id": 1, "score": 1.0}, {"_id": 4, "score": 1.0}]
    # the score is never a field unless asked for
    assert "score" not in str(list(db.articles.find({"$text": {"$search": "cake"}})))
    plain = db.articles.find_one({"$text": {"$search": "cake"}})
    assert set(plain) == {"_id", "subject", "author", "views"}


def test_text_in_aggregation(db):
    db.articles.insert_many(ARTICLES)
    db.articles.create_index([("subject", pymongo.TEXT)])
    out = list(db.articles.aggregate([
        {"$match": {"$text": {"$search": "cake coffee"}}},
        {"$project": {"subject": 1}},
        {"$sort": {"score": {"$meta": "textScore"}, "_id": 1}},
        {"$addFields": {"score": {"$meta": "textScore"}}},
    ]))
    assert [(d["_id"], d["score"]) for d in out] == [(1, 1.0), (2, 0.75), (3, 0.75), (7, 0.75)]
    with pytest.raises(OperationFailure) as e:
        list(db.articles.aggregate([{"$sort": {"_id": 1}}, {"$match": {"$text": {"$search": "x"}}}]))
    assert e.value.code == 17313


def test_weights_languages_and_writes(db):
    db.blog.insert_many([
        {"_id": 1, "content": "This morning I had a cup of coffee.", "about": "beverage", "keywords": ["coffee"]},
        {"_id": 2, "content": "Who likes chocolate ice cream for dessert?", "about": "food", "keywords": ["poll"]},
        {"_id": 3, "content": "My favorite flavors are strawberry and coffee", "about": "ice cream",
         "keywords": ["food", "dessert"]},
    ])
    db.blog.create_index([("content", "text"), ("keywords", "text"), ("about", "text")],
                         weights={"content": 10, "keywords": 5}, name="BlogTextIndex")
    found = db.blog.find({"$text": {"$search": "ice cream dessert"}}, {"score": {"$meta": "textScore"}})
    assert [(d["_id"], d["score"]) for d in found.sort([("score", {"$meta": "textScore"})])] == [(2, 18.0), (3, 7.0)]
    # a document's own language; one the index does not know is refused
    db.blog.insert_one({"_id": 4, "language": "spanish", "content": "corriendo"})
    assert _ids(db.blog.find({"$text": {"$search": "correr", "$language": "es"}})) == [4]
    with pytest.raises(WriteError) as e:
        db.blog.insert_one({"_id": 5, "language": "klingon", "content": "x"})
    assert e.value.code == 17262
    # writes selected by $text, and the index following them
    assert db.blog.update_many({"$text": {"$search": "coffee"}}, {"$set": {"seen": True}}).modified_count == 2
    assert db.blog.delete_many({"$text": {"$search": "poll"}}).deleted_count == 1
    db.blog.update_one({"_id": 1}, {"$set": {"content": "tea", "keywords": []}})
    assert _ids(db.blog.find({"$text": {"$search": "coffee"}})) == [3]
    db.blog.drop_index("BlogTextIndex")
    with pytest.raises(OperationFailure) as e:
        list(db.blog.find({"$text": {"$search": "coffee"}}))
    assert e.value.code == 27


def test_text_in_or_with_indexed_alternatives(db):
    """$text as one alternative of an $or whose others have indexes: the
    union, scores on the text index's documents only; an alternative
    without an index is refused as mongod's planner refuses it (291).
    https://www.mongodb.com/docs/manual/reference/operator/query/text/#restrictions"""
    db.articles.insert_many(ARTICLES)
    db.articles.create_index([("subject", pymongo.TEXT)])
    db.articles.create_index("views")
    query = {"$or": [{"$text": {"$search": "coffee"}}, {"views": {"$gte": 100}}]}
    got = list(db.articles.find(query, {"score": {"$meta": "textScore"}}).sort([("_id", 1)]))
    assert [(d["_id"], d.get("score")) for d in got] == [(1, 1.0), (2, 0.75), (4, None), (5, None), (7, 0.75)]
    assert db.articles.count_documents(query) == 5
    ranked = db.articles.find(query, {"score": {"$meta": "textScore"}}).sort(
        [("score", {"$meta": "textScore"}), ("_id", 1)])
    assert [d["_id"] for d in ranked] == [1, 2, 7, 4, 5]
    agg = db.articles.aggregate([{"$match": query}, {"$project": {"s": {"$meta": "textScore"}}}, {"$sort": {"_id": 1}}])
    assert [d.get("s") for d in agg] == [1.0, 0.75, None, None, 0.75]
    with pytest.raises(OperationFailure) as e:
        list(db.articles.find({"$or": [{"$text": {"$search": "coffee"}}, {"author": "xyz"}]}))
    assert e.value.code == 291
    assert "other non-TEXT clauses under OR have to be indexed as well" in str(e.value)
    with pytest.raises(OperationFailure) as e:
        list(db.articles.find({"$nor": [{"$text": {"$search": "coffee"}}]}))
    assert e.value.code == 2
    assert db.articles.update_many({"$or": [{"$text": {"$search": "cake"}}, {"views": 80}]},
                                   {"$inc": {"views": 1}}).modified_count == 2
