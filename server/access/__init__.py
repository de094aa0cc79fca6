"""The door: the decision path every credential shares and each side of it (face with liveness
and galleries, QR, plate, card), remote open, access events and their snapshots, cars inside."""
