"""Launchers of real servers for the tests, benchmarks and examples of a checkout.

Not part of the llmemo package (the wheel ships src/llmemo only): a real `redis-server`, Redis
Stack, a Redis Cluster, and a local Upstash REST gateway, each on free loopback ports. Tests
import them directly (pytest puts the checkout on sys.path); bench/ and examples/ scripts add the
checkout to sys.path first.
"""
