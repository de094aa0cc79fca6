"""The pass-signing keys reach the doors: the worker's rotation job, retained key sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask

from gatekeeper import passtokens
from hardware.messages import KeySetMessage, format_ts
from hardware.topics import keys_topic
from server.core.messaging import OutgoingMessage
from server.extensions import db
from server.passes import keys as passkeys
from server.worker import Worker
from tests.factories import Api

START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ROTATION = timedelta(days=30)  # PASS_KEY_ROTATION_DAYS' default


def key_sets(published: list[OutgoingMessage]) -> dict[str, KeySetMessage]:
    """The key sets published so far, by topic; every one must be retained."""
    assert all(m.retain for m in published), published
    return {m.topic: KeySetMessage.decode(m.payload) for m in published}


def key_ids(key_set: KeySetMessage) -> list[int]:
    return [key.key_id for key in key_set.keys]


def test_worker_start_publishes_every_communitys_key_set(app: Flask, world, published) -> None:
    worker = Worker(app)
    worker.rotate_pass_keys()
    sets = key_sets(published)
    assert set(sets) == {keys_topic(world.a), keys_topic(world.b)}
    with app.app_context():
        [key] = passkeys.public_keys()
    for community_id in (world.a, world.b):
        key_set = sets[keys_topic(community_id)]
        assert key_set.community_tag == passtokens.community_tag(community_id)
        [published_key] = key_set.keys
        assert (published_key.key_id, published_key.public_key) == (key.key_id, key.public_key)
        # Times travel with milliseconds (docs/protocol.md): truncated, never later than stored.
        assert format_ts(published_key.verifies_until) == format_ts(key.verifies_until)
        assert format_ts(published_key.signs_until) == format_ts(key.signs_until)
    published.clear()
    worker.rotate_pass_keys()  # nothing due, and the start-up copy is out
    assert published == []
    Worker(app).rotate_pass_keys()  # a restarted worker publishes again (a fresh broker)
    assert set(key_sets(published)) == {keys_topic(world.a), keys_topic(world.b)}


def test_rotation_makes_the_next_key_a_day_before_and_drops_dead_keys(
    app: Flask, world, published
) -> None:
    worker = Worker(app)
    with time_machine.travel(START, tick=False):
        worker.rotate_pass_keys()
    [first] = key_ids(key_sets(published)[keys_topic(world.a)])
    published.clear()

    with time_machine.travel(START + ROTATION - timedelta(days=1, minutes=1), tick=False):
        worker.rotate_pass_keys()
    assert published == []  # the current key signs for more than a day yet

    with time_machine.travel(START + ROTATION - timedelta(hours=23), tick=False):
        worker.rotate_pass_keys()
        with app.app_context():
            signing_id, _private = passkeys.signing_key()
    ids = key_ids(key_sets(published)[keys_topic(world.a)])
    assert ids[0] == first and len(ids) == 2  # the old key still verifies what it signed
    assert signing_id == ids[1] != first
    published.clear()

    # The first key verifies until every pass it signed has expired, then it is dropped.
    dead = START + ROTATION + timedelta(days=passkeys.MAX_PASS_DAYS, minutes=1)
    with time_machine.travel(dead, tick=False):
        worker.rotate_pass_keys()
        with app.app_context():
            alive = [key.key_id for key in passkeys.public_keys()]
    ids = key_ids(key_sets(published)[keys_topic(world.b)])
    assert first not in ids and ids == alive


def test_a_new_community_gets_its_key_set(app: Flask, client, world, published) -> None:
    with app.app_context():
        key_id, _private = passkeys.signing_key()
        db.session.commit()
    answer = Api(client, "admin").post("/communities", json={"name": "Community C"})
    assert answer.status_code == 201, answer.json
    topic = keys_topic(answer.json["id"])
    key_set = key_sets(published)[topic]
    assert [m.topic for m in published] == [topic]
    assert key_ids(key_set) == [key_id]
    assert key_set.community_tag == passtokens.community_tag(answer.json["id"])
