"""A host's Ansible variables as what :func:`fanout.connect` and :class:`~fanout.Fleet` take: connection options,
the module policy, and become options read as ansible-core's become plugins read them.

A ``fanout_*`` variable wins over its Ansible names. What fanout cannot honour is never silently dropped: an
ssh-connection variable it does not act on is a warning, a become variable it cannot honour an
:class:`~fanout.inventory.InventoryError` naming the host (and never holding the password).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from fanout import _become as _become_plan
from fanout._inventory_model import InventoryError
from fanout._inventory_values import shorten
from fanout._ssh_config import parse_ssh_args
from fanout._timeouts import check_timeout

_SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")  # ssh command-line options, in ssh's order
_HOST_KEY_CHECKING = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
# Ansible ssh-connection variables fanout does not act on, and why: each is a visible warning, never a silent no-op.
UNSUPPORTED_CONNECTION_VARS = {
    "ansible_ssh_executable": "fanout speaks SSH itself (paramiko); it runs no ssh binary",
    "ansible_ssh_transfer_method": "fanout moves files over its own channel (Fleet.put/get)",
    "ansible_scp_extra_args": "fanout runs no scp",
    "ansible_sftp_extra_args": "fanout runs no sftp",
    "ansible_scp_if_ssh": "fanout runs no scp",
    "ansible_sftp_batch_mode": "fanout runs no sftp",
    "ansible_ssh_retries": "fanout does not retry a failed connection (it retries only an sshd shedding load)",
    "ansible_ssh_use_tty": "fanout's channel has no tty; become asks for one where it needs it",
    "ansible_ssh_password_mechanism": "fanout sends the password itself; it runs neither sshpass nor SSH_ASKPASS",
}
_warned_connection_vars: set[str] = set()
# Frames from the warning up to the code that asked the inventory: _warn..., connect_options here,
# Inventory.connect_options, its caller (Inventory.fleet_hosts, or user code), and that one's caller.
_WARNING_STACKLEVEL = 5
_CONNECTIONS_OVER_SSH = ("ssh", "smart", "paramiko", "paramiko_ssh")  # ansible_connection values fanout's SSH serves
_STRING_OPTIONS = (
    ("user", ("fanout_user", "ansible_user", "ansible_ssh_user")),
    ("identity_file", ("fanout_identity_file", "ansible_ssh_private_key_file", "ansible_private_key_file")),
    ("password", ("fanout_password", "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")),
    ("known_hosts", ("fanout_known_hosts",)),
    ("host_key_policy", ("fanout_host_key_policy",)),
    ("jump_identity_file", ("fanout_jump_identity_file",)),
)


def connect_options(name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :func:`fanout.connect` from host ``name``'s merged ``variables`` (``host`` included);
    with ``become`` (a :class:`BecomeOptions`) when the host sets any become variable, which :class:`~fanout.Fleet`
    takes off before it connects."""

    def pick(*keys: str) -> Any:
        for k in keys:
            if variables.get(k) is not None:
                return variables[k]
        return None

    opts: dict[str, Any] = {"host": str(pick("fanout_host", "ansible_host", "ansible_ssh_host") or name)}

    def number(option: str, kind: type, what: str, *keys: str) -> None:
        value = pick(*keys)
        if value is not None:
            try:
                opts[option] = kind(value)
            except (TypeError, ValueError):
                raise InventoryError(f"host {name!r}: {what}, got {value!r}") from None

    number("port", int, "port must be an integer", "fanout_port", "ansible_port", "ansible_ssh_port")
    for key, names in _STRING_OPTIONS:
        value = pick(*names)
        if value is not None:
            opts[key] = str(value)
    python = pick("fanout_python", "ansible_python_interpreter")
    if python is not None:  # Ansible's "auto", "auto_silent"... discover it on the host, as Ansible does
        opts["python"] = str(python)
    number(
        "connect_timeout",
        float,
        "timeout must be a number of seconds",
        "fanout_timeout",
        "ansible_timeout",
        "ansible_ssh_timeout",
    )
    if "connect_timeout" in opts:
        try:
            check_timeout("timeout", opts["connect_timeout"])
        except ValueError as e:
            raise InventoryError(f"host {name!r}: {e}") from None
    jump = pick("fanout_jump")
    if jump:
        opts["jump"] = str(jump)
    via = pick("fanout_via")
    if via:  # an inventory host whose child runs ssh onward to this one (docs/relays.rst)
        opts["via"] = str(via)
    ssh_args = _ssh_args(name, variables)
    if ssh_args:
        opts["ssh_args"] = ssh_args
    if "host_key_policy" not in opts:
        checking = _host_key_checking(name, variables)
        if checking is False:  # Ansible's host_key_checking=False: any key, nothing written
            opts["host_key_policy"] = "off"
    _warn_unsupported_connection_vars(name, variables)
    connection = str(pick("fanout_connection", "ansible_connection") or "ssh")
    if connection not in _CONNECTIONS_OVER_SSH:
        opts["connection"] = connection
    opts.update(module_policy(name, variables))
    become_options = become(name, variables)
    if become_options is not None:
        opts["become"] = become_options
    return opts


