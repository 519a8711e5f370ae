"""The service chassis: what every Speako service needs, written once.

Settings, gRPC server bootstrap (health, reflection, interceptors, graceful shutdown), error
mapping, resource names, auth, PostgreSQL pool and migrations, RabbitMQ topology, the outbox and
telemetry. Services compose these in their own ``main.py``.
"""
