"""Tests of taskcast.web.wire: the channel frames of the hub's items and their websocket bytes."""

from __future__ import annotations

import json

from taskcast.hub.hub import Hub, Start, StreamEvent
from taskcast.web import wire
from taskcast.web.wire import START_FRAME
from tests.hub.support import batch, data


def test_event_frame_is_the_exact_channel_json() -> None:
    hub = Hub()
    hub.open("s", "run1")
    first = hub.publish("s", json.dumps("<b>hi</b>"))
    second = hub.publish("s", json.dumps({"k": [1, 2]}))
    assert wire.frame(first) == '{"status":"event","data":"<b>hi</b>","seq":1}'
    assert json.loads(wire.frame(second)) == {"status": "event", "data": {"k": [1, 2]}, "seq": 2}


async def test_event_is_encoded_once_and_shared_by_every_subscriber() -> None:
    hub = Hub()
    hub.open("s", "run1")
    one = hub.subscribe("s")
    two = hub.subscribe("s")
    hub.publish("s", data(1))
    [_, event_one] = await batch(one)
    [_, event_two] = await batch(two)
    assert event_one is event_two
    assert isinstance(event_one, StreamEvent) and isinstance(event_two, StreamEvent)
    assert wire.frame(event_one) is wire.frame(event_two)
    assert wire.event_wire([event_one]) is wire.event_wire([event_two])


def test_start_frame_is_status_start() -> None:
    assert wire.frame(Start("run1")) == START_FRAME == '{"status":"start"}'


async def test_start_frame_names_the_epoch_only_on_the_redis_engine() -> None:
    hub = Hub()  # the memory engine: no epochs, and one sent by a client changes nothing
    hub.open("plain", "run1")
    hub.publish("plain", '"a"')
    hub.publish("plain", '"b"')
    batch = await hub.subscribe("plain", after=1, epoch="stale").next_batch()
    assert [wire.frame(item) for item in batch] == [
        START_FRAME,
        '{"status":"event","data":"b","seq":2}',
    ]
    assert wire.frame(Start("run1", "5f0c")) == '{"status":"start","epoch":"5f0c"}'


def test_end_frame_carries_the_state_and_only_for_errors_the_error() -> None:
    hub = Hub()
    hub.open("ok", "run1")
    hub.open("bad", "run2")
    ok = hub.close("ok", "success")
    bad = hub.close("bad", "failed", "ValueError: boom")
    assert ok is not None and bad is not None
    assert json.loads(wire.frame(ok)) == {"status": "stop", "state": "success"}
    assert json.loads(wire.frame(bad)) == {
        "status": "stop",
        "state": "failed",
        "error": "ValueError: boom",
    }


def test_wire_is_the_websocket_text_frame_of_the_channel_frame() -> None:
    for size in (1, 125, 126, 65535, 65536, 70000):
        event = StreamEvent(7, json.dumps("x" * size))
        framed, payload = wire.event_wire([event]), wire.frame(event).encode()
        assert framed[0] == 0x81 and framed.endswith(payload)
        length = framed[1]
        if length == 126:
            assert int.from_bytes(framed[2:4], "big") == len(payload)
            assert len(framed) == 4 + len(payload)
        elif length == 127:
            assert int.from_bytes(framed[2:10], "big") == len(payload)
            assert len(framed) == 10 + len(payload)
        else:
            assert length == len(payload) and len(framed) == 2 + len(payload)


def test_consecutive_events_are_one_write_of_their_frames_in_order() -> None:
    events = [StreamEvent(seq, json.dumps("x" * size)) for seq, size in ((1, 3), (2, 200))]
    assert wire.event_wire(events) == wire.event_wire(events[:1]) + wire.event_wire(events[1:])
