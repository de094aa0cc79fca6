"""Business actions: named functions that check rules, change the store and audit.

Views translate HTTP to a call; errors are typed (``server.errors``) and mapped in one place.
"""
