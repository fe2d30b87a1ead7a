"""The counter API and staff UI server (FastAPI): ``create_app`` builds it from the settings."""

from appliance.api.app import create_app

__all__ = ["create_app"]
