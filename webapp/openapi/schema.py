"""The one JSON Schema generator of the document and the base class of every model it writes.

pydantic writes JSON Schema 2020-12 (OpenAPI 3.1's dialect). The document's habits differ in
form, never in meaning: no generated titles (the names say it), a nullable plain type is
``{"type": [t, "null"]}``, an absent field has no ``default: null``, a ``const`` needs no
``type``, a dict of any values has no ``additionalProperties: true``, and a model subclassing
another declared model is ``allOf`` [the parent, its own fields].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

REF = "#/components/schemas/{model}"
NULL = {"type": "null"}
# Keywords that say something about a value rather than constrain it: a schema carrying one
# keeps its own branch beside null (the words belong to the non-null value). A schema naming its
# values (enum, const) or another schema ($ref) keeps its own branch too: null is none of them.
KEEP_BRANCH = frozenset({"title", "description", "examples", "default", "$ref", "enum", "const"})


class ApiModel(BaseModel):
    """Base of every declared model; a subclass of a declared model extends it (allOf).

    A class may add keywords to its own schema (not its subclasses') with a static method
    ``more_keywords(schema_of) -> dict``, where ``schema_of(core_schema)`` gives the schema of
    another model or type (a reference, for a model).
    """

    # Python's regexes: the patterns use lookaheads. Built when first used, not when declared.
    model_config = ConfigDict(regex_engine="python-re", defer_build=True)


def parent_model(model: type) -> type[BaseModel] | None:
    """The declared model this one extends, if any."""
    parent = model.__bases__[0]
    return parent if parent is not ApiModel and issubclass(parent, ApiModel) else None


def with_null(schema: JsonSchemaValue) -> JsonSchemaValue:
    """``schema`` or null, in the document's form."""
    if schema == NULL:
        return schema
    if schema.keys() == {"anyOf"}:
        branches = list(schema["anyOf"])
        for i, branch in enumerate(branches):
            if branch.keys() == {"type"} and isinstance(branch["type"], str):
                branches[i] = {"type": [branch["type"], "null"]}
                return {"anyOf": branches}
        return {"anyOf": [*branches, NULL]}
    if isinstance(schema.get("type"), str) and not schema.keys() & KEEP_BRANCH:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, NULL]}


class DocumentSchema(GenerateJsonSchema):
    """pydantic's generator, writing the document's form (see the module's docstring)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        model = schema["cls"]
        if model.model_config.get("title") is None:
            json_schema.pop("title", None)
        parent = parent_model(model)
        if parent is not None:
            json_schema = _extension(model, parent, json_schema, self.generate_inner)
        more = vars(model).get("more_keywords")
        if more is not None:
            json_schema.update(more(self.generate_inner))
        return json_schema

    def model_fields_schema(self, schema: core_schema.ModelFieldsSchema) -> JsonSchemaValue:
        json_schema = super().model_fields_schema(schema)
        if not json_schema.get("properties", True):
            del json_schema["properties"]
        keys = schema.get("extras_keys_schema")
        if keys is not None:  # pydantic validates extra keys but does not state it
            names = self.generate_inner(keys)
            names.pop("type", None)  # JSON keys are strings
            json_schema["propertyNames"] = names
        return json_schema

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        return with_null(self.generate_inner(schema["schema"]))

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        if schema.get("default", ...) is None:  # absent is not null: the field is optional
            json_schema.pop("default", None)
        return json_schema

    def literal_schema(self, schema: core_schema.LiteralSchema) -> JsonSchemaValue:
        json_schema = super().literal_schema(schema)
        if "const" in json_schema:
            json_schema.pop("type", None)  # the constant says its type
        return json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        if json_schema.get("additionalProperties") is True:
            del json_schema["additionalProperties"]  # any value: the keyword says nothing
        return json_schema


def _extension(
    model: type[BaseModel],
    parent: type[BaseModel],
    whole: JsonSchemaValue,
    schema_of: Callable[[CoreSchema], JsonSchemaValue],
) -> JsonSchemaValue:
    """``allOf`` [the parent, the fields ``model`` declares or redeclares] with its own words."""
    own = [name for name in vars(model).get("__annotations__", {}) if name in model.model_fields]
    branch: dict[str, Any] = {
        "type": "object",
        "properties": {name: whole["properties"][name] for name in own},
    }
    required = [name for name in own if name in whole.get("required", [])]
    if required:
        branch["required"] = required
    extension: dict[str, Any] = {}
    for word in ("title", "description"):
        if word in whole:
            extension[word] = whole[word]
    extension["allOf"] = [schema_of(parent.__pydantic_core_schema__), branch]
    return extension
