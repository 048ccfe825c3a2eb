"""Processing jobs: submit, poll, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...store import ConversationFilter
from ..envelope import JSONBytes, invalid, not_found, ok
from ..exports import download_url
from ..jobs import Job
from ..models import ExportJobParameters, JobParameters, SubmitIn, Tier, json_body, validated
from ._common import base_url, mirror, require_dataset

router = APIRouter()


@router.post("/v1/processing/submit", status_code=201, summary="Queue a quality_validation, analysis or export job")
async def submit(request: Request) -> JSONBytes:
    body = validated(SubmitIn, await json_body(request))
    m = mirror(request)
    model: type[JobParameters | ExportJobParameters]
    model = ExportJobParameters if body.processing_type == "export" else JobParameters
    if body.processing_type != "export":
        m.require_analysis()
    params: Any = validated(model, body.parameters, prefix="parameters")
    tier = _tier(params)
    chosen = params.model_dump(exclude_none=True, exclude={"tier_filter"}) | ({"tier": tier} if tier else {})
    # Stored and echoed: everything sent, the known options as applied.
    recorded = {**body.parameters, **chosen}
    unapplied = sorted(set(body.parameters) - set(model.model_fields))

    def create() -> dict[str, Any]:
        require_dataset(request, body.dataset_name)
        dataset = None if body.dataset_name == "*" else body.dataset_name
        count = m.count(ConversationFilter(dataset=dataset, tier=tier, min_quality=params.min_quality))
        if body.processing_type == "export":
            filters = {k: v for k, v in chosen.items() if k != "format"}
            info = m.exports.create(
                dataset=body.dataset_name, fmt=params.format, filters=filters, count=count,
                download_base=base_url(request), parameters=recorded,
                # A submitted job is always a new one ("queued"); the disk quotas hold.
                key_id=request.scope.get("state", {}).get("key_id"), reuse=False,
            )
            job = m.jobs.get(info["export_id"])
            extra = {"export_id": info["export_id"], "download_url": info["download_url"]}
        else:
            job = m.jobs.submit(body.processing_type, body.dataset_name, recorded, size=count)
            extra = {}
        assert job is not None
        api = job.as_api()
        return {
            "job_id": api["job_id"],
            "dataset_name": api["dataset_name"],
            "processing_type": api["processing_type"],
            "status": "queued",
            "submitted_at": api["submitted_at"],
            "estimated_completion": api["estimated_completion"],
            "parameters": api["parameters"],
            "conversations": count,
            "unapplied_parameters": unapplied,
            **extra,
        }

    data = await run_in_threadpool(create)
    return ok(request, data, "Job submitted", status=201)


@router.get("/v1/processing/jobs/{job_id}", summary="A job's status, progress and results")
def get_job(request: Request, job_id: str) -> JSONBytes:
    job = mirror(request).jobs.get(job_id[:200])
    if job is None:
        raise not_found(f"job {job_id[:200]!r}")
    return ok(request, _as_api(request, job), "Job retrieved")


@router.delete("/v1/processing/jobs/{job_id}", summary="Cancel a queued or running job (mirror extension)")
def cancel_job(request: Request, job_id: str) -> JSONBytes:
    jobs = mirror(request).jobs
    found = jobs.get(job_id[:200])
    # the status before this call (the job object changes under it): a queued
    # job is cancelled by this call, not "already cancelled"
    before = found.status if found is not None else None
    job = jobs.cancel(job_id[:200])
    if job is None or before is None:
        raise not_found(f"job {job_id[:200]!r}")
    done = before not in ("queued", "running")
    return ok(request, _as_api(request, job), f"Job already {before}" if done else "Cancellation requested")


def _as_api(request: Request, job: Job) -> dict[str, Any]:
    """A job's status; an export job's carries its ``download_url`` (the
    published SDK's scripts read it there, not in ``results``)."""
    found = job.as_api()
    if job.processing_type == "export":
        found["download_url"] = download_url(base_url(request), job.job_id)
    return found


def _tier(params: JobParameters | ExportJobParameters) -> Tier | list[Tier] | None:
    """The tier selection of ``tier`` and its upstream name ``tier_filter``
    (they must agree when both are sent)."""
    if params.tier is not None and params.tier_filter is not None and params.tier_filter not in (params.tier, [params.tier]):
        raise invalid("parameters.tier_filter", f"contradicts parameters.tier ({params.tier!r})")
    return params.tier if params.tier is not None else params.tier_filter
