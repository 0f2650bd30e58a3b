"""Local hooks for examples/ticket_router.yaml: `taskengine run … --hooks examples/ticket_hooks.py`."""

import zlib

from taskengine import hook

SLA_HOURS = {"urgent": 4, "high": 8, "normal": 24, "low": 72}


@hook("tickets")
def assign(team: str, customer: str, priority: str = "normal") -> dict:
    """Assign a ticket to a team and work out its SLA.

    Args:
        team: The team that takes the ticket.
        customer: Who raised it.
        priority: urgent, high, normal or low.
    """
    ticket_id = f"T-{zlib.crc32(f'{customer}/{team}'.encode()) % 100000:05d}"
    return {
        "ticket_id": ticket_id,
        "team": team,
        "customer": customer,
        "priority": priority,
        "sla_hours": SLA_HOURS.get(priority, 24),
    }
