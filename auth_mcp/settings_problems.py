"""What is wrong with the configuration, in sentences that name the variable and where it came from.

`Settings` raises pydantic's ValidationError, which speaks of fields (`access_token_ttl`) and
types ("Input should be a valid integer"). An operator set `AUTH_MCP_ACCESS_TOKEN_TTL` in the
environment, in `.env`, or a command-line flag: `load_settings` reports every mistake at once
in those terms, including the checks across settings, which pydantic runs only once every
single value is valid (we run them again with the bad values set aside). Names with our prefix
that are no setting at all (`AUTH_MCP_DATABSE_URL`) are silently ignored by pydantic-settings;
`unknown_setting_names` finds them and suggests the likely intended one.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import SecretStr, ValidationError

from auth_mcp.settings import Settings

PREFIX = "AUTH_MCP_"
# Our names that are not settings of the server (read by the test suite).
_OTHER_NAMES = {"AUTH_MCP_TEST_POSTGRES"}
# Where command-line flags go; they win over the environment.
CLI_FLAGS = {"host": "--host", "port": "--port", "transport": "--transport"}


class ConfigurationError(Exception):
    """The configuration cannot be used; `problems` are the sentences, one per mistake."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Sources:
    """Where values can come from: the environment (wins), the `.env` file, command-line flags."""

    environ: Mapping[str, str]
    dotenv: Mapping[str, str | None]
    flags: Mapping[str, Any]

    @classmethod
    def read(cls, *, flags: Mapping[str, Any], env_file: str | Path | None = ".env") -> Sources:
        dotenv = dotenv_values(env_file) if env_file is not None and Path(env_file).is_file() else {}
        return cls(environ=dict(os.environ), dotenv=dotenv, flags=dict(flags))

    def origin(self, field: str) -> str:
        if field in self.flags:
            return CLI_FLAGS.get(field, field)
        name = variable_name(field)
        if _lookup(self.environ, name) is not None:
            return "the environment"
        if _lookup(self.dotenv, name) is not None:
            return ".env"
        return "the default"


def variable_name(field: str) -> str:
    return PREFIX + field.upper()


def _lookup(values: Mapping[str, Any], name: str) -> Any:
    # pydantic-settings matches names case-insensitively.
    for key, value in values.items():
        if key.upper() == name:
            return value
    return None


def load_settings(sources: Sources, *, env_file: str | Path | None = ".env") -> Settings:
    """`Settings` from the environment, `.env` and `flags`, or ConfigurationError naming every mistake."""
    try:
        return Settings(_env_file=env_file, **sources.flags)
    except ValidationError as exc:
        problems = [_field_problem(error, sources) for error in exc.errors() if error["loc"]]
        problems += _cross_problems(exc)
        bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        if bad:
            # Check the rest with the bad values set aside, so that every mistake shows at once.
            defaults = {field: Settings.model_fields[field].get_default(call_default_factory=True) for field in bad}
            try:
                Settings(_env_file=env_file, **{**sources.flags, **defaults})
            except ValidationError as again:
                problems += [p for p in _cross_problems(again) if p not in problems]
        raise ConfigurationError(problems) from None


def _cross_problems(exc: ValidationError) -> list[str]:
    """Checks across settings (the model validator): their messages already name the variables."""
    problems: list[str] = []
    for error in exc.errors():
        if not error["loc"]:
            problems += [line for line in error["msg"].removeprefix("Value error, ").split("\n") if line]
    return problems


def _field_problem(error: Any, sources: Sources) -> str:
    field = str(error["loc"][0])
    origin = sources.origin(field)
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith(PREFIX):
        # Our own validators already name the variable.
        return f"{message} (from {origin})"
    value = error.get("input")
    secret = isinstance(Settings.model_fields[field].annotation, type) and issubclass(
        Settings.model_fields[field].annotation, SecretStr  # type: ignore[arg-type]
    )
    if secret or "secret" in field:
        shown = "(hidden)"
    else:
        # As written in the environment or .env; quoted only when that would be ambiguous.
        shown = value if isinstance(value, str) and value and not any(c.isspace() for c in value) else repr(value)
    if origin.startswith("--"):
        return f"{origin} {value}: {_plain(message, error)}"
    return f"{variable_name(field)}={shown} (from {origin}): {_plain(message, error)}"


def _plain(message: str, error: Any) -> str:
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind == "bool_parsing":
        return "must be true or false"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = {"greater_than_equal": "at least", "less_than_equal": "at most", "greater_than": "more than", "less_than": "less than"}
        limit = next(iter(context.values()), "?")
        return f"must be {bounds[kind]} {limit}"
    if kind == "literal_error":
        return f"must be one of {context.get('expected', '')}"
    return message[:1].lower() + message[1:]


def unknown_setting_names(sources: Sources, *, known: Iterable[str] | None = None) -> list[str]:
    """A warning for each `AUTH_MCP_*` name in the environment or `.env` that is no setting."""
    names = set(known) if known is not None else {variable_name(field) for field in Settings.model_fields}
    warnings: list[str] = []
    for origin, values in (("the environment", sources.environ), (".env", sources.dotenv)):
        for key in sorted(values):
            upper = key.upper()
            if not upper.startswith(PREFIX) or upper in names or upper in _OTHER_NAMES:
                continue
            guess = difflib.get_close_matches(upper, sorted(names), n=1, cutoff=0.75)
            hint = f"; did you mean {guess[0]}?" if guess else "; see .env.example for the settings"
            warnings.append(f"{key} (in {origin}) is not an auth-mcp setting and is ignored{hint}")
    return warnings
