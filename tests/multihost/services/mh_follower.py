"""A consumer host's follower: an in-state `book`. After each update it writes what it has
to `status_path` (seq, synced, snapshots taken, the book), replacing the file whole, and
appends the same, one JSON line per update, to `status_path` + ".updates": the test checks
every value a handler saw, not only the last."""

import json
import os

config_model = {"required": {"status_path": str}}
snapshots = 0


def on_update(update, to_send, states, config):
    global snapshots
    if update.kind == "snapshot":
        snapshots += 1
    status = {"seq": update.seq, "kind": update.kind, "synced": states.is_synced("book"),
              "snapshots": snapshots, "book": dict(states["book"])}
    path = config["status_path"]
    line = json.dumps(status)
    with open(path + ".updates", "a") as updates:
        updates.write(line + "\n")
    with open(path + ".tmp", "w") as out:
        out.write(line)
    os.replace(path + ".tmp", path)


state_models = {"in": {"book": {
    "state_type": "delta_update_in",
    "optional_arguments": {"levels": {str: int}},
    "optional_creation_arguments": {"on_update": on_update, "snapshot_timeout_s": 1.0},
}}}