def local_options(name: str, every_host: Mapping[str, Any]) -> dict[str, Any]:
    """Options of the implicit ``localhost`` (a local child), from the variables ``every_host`` has: as in Ansible it
    is in no group, but a module policy set for every host must hold there too, and ansible-core runs it through
    the ``all`` group's ``ansible_become``."""
    options: dict[str, Any] = {"connection": "local", **module_policy(name, every_host)}
    become_options = become(name, every_host)
    if become_options is not None:
        options["become"] = become_options
    return options


def _ssh_args(host: str, variables: Mapping[str, Any]) -> str:
    """``ansible_ssh_common_args`` then ``ansible_ssh_extra_args``, each checked as fanout's ssh options parser
    reads it, joined: an option it cannot honour is an error naming the host now, not at connect time."""
    for key in _SSH_ARGS:
        if variables.get(key) not in (None, ""):
            try:
                parse_ssh_args(str(variables[key]))
            except ValueError as exc:
                raise InventoryError(f"host {host!r}: {key}: {exc}") from None
    return " ".join(str(variables[k]) for k in _SSH_ARGS if variables.get(k) not in (None, ""))


def _host_key_checking(host: str, variables: Mapping[str, Any]) -> bool | None:
    """``ansible_host_key_checking`` (or ANSIBLE_HOST_KEY_CHECKING), read as ansible-core reads a boolean; None when
    neither is set (then ssh_config's StrictHostKeyChecking decides)."""
    for key in _HOST_KEY_CHECKING:
        if variables.get(key) is not None:
            return _ansible_bool(host, key, variables[key])
    if os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "") != "":
        return _ansible_bool(host, "ANSIBLE_HOST_KEY_CHECKING", os.environ["ANSIBLE_HOST_KEY_CHECKING"])
    return None


def _warn_unsupported_connection_vars(host: str, variables: Mapping[str, Any]) -> None:
    """One warning per variable of :data:`UNSUPPORTED_CONNECTION_VARS` set, for the first host setting it."""
    for key, why in UNSUPPORTED_CONNECTION_VARS.items():
        if variables.get(key) is not None and key not in _warned_connection_vars:
            _warned_connection_vars.add(key)
            warnings.warn(f"host {host!r}: {key} is ignored: {why}", UserWarning, stacklevel=_WARNING_STACKLEVEL)


_MODULE_POLICY = (("allow_modules", "fanout_allow_modules"), ("deny_modules", "fanout_deny_modules"))


