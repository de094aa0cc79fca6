"""Alerts for officers and staff: raising and the workflow, the rules that raise them, channels
(MQTT, webhooks), the live stream, strangers, the watchlist and patrol routes."""
