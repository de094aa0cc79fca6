"""The decision engine: pure Python, no Flask, no SQLAlchemy, no MQTT.

Plain data in, plain decisions out, so every rule is testable without a server.
"""
