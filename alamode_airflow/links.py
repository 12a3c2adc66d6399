"""Links on our tasks in the Airflow UI, and the Assets that carry output IDs into
Airflow's own lineage views."""

from __future__ import annotations

from typing import Any

from alamode_airflow._compat import Asset, BaseOperatorLink

ASSET_GROUP = "alamode"


class OutputLocationLink(BaseOperatorLink):
    """The task's committed output (a ``file://`` or object-store URL), shown as a
    button on the task instance once it has produced its output."""

    name = "Output location"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        # Airflow 3 asks for the link right after the task finishes, in the same
        # process, and stores the answer in XCom for the UI.
        return getattr(operator, "committed_location", "") or ""


#: Airflow leaves a URI scheme starting with "x-" to its owner: no provider's
#: normaliser is looked up for it, and that lookup loads every provider's asset handlers
#: (about 0.35 s), once in every process that parses a DAG file.
ASSET_SCHEME = "x-alamode"


def output_asset(output_id: str) -> Asset:
    """The Asset a task updates when it commits ``output_id`` (its ID in the file; a
    partitioned output's own ID travels in the event's extra)."""
    return Asset(
        uri=f"{ASSET_SCHEME}://outputs/{output_id}",
        name=f"alamode/{output_id[:12]}",
        group=ASSET_GROUP,
    )
