"""`BILLING_<NAME>_FILE`: a setting's value read from a file, for Docker and Kubernetes secrets.

Container platforms hand secrets over as files (`/run/secrets/…`) so that they stay out of the
environment, which `docker inspect`, `/proc/<pid>/environ` and crash reporters show. Any setting
can be given this way; the file's content, without its trailing newline, is the value. Setting
both `BILLING_X` and `BILLING_X_FILE` is a configuration error rather than a silent preference,
and so is a file that cannot be read. An empty `BILLING_X_FILE` counts as unset, so that a
compose file can pass the variable through (`${BILLING_X_FILE:-}`) without forcing it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from ..errors import ConfigurationError


class SecretFilesSource(PydanticBaseSettingsSource):
    """Values from the files named by `<prefix><NAME>_FILE` variables, for every field."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads every field at once

    def __call__(self) -> dict[str, Any]:
        prefix = self.config.get("env_prefix", "")
        values: dict[str, Any] = {}
        for name in self.settings_cls.model_fields:
            variable = f"{prefix}{name}".upper()
            path = os.environ.get(f"{variable}_FILE", "")
            if not path:
                continue
            if os.environ.get(variable):
                raise ConfigurationError(f"{variable} and {variable}_FILE are both set: keep one")
            try:
                values[name] = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigurationError(f"{variable}_FILE: cannot read {path} ({exc.strerror})") from None
        return values
