"""Recording a customer's answer, wherever it was heard, and telling the call centre.

The database transaction (`contacts.respond`) is what makes completion win; withdrawing
call tasks already queued at the call centre happens right after it commits.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from channel_adapters.base import ChannelError
from channel_adapters.outbound import OutboundAdapter
from touchwave import contacts
from touchwave.contacts import Completion
from touchwave.store.models import Outcome

log = logging.getLogger(__name__)


def record_response(engine: Engine, campaign_id: int, msisdn: str, outcome: Outcome, channel: str,
                    outbound: OutboundAdapter | None = None, agent: str | None = None,
                    note: str | None = None) -> Completion:
    completion = contacts.respond(engine, campaign_id, msisdn, outcome, channel, agent, note)
    if completion.queued_calls and outbound is not None:
        try:
            withdrawn = outbound.withdraw(completion.queued_calls)
        except ChannelError as exc:
            log.warning("could not withdraw queued calls", extra={"campaign": campaign_id, "msisdn": msisdn,
                                                                   "error": str(exc)})
        else:
            contacts.mark_withdrawn(engine, withdrawn, "completed")
    log.info("response recorded", extra={"campaign": campaign_id, "msisdn": msisdn, "outcome": outcome.value,
                                         "channel": channel, "new": completion.recorded})
    return completion
