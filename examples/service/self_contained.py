"""A complete service example: children ask the master for configuration, and build nothing twice.

Run it with no SSH at all (the children are local processes):

    python examples/service/self_contained.py

or on the hosts an Ansible inventory pattern selects (one child on each):

    python examples/service/self_contained.py --inventory hosts.ini 'web:&prod'

The master serves ``ConfigService``; every child asks it for the settings of
its role at the same time. The DeduplicatingInvoker resolves each role once,
however many children ask, and each child then writes its settings to a file
of its own under a temporary directory (never anywhere else: this example is
safe to run against real machines). Then the master calls a service *in* each
child, ``Inventory``, which reports what it wrote.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import tempfile
import threading
import time

import fanout
from fanout import service


class ConfigService(service.Service):
    """On the master: resolves a role's settings (slowly, as a real lookup would), once per role."""

    invoker_class = service.DeduplicatingInvoker

    def __init__(self) -> None:
        self.resolved = 0
        self.lock = threading.Lock()

    @service.expose(service.AllowAny())
    @service.arg_spec({"role": str})
    def settings_for(self, role):
        with self.lock:
            self.resolved += 1
        time.sleep(0.5)  # stands for a database or an API
        return {"role": role, "workers": 4 if role == "web" else 2, "log_level": "info"}


class Inventory(service.Service):
    """In each child: reports the files this example wrote there."""

    @service.expose(service.AllowParents())
    def written(self):
        directory = os.path.join(tempfile.gettempdir(), "fanout-example")
        return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def configure_me(role):
    """Runs in a child: ask the master for this role's settings and write them to a private file."""
    settings = fanout.parent().call_service("examples.ConfigService", "settings_for", role=role)
    directory = os.path.join(tempfile.gettempdir(), "fanout-example")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{platform.node()}-{os.getpid()}.conf")
    with open(path, "w", encoding="utf-8") as out:
        for key, value in sorted(settings.items()):
            out.write(f"{key} = {value}\n")
    return path


ConfigService.name = "examples.ConfigService"


def importable() -> object:
    """This file as an importable module, so children can import its services and functions.

    Run as a script, it is ``__main__``, which a child cannot import; by its file
    name (the script's directory is on ``sys.path``), the master can send it.
    """
    name = __spec__.name if __spec__ is not None else os.path.splitext(os.path.basename(__file__))[0]
    return importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--children", type=int, default=6, help="local children to start (default 6)")
    parser.add_argument(
        "--inventory", nargs=2, metavar=("FILE", "PATTERN"), help="run on these hosts of an Ansible inventory instead"
    )
    args = parser.parse_args(argv)
    if args.children < 1:
        parser.error("--children must be at least 1")

    example = importable()
    config = example.ConfigService()
    with service.Pool(2, services=[config]).serve_children():
        if args.inventory:
            fleet = fanout.Fleet.from_inventory(*args.inventory).connect()
            for host, error in fleet.failures.items():
                print(f"{host}: not reached: {error}")
            children = list(fleet.contexts.values())
            if not children:
                print("no host could be reached")
                return 4
        else:
            children = [fanout.local(name=f"child-{i}") for i in range(args.children)]
        try:
            roles = ["web" if i % 2 else "db" for i in range(len(children))]
            started = time.monotonic()
            futures = [
                child.call_async(example.configure_me, role) for child, role in zip(children, roles, strict=True)
            ]
            paths = [future.result(timeout=60) for future in futures]
            elapsed = time.monotonic() - started
            for child, path in zip(children, paths, strict=True):
                print(f"{child.name}: wrote {path}")
            print(f"{len(children)} children, {config.resolved} lookups (one per role), {elapsed:.2f} s")
            listed = children[0].call_service(example.Inventory, "written")
            print(f"{children[0].name} lists {len(listed)} file(s) in its example directory")
        finally:
            for child in children:
                child.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(importable().main())
