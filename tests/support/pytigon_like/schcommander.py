"""Pytigon's schcommander: a @publish task that hands its cproxy to a library function doing
file commands (pytigon-lib's filesystemcmd), here on the local file system."""

import logging
import os
import shutil
import uuid

from taskcast.publish import publish

logger = logging.getLogger(__name__)


def filesystemcmd(cproxy=None, **kwargs):
    """DELETE, COPY or MOVE the files of `param`, sending "start" and "stop" around the work;
    a bad command raises after "stop" is sent."""
    try:
        if cproxy:
            cproxy.send_event("start")
        param = kwargs.get("param", {})
        cmd = param.get("cmd", "")
        files = param.get("files", [])
        dest = param.get("dest", "")
        if not cmd or not files:
            raise ValueError("Missing 'cmd' or 'files' in parameters.")
        for f in files:
            try:
                target = os.path.join(dest, os.path.basename(f))
                if cmd == "DELETE":
                    shutil.rmtree(f) if os.path.isdir(f) else os.remove(f)
                elif cmd == "COPY":
                    if os.path.isdir(f):
                        shutil.copytree(f, target, dirs_exist_ok=True)
                    else:
                        shutil.copy(f, target)
                elif cmd == "MOVE":
                    shutil.move(f, target)
                else:
                    raise ValueError(f"Unsupported command: '{cmd}'")
            except ValueError:
                raise
            except Exception:
                logger.exception("Error in %s of '%s'", cmd, f)
    finally:
        if cproxy:
            cproxy.send_event("stop")


@publish("vfs_action")
def vfs_action(cproxy=None, **kwargs):
    return filesystemcmd(cproxy, **kwargs)


def exec_command(cmd, files, dest=None):
    """What the file table does for COPY, MOVE and DELETE: a task per command, on a fresh id."""
    from taskcast.tasks import async_task

    parm = {"cmd": cmd, "files": files}
    if dest:
        parm["dest"] = dest
    publish_id = uuid.uuid4().hex
    task_id = async_task(
        "tests.support.pytigon_like.schcommander.vfs_action", task_publish_id=publish_id, param=parm
    )
    return {"task_id": task_id, "process_id": f"vfs_action__{publish_id}"}
