"""hall-appliance: the county service-hall scanning appliance."""

__version__ = "0.1.0"
