"""Telling residents: notifications in the portal (live), by Web Push and by SMS gateway.

``service``: who is told what, their choices, the outbox; ``kinds``: the kinds, their texts
and defaults; ``feeds``: the portal's live feed; ``push``: Web Push's payload and keys. The
worker sends the outbox (``server.worker.notifications``). See docs/notifications.md.
"""
