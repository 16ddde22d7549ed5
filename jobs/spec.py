"""The job spec as command-line flags: one flag per `RestoreConfig` key, `--config FILE`, and
the rule that only flags the user actually passed override the file."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pipeline.config import ConfigError, RestoreConfig, is_secret
from pipeline.config import read_spec_file as config_read_spec_file

NOT_FLAGS = {"storage_options"}  # --storage-option KEY=VALUE, repeatable


class SpecError(click.ClickException):
    """An invalid job spec: exit status 2, like any usage error, and no traceback."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(f"invalid job spec: {message}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _option_for(field: dataclasses.Field, hint: Any, aliases: list[str]) -> click.Option:
    name = field.name
    help_text = field.metadata.get("help") or f"Job spec key `{name}`."
    metavar, choices = field.metadata.get("metavar"), field.metadata.get("choices")
    default = field.default if field.default is not dataclasses.MISSING else None
    decls = [_flag(name), *aliases, name]
    kinds = set(typing.get_args(hint)) or {hint}
    kinds.discard(type(None))
    if kinds == {bool}:
        if default is not False:  # on by default, or auto (None): both spellings
            decls[0] = f"{_flag(name)}/--no-{name.replace('_', '-')}"
            help_text += " [default: on]" if default else " [default: auto]"
        return click.Option(decls, is_flag=True, default=None, help=help_text)
    if choices:
        kind: Any = click.Choice(choices)
    elif kinds == {int}:
        kind = int
    elif kinds <= {int, float}:
        kind = float
    else:
        kind = str
    if default not in (None, ""):
        shown = ",".join(default) if isinstance(default, tuple) else default
        help_text += f" [default: {shown}]"
    return click.Option(decls, type=kind, default=None, metavar=metavar, help=help_text)


def spec_options(
    exclude: typing.Collection[str] = (), aliases: dict[str, list[str]] | None = None
) -> Callable[[Callable], Callable]:
    """Decorate a command with `--config`, one flag per spec key and `--storage-option`."""
    hints = typing.get_type_hints(RestoreConfig)
    skip = NOT_FLAGS | set(exclude)
    fields = [f for f in dataclasses.fields(RestoreConfig) if f.name not in skip]
    params = [
        click.Option(
            ["--config", "config_file"],
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FILE",
            help="YAML job spec; flags given on the command line override its keys.",
        ),
        *[_option_for(f, hints[f.name], (aliases or {}).get(f.name, [])) for f in fields],
        click.Option(
            ["--storage-option", "storage_option"],
            multiple=True,
            metavar="KEY=VALUE",
            help="fsspec storage option (repeatable), e.g. endpoint_url=http://host:8333; "
            "dots nest: client_kwargs.region_name=eu-west-1.",
        ),
    ]

    def decorate(func: Callable) -> Callable:
        func.__click_params__ = [*getattr(func, "__click_params__", []), *reversed(params)]
        return func

    return decorate


def spec_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(RestoreConfig)]


def parse_storage_options(pairs: typing.Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs as a (nested) dict; true/false and plain numbers become bools and
    numbers, everything else (and every secret-looking key) stays a string."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--storage-option {pair!r} must look like KEY=VALUE")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"--storage-option {key!r} nests under a plain value")
        node[leaf] = raw if is_secret(leaf) else _scalar(raw)
    return out


def storage_options_flag(pairs: typing.Iterable[str]) -> dict[str, Any]:
    """Parsed `--storage-option` values of a command; a malformed one is a usage error."""
    try:
        return parse_storage_options(pairs)
    except SpecError as exc:
        raise click.BadParameter(str(exc), param_hint="--storage-option") from None


def _scalar(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if re.fullmatch(r"-?(0|[1-9]\d*)", raw):
        return int(raw)
    if re.fullmatch(r"-?(0|[1-9]\d*)\.\d+", raw):
        return float(raw)
    return raw


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def quiet(ctx: click.Context) -> bool:
    """Whether `spl -q` asked for no progress."""
    return bool((ctx.find_root().obj or {}).get("quiet"))


def read_spec_file(path: Path) -> dict[str, Any]:
    """`pipeline.config.read_spec_file`, its error shown as a spec error (exit 2)."""
    try:
        return config_read_spec_file(path)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None


def passed_flags(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Spec keys whose flags were given (command line or environment), with their values."""
    given = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}
    keys = set(spec_keys()) - NOT_FLAGS
    return {
        key: value
        for key, value in params.items()
        if key in keys and ctx.get_parameter_source(key) in given
    }


def spec_from_cli(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """The spec a command was given: `--config` file, then flags, then --storage-option."""
    spec = read_spec_file(params["config_file"]) if params.get("config_file") else {}
    spec.update(passed_flags(ctx, params))
    if params.get("storage_option"):
        options = parse_storage_options(params["storage_option"])
        base = spec.get("storage_options") or {}
        if not isinstance(base, dict):
            raise SpecError("`storage_options` must be a mapping (e.g. {endpoint_url: ...})")
        spec["storage_options"] = _merge(base, options)
    return spec


def validate(spec: dict[str, Any]) -> RestoreConfig:
    """The validated config, or a SpecError naming the field and the allowed values."""
    try:
        return RestoreConfig.from_dict(dict(spec))
    except ConfigError as exc:
        raise SpecError(str(exc)) from None
    except TypeError as exc:  # e.g. a YAML list where a scalar belongs
        raise SpecError(str(exc)) from None
