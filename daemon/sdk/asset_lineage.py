"""Kestra's `assets` property of every task and trigger (AbstractTrigger and Task's
`Property<AssetsDeclaration>`): the data assets a task reads (`inputs`) and writes
(`outputs`), for Kestra's asset catalogue and lineage.

podium keeps no asset catalogue: a declaration is checked for its shape (each asset has an
`id`; an output also its `type`) and kept with the flow, so that flows that declare assets
load and run as they do in Kestra; nothing is registered or shown from it.
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from daemon.sdk.properties import Model


class AssetIdentifier(Model):
    """An asset read by the task, by its id (and namespace, tenant)."""

    id: str
    namespace: str | None = None
    tenant_id: str | None = None


class AssetsDeclaration(Model):
    enable_auto: bool = False
    """Register assets a task reports at run time besides the declared ones (Kestra)."""
    inputs: list[AssetIdentifier] | None = None
    outputs: list[dict[str, Any]] | None = None
    """Kestra's Asset: `id`, `type` (TABLE...), and the type's own fields (namespace,
    displayName, description, system, database, schema, name, metadata...)."""

    @field_validator("outputs")
    @classmethod
    def _identified(cls, outputs: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        for n, asset in enumerate(outputs or []):
            missing = [k for k in ("id", "type") if not isinstance(asset.get(k), str)]
            if missing:
                raise ValueError(f"outputs[{n}] needs {' and '.join(missing)} (text)")
        return outputs
