"""Pydantic validation of driver arguments: intake renders bad user parameters silently, we refuse them."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, PositiveInt, ValidationError, field_validator, model_validator

from perc_platform.errors import ParameterError

__all__ = ["EerParams", "SourceParams", "validate_params"]

P = TypeVar("P", bound="SourceParams")


class SourceParams(BaseModel):
    """Base of every driver's parameter model: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_unset(cls, data: Any) -> Any:
        # Catalog templates render an unset parameter as "" (and None as "None"), which means "not given": the
        # field's default applies. Intake builds the source with default arguments when an entry is first
        # accessed, so required fields keep "" (and fail at the first read, with the path named).
        if isinstance(data, dict):
            optional = {n for n, f in cls.model_fields.items() if not f.is_required()}
            return {k: v for k, v in data.items() if not (k in optional and (v is None or v in ("", "None")))}
        return data


class EerParams(SourceParams):
    """The EER rendering options of drivers that may read EER movies (passed on as format options)."""

    super_resolution: int | None = None  # 1, 2 or 4
    frames_per_fraction: PositiveInt | None = None  # raw frames per fraction
    remainder: Literal["drop", "keep"] | None = None  # a last, shorter group of raw frames

    @field_validator("super_resolution")
    @classmethod
    def _factor(cls, value: int | None) -> int | None:
        if value not in (None, 1, 2, 4):
            raise ValueError("EER renders at super_resolution 1, 2 or 4")
        return value


def validate_params(model: type[P], driver: str, **kwargs: Any) -> P:
    """Validate ``kwargs`` for ``driver`` or raise ParameterError naming each bad parameter and the fix."""
    try:
        return model(**kwargs)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            value = err.get("input")
            problems.append(f"{name}={value!r}: {err['msg']}")
        fields = ", ".join(f"{n}: {f.annotation}" for n, f in model.model_fields.items())
        raise ParameterError(f"bad parameter(s) for the {driver!r} catalog source: {'; '.join(problems)}. "
                             f"It takes {fields}.") from None
