"""Everything MQTT: topics, payloads, the bus, broker files and device simulators.

No Flask, no SQLAlchemy: the server and the simulators both build on this.
"""
