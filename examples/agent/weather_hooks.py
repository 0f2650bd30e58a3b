"""Local tools for examples/agent/agent.yaml: the model calls them, taskengine runs them.

    taskengine run examples/agent/agent.yaml --hooks examples/agent/weather_hooks.py \
      --input "Do I need an umbrella in Oslo tomorrow?"
"""

from taskengine import hook

FORECASTS = {
    "oslo": {"sky": "rain", "high_c": 9},
    "madrid": {"sky": "sunny", "high_c": 24},
}


@hook("weather")
def forecast(city: str, days: int = 1) -> dict:
    """Weather forecast for a city.

    Args:
        city: City name, e.g. Oslo.
        days: How many days ahead (1 = tomorrow).
    """
    found = FORECASTS.get(city.strip().lower(), {"sky": "unknown", "high_c": None})
    return {"city": city, "days": days, **found}


@hook("weather")
def alerts(city: str) -> list:
    """Active severe-weather alerts for a city.

    Args:
        city: City name.
    """
    return []
