"""Devices: provisioning and secrets, commands to doors, the broker's password file and ACL, and
the worker's consumer of device traffic (ingest)."""
