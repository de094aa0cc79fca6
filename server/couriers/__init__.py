"""One-time courier codes for keypad doors: issued here (``service``), verified at the door
(``server.access.pin``)."""
