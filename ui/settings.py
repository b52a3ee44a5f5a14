"""The UI's own settings: where the API is and, for the single-user loopback set-up, the
key to act with. The UI never builds the server's settings (which would load the
embedding model's package to read two values)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    api_url: str = Field(default="http://127.0.0.1:8000", alias="MEDCITE_API_URL")
    api_key: str | None = Field(default=None, alias="MEDCITE_API_KEY")
