"""Visitor passes: issuing and revoking, the keys that sign QR tokens, key sets for doors that
work offline, uploads of passes used offline, QR images."""
