"""Benchmark suite of Speako Publish: `python -m bench` (or `make bench`).

Measures the floors of the machine (PostgreSQL commit, RabbitMQ confirm and round trip on a quorum
queue, grpc.aio unary) and the platform's figures with the four services running as separate
processes, prints them and writes docs/PERFORMANCE.md.
"""
