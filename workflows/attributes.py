"""Search attributes of campaign workflows, so the Temporal UI lists and filters
campaigns (e.g. `TouchwaveStatus = 'running' AND TouchwaveBusinessLine = 'broadband'`).

They must be registered in the namespace before use: `touchwave.temporal.register_search_attributes`
does it for the worker, the dev stack and the tests.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CAMPAIGN_ID = SearchAttributeKey.for_int("TouchwaveCampaignId")
TEMPLATE = SearchAttributeKey.for_keyword("TouchwaveTemplate")
STATUS = SearchAttributeKey.for_keyword("TouchwaveStatus")
BUSINESS_LINE = SearchAttributeKey.for_keyword("TouchwaveBusinessLine")

ALL = (CAMPAIGN_ID, TEMPLATE, STATUS, BUSINESS_LINE)
