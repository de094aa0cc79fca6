"""A community and its structure: buildings, units, access points, and its tunables."""
