"""Devices: provisioning and secrets, commands to doors and their outcomes, and the broker's
password file and ACL. What devices send is consumed by the worker (``server.worker.ingest``)."""