def module_policy(host: str, variables: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``allow_modules`` and ``deny_modules`` for :func:`fanout.connect`, from the ``fanout_allow_modules`` and
    ``fanout_deny_modules`` variables: module name prefixes, as a list or a comma-separated string."""
    options: dict[str, tuple[str, ...]] = {}
    for option, variable in _MODULE_POLICY:
        value = variables.get(variable)
        if value is None:
            continue
        if isinstance(value, str):
            items: list[Any] = [item.strip() for item in value.split(",") if item.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise InventoryError(
                f"host {host!r}: {variable} must be a list of module names or a comma-separated string,"
                f" got {type(value).__name__}"
            )
        for item in items:
            if not isinstance(item, str) or not all(part.isidentifier() for part in item.split(".")):
                raise InventoryError(
                    f"host {host!r}: {variable} holds {shorten(repr(item))}, which is not a dotted module name"
                    " such as 'mypackage' or 'mypackage.tasks'"
                )
        options[option] = tuple(dict.fromkeys(items))
    return options


# ------------------------------------------------------------------------------------------------------------ become

# ansible-core's forms of a boolean (module_utils.parsing.convert_bool); strings are compared lower-cased and stripped.
_TRUE = frozenset({"y", "yes", "on", "1", "true", "t"})
_FALSE = frozenset({"n", "no", "off", "0", "false", "f"})
_BECOME_SWITCH = ("fanout_become", "ansible_become")  # the first one set wins, as fanout_* does elsewhere
_BECOME_METHOD = ("fanout_become_method", "ansible_become_method")
_BECOME_OPTIONS = ("user", "password", "exe", "flags")
# su and doas in another language: fanout takes any prompt line ending in a colon for theirs, so these are met.
_BECOME_PROMPTS = ("ansible_su_prompt_l10n", "ansible_doas_prompt_l10n")
# Become variables refused, each with the reason (docs/design.rst, "Nothing is silently ignored": a switch read by
# nobody runs as the wrong user).
_BECOME_REFUSED = {
    "ansible_sudo": "Ansible no longer reads it either: use ansible_become=true (sudo is the default method)",
    "ansible_su": "Ansible no longer reads it either: use ansible_become=true and ansible_become_method=su",
    "ansible_sudo_chdir": "fanout does not change directory before sudo: leave it out, or cd in the command",
}
_BECOME_PREFIXES = ("ansible_become", "fanout_become", "ansible_sudo_", "ansible_su_", "ansible_doas_")
_TEMPLATE_MARKS = ("{{", "{%")


def _become_variables(option: str, method: str) -> tuple[str, ...]:
    """The variables of one become option, lowest precedence first, as ansible-core's become plugins read them: the
    last one set wins (its config manager's rule: ``ansible_become_pass`` over ``ansible_become_password``), and
    the method's own legacy name (``ansible_sudo_pass``, ``ansible_su_user``...) counts for that method only.
    ``fanout_become_*`` is above them all."""
    if option == "password":
        return ("ansible_become_password", "ansible_become_pass", f"ansible_{method}_pass", "fanout_become_password")
    return (f"ansible_become_{option}", f"ansible_{method}_{option}", f"fanout_become_{option}")


_KNOWN_BECOME = frozenset(
    {*_BECOME_SWITCH, *_BECOME_METHOD, *_BECOME_PROMPTS}
    | {
        name
        for method in _become_plan.METHODS
        for option in _BECOME_OPTIONS
        for name in _become_variables(option, method)
    }
)


class BecomeOptions(dict):
    """A host's become options, as :class:`~fanout.Fleet` reads them (``enabled``, and any of ``user``, ``method``,
    ``password``, ``exe``, ``flags``): a dict whose ``repr`` never shows the password."""

    def __repr__(self) -> str:
        shown = (f"{key!r}: {'<hidden>' if key == 'password' else repr(value)}" for key, value in self.items())
        return "{" + ", ".join(shown) + "}"

    def copy(self) -> BecomeOptions:
        return type(self)(self)


def _first_set(variables: Mapping[str, Any], names: Sequence[str]) -> tuple[str, Any] | None:
    for name in names:
        if variables.get(name) is not None:
            return name, variables[name]
    return None


def become_enabled(host: str, variables: Mapping[str, Any]) -> bool | None:
    """``fanout_become`` or ``ansible_become`` as a bool, read as ansible-core reads a boolean; None when unset."""
    found = _first_set(variables, _BECOME_SWITCH)
    if found is None:
        return None
    return _ansible_bool(host, *found)


def _ansible_bool(host: str, name: str, value: Any) -> bool:
    """A variable as ansible-core reads a boolean; an InventoryError naming the host and variable otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InventoryError(
        f"host {host!r}: {name} must be a boolean (true or false, yes or no, on or off, 1 or 0),"
        f" got {shorten(repr(value))}"
    )


def become(host: str, variables: Mapping[str, Any]) -> BecomeOptions | None:
    """The host's become options from its variables, checked (None when it sets none). What fanout cannot do is an
    :class:`InventoryError` naming the host and the variable, and never holding the password."""
    for name, value in variables.items():
        if value is None or not isinstance(name, str):
            continue
        if name in _BECOME_REFUSED:
            raise InventoryError(f"host {host!r}: {name} is not supported: {_BECOME_REFUSED[name]}")
        if name.startswith(_BECOME_PREFIXES) and name not in _KNOWN_BECOME:
            raise InventoryError(
                f"host {host!r}: fanout does not know the become variable {shorten(name)!r} (a typo?): it reads"
                " ansible_become, ansible_become_user, ansible_become_method, ansible_become_password (or _pass),"
                " ansible_become_exe and ansible_become_flags, their fanout_become* forms, and the method's own"
                " ansible_sudo_*, ansible_su_* or ansible_doas_* user, pass, exe and flags"
            )
    enabled = become_enabled(host, variables)
    options = BecomeOptions()
    found = _first_set(variables, _BECOME_METHOD)
    if found is not None:
        name, method = found
        if method not in _become_plan.METHODS:
            raise InventoryError(
                f"host {host!r}: {name} is {shorten(repr(method))}, a become method fanout does not have:"
                f" it becomes another user with {', '.join(_become_plan.METHODS)}"
            )
        options["method"] = method
    for option in _BECOME_OPTIONS:
        found = _first_set(variables, _become_variables(option, options.get("method", "sudo"))[::-1])
        if found is not None:
            options[option] = _become_value(host, option, *found)
    if enabled is None and not options:
        return None
    try:  # what sudo, su or doas would refuse (a user name with a space...) is refused now, naming the host
        _become_plan.plan(
            options.get("method", "sudo"),
            options.get("user", "root"),
            **{key: options[key] for key in ("password", "exe", "flags") if key in options},
        )
    except (ValueError, TypeError) as exc:  # the plan's messages never hold the password
        raise InventoryError(f"host {host!r}: {exc}") from None
    return BecomeOptions(enabled=bool(enabled), **options)


def _become_value(host: str, option: str, name: str, value: Any) -> Any:
    """One become variable's value as fanout passes it on: a string (flags: or a list of strings)."""
    secret = option == "password"
    if isinstance(value, str) and name.startswith("ansible_") and any(mark in value for mark in _TEMPLATE_MARKS):
        raise InventoryError(
            f"host {host!r}: {name} is a Jinja2 template, which fanout does not evaluate"
            f" (sent as it is, it would {'be typed as the password' if secret else 'name nothing real'}):"
            f" set the value itself, or fanout_become_{option} to send these characters as they are"
        )
    if option == "flags" and isinstance(value, (list, tuple)) and all(isinstance(flag, str) for flag in value):
        return tuple(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):  # INI reads 1234 as a number
        return str(value)
    shown = type(value).__name__ if secret else shorten(repr(value))
    kind = "a string or a list of strings" if option == "flags" else "a string"
    raise InventoryError(f"host {host!r}: {name} must be {kind}, got {shown}")
