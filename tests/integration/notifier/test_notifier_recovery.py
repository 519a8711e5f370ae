"""The notifier keeps working through a dropped broker connection, a dead LISTEN connection and poison events."""

from __future__ import annotations

import asyncio
import subprocess
from urllib.parse import urlsplit

import aio_pika
import asyncpg

from chassis import broker
from services.notifier.messaging import JOB_EVENTS_QUEUE
from speako.events.v1 import events_pb2
from speako.notifier.v1 import notifier_service_pb2 as svc
from tests.integration.notifier.notifier_support import (
    S,
    collect,
    get_job,
    job_name,
    make_job,
    md,
    open_events,
    wait_for,
)


async def test_consumer_resumes_after_the_broker_drops_its_connection(cluster, events, token, amqp_url):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    before = job_name()
    await events.publish(make_job(before, S.STATE_SUBMITTED), 1)
    await wait_for(lambda: get_job(r.stub, before, meta))
    vhost = urlsplit(amqp_url).path.lstrip("/")
    await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "close_all_connections", "-p", vhost, "notifier recovery test"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    connection, fresh = await open_events(amqp_url)
    try:
        after = job_name()
        await fresh.publish(make_job(after, S.STATE_SUBMITTED), 1)
        job = await wait_for(lambda: get_job(r.stub, after, meta), timeout=30)
        assert job.state == S.STATE_SUBMITTED
    finally:
        await connection.close()


async def test_updates_keep_flowing_when_the_listen_connection_dies(cluster, events, token, database_url):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    stream = r.stub.WatchPublishJobs(svc.WatchPublishJobsRequest(parent="tenants/acme"), metadata=meta, timeout=20)
    await wait_for(lambda: _subscribed(r))
    admin = await asyncpg.connect(database_url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'speako-notifier-feed'"
        )
        assert killed == 1
        name = job_name()
        await events.publish(make_job(name, S.STATE_SUBMITTED), 1)
        [update] = await collect(stream, 1)
        assert update.job.name == name
        # The tailer listens again.
        await wait_for(lambda: _listeners(admin), timeout=15)
    finally:
        stream.cancel()
        await admin.close()


async def _subscribed(replica):
    return replica.app.notifier.hub.subscriber_count() >= 1


async def _listeners(admin):
    return await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'speako-notifier-feed'"
    )


async def test_poison_events_go_to_the_dead_letter_queue_and_the_rest_flow_on(cluster, events, token, amqp_url):
    r = await cluster.start()
    meta = md(token(["viewer"]))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(broker.EVENTS_EXCHANGE)
        junk = aio_pika.Message(b"\xff junk", content_type=broker.CONTENT_TYPE, type="speako.events.v1.JobStateChanged")
        await exchange.publish(junk, routing_key="job.submitted", mandatory=True, timeout=10)
        bad_name = events_pb2.JobStateChanged(
            job=make_job("tenants/acme/agents/x/jobs/1", S.STATE_SUBMITTED), sequence=1
        )
        await exchange.publish(broker.encode(bad_name), routing_key="job.submitted", mandatory=True, timeout=10)
        good = job_name()
        await events.publish(make_job(good, S.STATE_SUBMITTED), 1)
        await wait_for(lambda: get_job(r.stub, good, meta))

        async def dead_letters():
            queue = await channel.declare_queue(f"{JOB_EVENTS_QUEUE}.dead-letter", passive=True)
            return queue.declaration_result.message_count == 2

        await wait_for(dead_letters)
    finally:
        await connection.close()
