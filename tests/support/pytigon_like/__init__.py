"""Task modules written the way Pytigon's own apps write theirs, imports aside.

Each reproduces the patterns of one real module (tasks_demo, schbuilder, schcommander with
pytigon-lib's file commands, and the older schtasksdemo with its `init_schedule`), with shorter
waits so that the tests run fast. `PAUSE` is the wait between items (Pytigon's modules sleep 1 s).
"""

PAUSE = 0.01
