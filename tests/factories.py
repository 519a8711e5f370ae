"""Builders of realistic test data shared by the test layers."""

from __future__ import annotations

from speako.config.v1 import resources_pb2 as r


def valid_config(greeting: str = "Thanks for calling {business_name}, this is {agent_name}.") -> r.AgentConfig:
    """A config that passes the pre-launch checklist with no errors."""
    return r.AgentConfig(
        greetings=r.Greetings(
            opening_greeting=greeting,
            after_hours_message="We are closed right now, {caller_name}.",
        ),
        voice=r.Voice(voice_id="aria", primary_language="en-US", additional_languages=["es-MX"]),
        personality=r.Personality(
            name="Ava", tone=r.Personality.TONE_FRIENDLY, prompt="You are the front desk of a dental clinic."
        ),
        tools=[
            r.Tool(id="transfer", type=r.Tool.TYPE_TRANSFER_CALL, enabled=True, transfer_number="+14155550100"),
            r.Tool(id="book", type=r.Tool.TYPE_WEBHOOK, enabled=True, url="https://example.com/book"),
        ],
        knowledge=r.Knowledge(faqs=[r.Faq(question="Where are you?", answer="Main Street 1.")]),
        flow=r.Flow(
            start_node_id="start",
            nodes=[
                r.FlowNode(id="start", type=r.FlowNode.TYPE_START, next_node_ids=["greet"]),
                r.FlowNode(id="greet", type=r.FlowNode.TYPE_SAY, prompt="Greet", next_node_ids=["ask"]),
                r.FlowNode(id="ask", type=r.FlowNode.TYPE_ASK, prompt="How can I help?", next_node_ids=["bye", "xfer"]),
                r.FlowNode(id="xfer", type=r.FlowNode.TYPE_TRANSFER),
                r.FlowNode(id="bye", type=r.FlowNode.TYPE_END_CALL),
            ],
        ),
        business_hours=r.BusinessHours(
            time_zone="America/New_York",
            windows=[r.OpeningWindow(day=r.OpeningWindow.DAY_OF_WEEK_MONDAY, open_time="09:00", close_time="17:00")],
        ),
        fallback_message="Sorry, I did not catch that.",
        pronunciations={"Speako": "speak-oh"},
    )
