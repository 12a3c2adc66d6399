"""The custom OpenLineage facets as the client's classes, and the ``OperatorLineage``
the provider takes. Imported only when the OpenLineage provider asks an operator for
its lineage (``openlineage.OpenLineageMixin``): this module needs the provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.generated.base import DatasetFacet, InputDatasetFacet, JobFacet

from alamode_airflow.openlineage import (
    INPUT_FACET,
    JOB_FACET,
    OUTPUT_FACET,
    PRODUCER,
    dataset_name,
    schema_url,
)


class _Shipped:
    """A facet whose schema ships in the package, named as its class."""

    __slots__ = ()

    @classmethod
    def _get_schema(cls) -> str:
        return schema_url(cls.__name__)


# Field names are camelCase, as OpenLineage's own facets' are.
@attr.define(kw_only=True)
class AlamodeJobFacet(_Shipped, JobFacet):
    outputId: str
    partitioned: bool
    sha: str | None = None
    image: str | None = None


@attr.define(kw_only=True)
class AlamodeOutputDatasetFacet(_Shipped, DatasetFacet):
    outputId: str
    generation: int
    manifestDigest: str
    files: int
    bytes: int
    reused: bool
    producedBy: dict[str, Any]


@attr.define(kw_only=True)
class AlamodeInputDatasetFacet(_Shipped, InputDatasetFacet):
    task: str
    outputId: str
    generation: int


def lineage(
    namespace: str,
    target: str,
    inputs: Mapping[str, str],
    job: Mapping[str, Any],
    output: Mapping[str, Any] | None,
    read: Mapping[str, Mapping[str, Any]],
) -> OperatorLineage:
    """One task's lineage: ``inputs`` are its input IDs by name, ``job``, ``output``
    and ``read`` (per input ID) the fields of its facets (``openlineage``'s builders);
    a missing ``output`` or ``read`` entry leaves that dataset without its facet."""
    out_facets = {}
    if output is not None:
        out_facets[OUTPUT_FACET] = AlamodeOutputDatasetFacet(producer=PRODUCER, **output)
    outputs = [OutputDataset(namespace, dataset_name(target), facets=out_facets)]
    datasets = []
    for output_id in dict.fromkeys(inputs.values()):  # one dataset per ID, in order
        fields = read.get(output_id)
        facets = {}
        if fields is not None:
            facets[INPUT_FACET] = AlamodeInputDatasetFacet(producer=PRODUCER, **fields)
        datasets.append(InputDataset(namespace, dataset_name(output_id), inputFacets=facets))
    return OperatorLineage(
        inputs=datasets,
        outputs=outputs,
        job_facets={JOB_FACET: AlamodeJobFacet(producer=PRODUCER, **job)},
    )
