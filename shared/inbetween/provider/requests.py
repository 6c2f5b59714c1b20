"""The one place a job's spec becomes the provider's create request (intake validates with it before
paying, admission sends it)."""

from __future__ import annotations

from inbetween.domain.catalog import provider_model_name
from inbetween.domain.models import JobSpec
from inbetween.provider.models import CreateTaskRequest


def task_request(
    spec: JobSpec, *, region: str, first_frame_url: str, last_frame_url: str | None
) -> CreateTaskRequest:
    """``spec`` as a create request for ``region``. An effect template's video follows the template, not
    a prompt, so none is sent (the validator refuses a template with a last frame, before paying)."""
    return CreateTaskRequest(
        model=provider_model_name(spec.model, region),
        first_frame_url=first_frame_url,
        last_frame_url=last_frame_url,
        prompt=None if spec.template else spec.prompt,
        negative_prompt=spec.negative_prompt,
        template=spec.template,
        resolution=spec.resolution,
        prompt_extend=spec.prompt_extend,
        watermark=spec.watermark,
        seed=spec.seed,
    )
