"""Ordered delivery, opt-in per endpoint: the rule, in one place.

An event may carry an ordering key (`orderingKey`: a customer id, an order number; a mapping
job's or report job's events use the job id). An endpoint whose config has
`orderedDelivery: true` receives the events of one key one at a time, in the order they were
accepted (event id order: ids are ULIDs, monotonic within a process, libs/domain/ids.py):

- the head of a (endpoint, key) line, its earliest unfinished delivery, is the only one
  attempted; its retries run as usual;
- the next one waits, HELD, until the head is SUCCEEDED, FAILED or DEAD, or PARKED (its
  endpoint went INACTIVE: the ones behind it are then parked in turn, each kept for a
  recover, which sends them again in line order);
- a line holds back only itself: other keys, and events without a key, go in parallel;
- a delivery reopened by hand (a manual retry, a recover) rejoins its line: HELD while the
  line has a head, released in event order when it ends; the head itself when there is none
  (of several reopened at once, only the earliest);
- an earlier event of the same key that is accepted but not fanned out yet also holds the
  later ones back (the dispatcher may take events in any order).

Unordered endpoints and events without a key never meet any of this: their deliveries are
written and sent exactly as before (libs/delivery/ordering.py keeps the SQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.domain.endpoint_kinds import DeliveryStatus

ORDERED_DELIVERY = "orderedDelivery"  # the endpoint config's switch
MAX_ORDERING_KEY_LENGTH = 128

# A head in one of these no longer holds its line: the next delivery goes. PARKED is one: a
# head kept unsent while its endpoint is INACTIVE would otherwise hold HELD deliveries that
# can only be parked too; a recover puts them all back in their line (libs/delivery/
# ordering.py `rejoin`), in event order. Backpressure still counts only HELD and PENDING.
RELEASES_LINE = frozenset(
    {DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.DEAD, DeliveryStatus.PARKED}
)


def is_ordered(config: Mapping[str, Any]) -> bool:
    """Does this endpoint config ask for ordered delivery? (The dispatcher asks the same in
    SQL, `config @> '{"orderedDelivery": true}'`, services/dispatcher/repository.py.)"""
    return config.get(ORDERED_DELIVERY) is True
