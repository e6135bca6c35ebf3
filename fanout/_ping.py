"""``fanout -m ping``: Ansible's ping module as a function, the call that proves a host runs Python and answers.

It travels to the hosts by reference and runs there, so it imports nothing and keeps to what Python 3.9 reads.
"""


def ping(data: str = "pong") -> str:
    """``data`` back ("pong" unless given), as Ansible's ping returns it; ``"crash"`` raises, as Ansible's does."""
    if data == "crash":
        raise RuntimeError("boom")
    return data
