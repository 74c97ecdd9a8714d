"""`etl-platform vault`: the encrypted vault of connection secrets."""

import argparse
import sys
from pathlib import Path


def add_commands(sub) -> None:
    """The ``vault`` command group."""
    vault = sub.add_parser("vault", help="the encrypted vault of connection secrets").add_subparsers(
        dest="vault_command", required=True
    )
    init = vault.add_parser("init", help="create the vault (ETL_VAULT_PATH, default $ETL_HOME/vault.json)")
    init.add_argument(
        "--generate-password-file",
        metavar="PATH",
        help="make a random master password, store it in PATH (mode 0600) and use it; for local set-ups",
    )
    init.add_argument("--if-missing", action="store_true", help="do nothing when the vault exists")
    init.set_defaults(func=_vault_init)
    put = vault.add_parser(
        "set", help="store a secret; the value is read from stdin or a prompt, never from the command line"
    )
    put.add_argument("name")
    put.set_defaults(func=_vault_set)
    vault.add_parser("list", help="names of the stored secrets (never their values)").set_defaults(func=_vault_list)
    delete = vault.add_parser("delete", help="remove a secret")
    delete.add_argument("name")
    delete.set_defaults(func=_vault_delete)
    vault.add_parser("rotate", help="new data key; every secret re-encrypted with it").set_defaults(func=_vault_rotate)
    vault.add_parser(
        "change-password", help="new master password (from a prompt, or ETL_NEW_MASTER_PASSWORD)"
    ).set_defaults(func=_vault_change_password)


def _master_password(confirm: bool = False, variable: str | None = None, prompt: str = "Master password: ") -> str:
    """From ETL_MASTER_PASSWORD / ETL_MASTER_PASSWORD_FILE (or ``variable``), else a prompt on the terminal."""
    import getpass
    import os

    from etl_platform.secrets import vault

    found = os.environ.get(variable) if variable else vault.password_from_environment()
    if found:
        return found
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != password:
        raise vault.VaultError("the two passwords differ")
    return password


def _vault_command(run) -> int:
    from etl_platform.secrets.vault import VaultError

    try:
        message = run()
    except VaultError as err:
        print(f"vault: {err}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("vault: cancelled, nothing changed", file=sys.stderr)
        return 1
    if message:
        print(message)
    return 0


def _vault_init(args: argparse.Namespace) -> int:
    import os
    import secrets as random_source

    from etl_platform.secrets import vault

    def run():
        path = vault.vault_path()
        if args.if_missing and path.exists():
            return f"vault already at {path}"
        if args.generate_password_file:
            password_file = Path(args.generate_password_file)
            if not password_file.exists():
                password_file.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(random_source.token_urlsafe(32) + "\n")
            password = password_file.read_text().rstrip("\r\n")
        else:
            password = _master_password(confirm=True)
        vault.create(password, path)
        return f"created the vault {path}"

    return _vault_command(run)


def _vault_set(args: argparse.Namespace) -> int:
    import getpass

    from etl_platform.secrets import vault

    def run():
        password = _master_password()
        if sys.stdin.isatty():
            value = getpass.getpass(f"Value of {args.name}: ")
        else:
            value = sys.stdin.read()
            value = value[:-1] if value.endswith("\n") else value
        with vault.changing(password) as opened:
            replaced = args.name in opened.entries
            opened.set(args.name, value)
        return f"{'replaced' if replaced else 'stored'} {args.name}"

    return _vault_command(run)


def _vault_list(args: argparse.Namespace) -> int:
    from etl_platform.secrets import vault

    return _vault_command(lambda: "\n".join(sorted(vault.entry_names())) or "the vault is empty")


def _vault_delete(args: argparse.Namespace) -> int:
    from etl_platform.secrets import vault

    def run():
        with vault.changing(_master_password()) as opened:
            opened.delete(args.name)
        return f"deleted {args.name}"

    return _vault_command(run)


def _vault_rotate(args: argparse.Namespace) -> int:
    from etl_platform.secrets import vault

    def run():
        with vault.changing(_master_password()) as opened:
            opened.rotate()
            count = len(opened.entries)
        return f"new data key; {count} secret(s) re-encrypted"

    return _vault_command(run)


def _vault_change_password(args: argparse.Namespace) -> int:
    from etl_platform.secrets import vault

    def run():
        old = _master_password(prompt="Current master password: ")
        new = _master_password(confirm=True, variable="ETL_NEW_MASTER_PASSWORD", prompt="New master password: ")
        vault.change_password(old, new)
        return "master password changed; set the new one wherever ETL_MASTER_PASSWORD(_FILE) is configured"

    return _vault_command(run)
