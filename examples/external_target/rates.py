"""The "remote" the converter calls: a plain function, reached through external_target.

`service.py` names it by import path (`"rates:quote"`), resolved once when the service
loads. The framework puts the service's folder on `sys.path`, so this sibling module
imports from any working directory.
"""

from datetime import datetime, timezone
from decimal import Decimal

RATES = {("EUR", "USD"): Decimal("1.0850"), ("USD", "EUR"): Decimal("0.9217"),
         ("EUR", "GBP"): Decimal("0.8561")}


def quote(base: str, quote: str) -> dict:
    """Today's rate of `base` in `quote`; raises KeyError for an unknown pair."""
    rate = Decimal(1) if base == quote else RATES[(base, quote)]
    return {"rate": rate, "as_of": datetime(2030, 1, 1, tzinfo=timezone.utc)}
