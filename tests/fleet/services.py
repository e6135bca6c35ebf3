"""Services on the master that tests' children call, by canonical name."""

from __future__ import annotations

from fanout import service


class Echo(service.Service):
    """A quick service, called by a healthy host while a hostile one floods a slow one."""

    @service.expose(service.AllowAny())
    def echo(self, text: str) -> str:
        return text


def echo_asker(user_modules):
    """A function, in a module only the master has, that calls :class:`Echo` on the master from a child."""
    suffix = user_modules(
        {
            "ask_{s}.py": f"""
                import fanout

                def ask(text):
                    return fanout.parent().call_service("{Echo.canonical_name()}", "echo", text=text)
            """
        }
    )
    return __import__(f"ask_{suffix}").ask
