"""Talking to Temporal from outside a workflow: registering the search attributes,
starting a campaign's workflow, and signalling it."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from touchwave.campaigns import CampaignInfo
from touchwave.config import Settings
from workflows import attributes
from workflows.campaign import CampaignInput, CampaignWorkflow
from workflows.trigger import TriggerInput, TriggerWorkflow

_INDEXED = {
    "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
}


async def register_search_attributes(client: Client) -> None:
    """Add touchwave's search attributes to the namespace where they are missing (idempotent)."""
    try:
        known = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
        present = set(known.custom_attributes)
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server cannot list them
            raise
        present = set()
    missing = {key.name: _INDEXED[key.indexed_value_type.name] for key in attributes.ALL if key.name not in present}
    if missing:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing))
        except RPCError as exc:
            if exc.status != RPCStatusCode.ALREADY_EXISTS:  # another worker registered them first
                raise


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` arguments that register the search attributes at boot."""
    flags = []
    for key in attributes.ALL:
        flags += ["--search-attribute", f"{key.name}={key.indexed_value_type.name.title()}"]
    return flags


async def start_campaign(client: Client, campaign: CampaignInfo, task_queue: str, workflow_id: str | None = None,
                         **options) -> WorkflowHandle:
    """Start the campaign's workflow (id `campaign-<id>` unless given), searchable by id,
    template, status and business line: a `CampaignWorkflow` for a bulk campaign, a
    `TriggerWorkflow` for an event-triggered one. `options` are `CampaignInput` fields
    (shard size, time scale…) or `TriggerInput` fields (time scale, how often to look)."""
    if campaign.plan.trigger is not None:
        run, argument = TriggerWorkflow.run, TriggerInput(campaign.id, campaign.plan.to_dict(), **options)
    else:
        # channels with workers of their own (TOUCHWAVE_CHANNEL_QUEUES) send from those
        options.setdefault("channel_queues", Settings.from_env().channel_queues)
        run, argument = CampaignWorkflow.run, CampaignInput(campaign.id, campaign.plan.to_dict(), **options)
    return await client.start_workflow(
        run,
        argument,
        id=workflow_id or campaign.workflow_id,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(attributes.CAMPAIGN_ID, campaign.id),
            SearchAttributePair(attributes.TEMPLATE, campaign.template),
            SearchAttributePair(attributes.STATUS, "starting"),
            SearchAttributePair(attributes.BUSINESS_LINE, campaign.plan.business_line),
        ]),
    )
