"""How pydantic's JSON Schema becomes the document's: component refs, null folded in, extensions.

pydantic writes JSON Schema 2020-12 (OpenAPI 3.1's dialect). The document's habits differ in
form, never in meaning: no generated titles (the names say it), a nullable plain type is
``{"type": [t, "null"]}``, an absent field has no ``default: null``, a ``const`` needs no
``type``, and a model subclassing another component is ``allOf`` [the parent, its own fields].
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

REF_TEMPLATE = "#/components/schemas/{model}"
NULL = {"type": "null"}
# Keywords that say something about a value rather than constrain it: a schema carrying one
# keeps its own branch beside null (the words belong to the non-null value).
ANNOTATIONS = frozenset({"title", "description", "examples", "default"})


def with_null(schema: JsonSchemaValue) -> JsonSchemaValue:
    """``schema`` or null, in the document's form."""
    if schema.keys() == {"anyOf"}:
        branches = list(schema["anyOf"])
        for i, branch in enumerate(branches):
            if branch.keys() == {"type"} and isinstance(branch["type"], str):
                branches[i] = {"type": [branch["type"], "null"]}
                return {"anyOf": branches}
        return {"anyOf": [*branches, NULL]}
    if isinstance(schema.get("type"), str) and not schema.keys() & (ANNOTATIONS | {"$ref"}):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, NULL]}


class DocumentSchema(GenerateJsonSchema):
    """pydantic's generator, writing the document's form (see the module's docstring)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        if schema["cls"].model_config.get("title") is None:
            json_schema.pop("title", None)
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
            json_schema.pop("type", None)
        return json_schema


class Component(BaseModel):
    """A model that is one component schema; a subclass of a component extends it (allOf).

    A class may add keywords to its own schema (not its subclasses') with a static method
    ``more_keywords(handler) -> dict``, given pydantic's handler to reference other models.
    """

    model_config = ConfigDict(regex_engine="python-re")  # the patterns look ahead

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        parent = cls.__bases__[0]
        if parent is not Component:
            json_schema = _extension(cls, parent, handler.resolve_ref_schema(json_schema), handler)
        more = vars(cls).get("more_keywords")
        if more is not None:
            json_schema.update(more(handler))
        return json_schema


def _extension(
    cls: type[BaseModel],
    parent: type[BaseModel],
    whole: JsonSchemaValue,
    handler: GetJsonSchemaHandler,
) -> JsonSchemaValue:
    """``allOf`` [the parent, the fields ``cls`` declares or redeclares] with its own words."""
    own = [name for name in vars(cls).get("__annotations__", {}) if name in cls.model_fields]
    branch: dict[str, Any] = {
        "type": "object",
        "properties": {name: whole["properties"][name] for name in own},
    }
    required = [name for name in own if name in whole.get("required", [])]
    if required:
        branch["required"] = required
    extension: dict[str, Any] = {}
    title = cls.model_config.get("title")
    if title is not None:
        extension["title"] = title
    if "description" in whole:
        extension["description"] = whole["description"]
    extension["allOf"] = [handler(parent.__pydantic_core_schema__), branch]
    return extension
