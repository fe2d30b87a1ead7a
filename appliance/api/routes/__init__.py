"""One router per area of the counter API (``docs/api.md``)."""
