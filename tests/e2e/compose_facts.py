"""Prints facts about docker-compose.yml as JSON for the deploy-files test (no Docker engine here):
services, their build/image, local bind-mount sources, and environment."""
import json
import sys

import yaml

with open(sys.argv[1]) as f:
    compose = yaml.safe_load(f)
services = {}
for name, svc in compose["services"].items():
    mounts = [v.split(":")[0] for v in svc.get("volumes", []) if v.startswith("./")]
    services[name] = {
        "build": svc.get("build"),
        "image": svc.get("image"),
        "mounts": mounts,
        "environment": svc.get("environment", {}),
        "command": svc.get("command"),
    }
print(json.dumps(services))
