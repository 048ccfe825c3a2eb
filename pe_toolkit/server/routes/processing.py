"""Processing jobs: submit, poll, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...store import ConversationFilter
from ..envelope import JSONBytes, not_found, ok
from ..models import ExportParameters, JobParameters, SubmitIn, json_body, validated
from ._common import base_url, mirror, require_dataset

router = APIRouter()


@router.post("/v1/processing/submit", status_code=201, summary="Queue a quality_validation, analysis or export job")
async def submit(request: Request) -> JSONBytes:
    body = validated(SubmitIn, await json_body(request))
    m = mirror(request)
    if body.processing_type == "export":
        params: Any = validated(ExportParameters, body.parameters, prefix="parameters")
    else:
        params = validated(JobParameters, body.parameters, prefix="parameters")
        m.require_analysis()
    chosen = params.model_dump(exclude_none=True)

    def create() -> dict[str, Any]:
        require_dataset(request, body.dataset_name)
        dataset = None if body.dataset_name == "*" else body.dataset_name
        count = m.count(ConversationFilter(dataset=dataset, tier=params.tier, min_quality=params.min_quality))
        if body.processing_type == "export":
            filters = {k: v for k, v in chosen.items() if k != "format"}
            info = m.exports.create(dataset=body.dataset_name, fmt=params.format, filters=filters, count=count, download_base=base_url(request))
            job = m.jobs.get(info["export_id"])
            extra = {"export_id": info["export_id"], "download_url": info["download_url"]}
        else:
            job = m.jobs.submit(body.processing_type, body.dataset_name, chosen, size=count)
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
            **extra,
        }

    data = await run_in_threadpool(create)
    return ok(request, data, "Job submitted", status=201)


@router.get("/v1/processing/jobs/{job_id}", summary="A job's status, progress and results")
def get_job(request: Request, job_id: str) -> JSONBytes:
    job = mirror(request).jobs.get(job_id[:200])
    if job is None:
        raise not_found(f"job {job_id[:200]!r}")
    return ok(request, job.as_api(), "Job retrieved")


@router.delete("/v1/processing/jobs/{job_id}", summary="Cancel a queued or running job (mirror extension)")
def cancel_job(request: Request, job_id: str) -> JSONBytes:
    job = mirror(request).jobs.cancel(job_id[:200])
    if job is None:
        raise not_found(f"job {job_id[:200]!r}")
    return ok(request, job.as_api(), "Cancellation requested" if job.status in ("queued", "running") else f"Job already {job.status}")
