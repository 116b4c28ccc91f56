"""Four-word human names for task ids, so a person can tell tasks apart at a glance."""

from __future__ import annotations

# 256 short, distinct, inoffensive words: one per byte value.
_WORDS = """
acorn actor agent album alpha amber anchor angle apple april arrow aspen
atlas autumn badger bagel bakery bamboo banjo barley basil beacon beaver bell
berry bicycle birch biscuit blanket blossom bottle bramble bridge brook bubble bucket
butter button cabin cactus camel candle canoe canvas carbon carpet carrot castle
cedar cello chalk cherry chess cider cinnamon circle citrus clover cobalt cocoa
comet copper coral cotton cousin crane crayon cricket crystal cupcake daisy dancer
delta desert diamond dinner dolphin domino dragon dream drum eagle echo elbow
ember emerald engine falcon feather fern ferry fiddle finch forest fossil fountain
fox galaxy garden garlic gazelle ginger glacier globe golden gopher granite grape
gravel guitar hammer harbor harvest hazel helmet heron hickory honey horizon hotel
iceberg igloo indigo island ivory jacket jasmine jelly jigsaw juniper kayak kettle
kiwi koala ladder lagoon lantern lemon lilac lily linen lizard lobster lotus
magnet mango maple marble meadow melon mercury meteor mint mirror mitten monsoon
moose mosaic muffin nectar nickel noodle nutmeg oasis ocean olive onion opal
orbit orchid otter oyster paddle panda paper parrot pebble pepper piano pillow
pine planet plum pocket polar poppy potato prism puffin pumpkin quartz quill
rabbit radar radish rain raven reef ribbon river robin rocket rose ruby
saddle saffron salmon sandal sapphire satin scarf season sequoia shadow shell silver
sketch sled snow sonnet sparrow spice spruce squash squirrel star stone summer
sunset swan table tango teapot thistle thunder tiger timber toast topaz tractor
trumpet tulip tundra turtle umbrella valley velvet violet volcano walnut
willow window yarn yellow zebra zinc
""".split()

if len(_WORDS) != 256 or len(set(_WORDS)) != 256:  # pragma: no cover - guards the list above
    raise RuntimeError(f"the name list must hold 256 distinct words, not {len(set(_WORDS))}")


def human_name(task_id: str, words: int = 4) -> str:
    """Name a 32-hex-digit id with four words, folding its 16 bytes into four by XOR.

    The same id always gives the same name; different ids rarely collide, so names are for people,
    while ids stay the key.
    """
    if words == 4 and len(task_id) == 32:
        # The common case, on async_task's path: the same folding done on one 128-bit integer.
        value = int(task_id, 16)
        parts = []
        for shift in (96, 64, 32, 0):
            word = (value >> shift) & 0xFFFFFFFF
            word ^= word >> 16
            parts.append(_WORDS[(word ^ (word >> 8)) & 0xFF])
        return "-".join(parts)
    raw = bytes.fromhex(task_id)
    chunk = max(1, len(raw) // words)
    folded = []
    for index in range(words):
        part = (
            raw[index * chunk : (index + 1) * chunk] if index < words - 1 else raw[index * chunk :]
        )
        value = 0
        for byte in part:
            value ^= byte
        folded.append(_WORDS[value])
    return "-".join(folded)
