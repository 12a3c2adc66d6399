"""Validating OpenLineage events offline: the package's facet schemas, on top of the
rules of an OpenLineage 2-0-2 run event.

openlineage-python ships the spec as Python classes, not as its JSON Schema documents,
and nothing may be fetched while testing. So ``CORE`` restates, as JSON Schema, what
these tests hold every event to (the run event's required keys and formats, the
datasets' and the facets' shapes, every facet's ``_producer`` and ``_schemaURL``), and
is registered under the spec's ``$id``: the ``$ref`` of each custom facet schema to its
base facet resolves to it, and a consumer holding the real spec resolves the same
references to the real one.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

CORE_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
URI = {"type": "string", "format": "uri"}


def _facets(kind: str) -> dict:
    return {"type": "object", "additionalProperties": {"$ref": f"#/$defs/{kind}"}}


def _facet(*extra: dict) -> dict:
    return {"allOf": [{"$ref": "#/$defs/BaseFacet"}, *extra]}


DELETABLE = {"type": "object", "properties": {"_deleted": {"type": "boolean"}}}
NAMED = {
    "type": "object",
    "required": ["namespace", "name"],
    "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}},
}

CORE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": CORE_ID,
    "$ref": "#/$defs/RunEvent",
    "$defs": {
        "RunEvent": {
            "type": "object",
            "required": ["eventTime", "producer", "schemaURL", "eventType", "run", "job"],
            "properties": {
                "eventTime": {"type": "string", "format": "date-time"},
                "producer": URI,
                "schemaURL": URI,
                "eventType": {"enum": ["START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"]},
                "run": {"$ref": "#/$defs/Run"},
                "job": {"$ref": "#/$defs/Job"},
                "inputs": {"type": "array", "items": {"$ref": "#/$defs/InputDataset"}},
                "outputs": {"type": "array", "items": {"$ref": "#/$defs/OutputDataset"}},
            },
        },
        "Run": {
            "type": "object",
            "required": ["runId"],
            "properties": {
                "runId": {"type": "string", "format": "uuid"},
                "facets": _facets("RunFacet"),
            },
        },
        "Job": {"allOf": [NAMED, {"properties": {"facets": _facets("JobFacet")}}]},
        "Dataset": {"allOf": [NAMED, {"properties": {"facets": _facets("DatasetFacet")}}]},
        "InputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {"properties": {"inputFacets": _facets("InputDatasetFacet")}},
            ]
        },
        "OutputDataset": {
            "allOf": [
                {"$ref": "#/$defs/Dataset"},
                {"properties": {"outputFacets": _facets("OutputDatasetFacet")}},
            ]
        },
        "BaseFacet": {
            "type": "object",
            "required": ["_producer", "_schemaURL"],
            "properties": {"_producer": URI, "_schemaURL": URI},
        },
        "RunFacet": _facet(),
        "JobFacet": _facet(DELETABLE),
        "DatasetFacet": _facet(DELETABLE),
        "InputDatasetFacet": _facet(),
        "OutputDatasetFacet": _facet(),
    },
}

FORMATS = FormatChecker()


@FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: Any) -> bool:
    return not isinstance(value, str) or str(UUID(value)) == value.lower()


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: Any) -> bool:
    # A scheme, then something: what `_producer` and `_schemaURL` must at least be
    # (the uri checker of jsonschema needs a package this project does not install).
    scheme, colon, rest = value.partition(":") if isinstance(value, str) else ("a", ":", "b")
    return bool(colon and rest and scheme[:1].isalpha())


def package_schemas() -> dict[str, dict]:
    """The facet schemas shipped in the package, by ``$id``."""
    folder = resources.files("alamode_airflow") / "openlineage_schemas"
    found = {}
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            schema = json.loads(item.read_text())
            found[schema["$id"]] = schema
    return found


def registry() -> Registry:
    documents = {CORE_ID: CORE, **package_schemas()}
    return Registry().with_resources(
        (uri, Resource.from_contents(doc)) for uri, doc in documents.items()
    )


def problems(event: dict) -> list[str]:
    """What is wrong with ``event`` against the core rules, and each facet whose
    ``_schemaURL`` names a shipped schema against that schema; empty when valid."""
    reg = registry()
    found = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in Draft202012Validator(CORE, registry=reg, format_checker=FORMATS).iter_errors(event)
    ]
    known = {uri for uri in package_schemas()}
    for path, facet in facets_of(event):
        url = facet.get("_schemaURL", "")
        if url.split("#")[0] in known:
            check = Draft202012Validator({"$ref": url}, registry=reg, format_checker=FORMATS)
            found += [f"{path}: {e.message}" for e in check.iter_errors(facet)]
    return found


def facets_of(event: dict) -> list[tuple[str, dict]]:
    """Every facet of ``event`` with where it is (``outputs/0/facets/alamode_output``)."""
    places = [("run", event.get("run", {})), ("job", event.get("job", {}))]
    for kind in ("inputs", "outputs"):
        places += [(f"{kind}/{i}", d) for i, d in enumerate(event.get(kind, []))]
    found = []
    for where, holder in places:
        for key in ("facets", "inputFacets", "outputFacets"):
            found += [(f"{where}/{key}/{n}", f) for n, f in (holder.get(key) or {}).items()]
    return found
