"""$jsonSchema through pymongo against djongo-server: the manual's students
example as a validator (DocumentValidationFailure with errInfo in mongod's
shape, validationAction warn), and $jsonSchema as a find filter.

https://www.mongodb.com/docs/manual/core/schema-validation/specify-json-schema/
https://www.mongodb.com/docs/manual/reference/operator/query/jsonSchema/
"""
import pymongo
import pytest
from pymongo.errors import OperationFailure, WriteError

SCHEMA = {"$jsonSchema": {
    "bsonType": "object",
    "title": "Student Object Validation",
    "required": ["address", "major", "name", "year"],
    "properties": {
        "name": {"bsonType": "string", "description": "'name' must be a string and is required"},
        "year": {"bsonType": "int", "minimum": 2017, "maximum": 3017,
                 "description": "'year' must be an integer in [ 2017, 3017 ] and is required"},
        "gpa": {"bsonType": ["double"], "description": "'gpa' must be a double if the field exists"},
    },
}}


def test_validator_and_filter(server):
    with pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=5000) as c:
        db = c.test
        db.create_collection("students", validator=SCHEMA)
        with pytest.raises(WriteError) as e:
            db.students.insert_one({"_id": 1, "name": "Alice", "year": 2019, "major": "History",
                                    "gpa": 3, "address": {"city": "NYC", "street": "33rd Street"}})
        assert e.value.code == 121
        info = e.value.details["errInfo"]
        assert info["failingDocumentId"] == 1
        assert info["details"]["operatorName"] == "$jsonSchema"
        rule = info["details"]["schemaRulesNotSatisfied"][0]
        assert rule["operatorName"] == "properties"
        prop = rule["propertiesNotSatisfied"][0]
        assert prop["propertyName"] == "gpa"
        assert prop["description"] == "'gpa' must be a double if the field exists"
        assert prop["details"] == [{"operatorName": "bsonType", "specifiedAs": {"bsonType": ["double"]},
                                    "reason": "type did not match", "consideredValue": 3, "consideredType": "int"}]
        db.students.insert_one({"_id": 2, "name": "Alice", "year": 2019, "major": "History",
                                "gpa": 3.0, "address": {"city": "NYC", "street": "33rd Street"}})
        with pytest.raises(WriteError) as e:
            db.students.insert_one({"_id": 3, "name": "Bo"})
        assert e.value.details["errInfo"]["details"]["schemaRulesNotSatisfied"][0] == {
            "operatorName": "required", "specifiedAs": {"required": ["address", "major", "name", "year"]},
            "missingProperties": ["address", "major", "year"]}
        db.command("collMod", "students", validationAction="warn")
        db.students.insert_one({"_id": 3, "name": "Bo"})
        assert sorted(d["_id"] for d in db.students.find(SCHEMA)) == [2]
        assert sorted(d["_id"] for d in db.students.find({"$jsonSchema": {"not": {"required": ["year"]}}})) == [3]
        with pytest.raises(OperationFailure) as e:
            list(db.students.find({"$jsonSchema": {"unknownKeyword": 1}}))
        assert e.value.code == 9 and "Unknown $jsonSchema keyword: unknownKeyword" in str(e.value)
