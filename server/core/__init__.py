"""What every domain leans on: errors and problem documents, ids, encryption, audit, callers and
their scope, rate limits, community-local time, wording, form fields and the MQTT outbox.

Nothing here knows a business rule; every other package of the server may import it."""
