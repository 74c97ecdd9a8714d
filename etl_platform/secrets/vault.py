"""The encrypted vault: connection credentials at rest, unlocked by a master password.

One JSON file (``ETL_VAULT_PATH``, default ``$ETL_HOME/vault.json``)::

    {"format": "etl_platform.vault/1",
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "length": 32, "salt": "<16 random bytes, base64>"},
     "data_keys": "<Fernet token: the data keys, encrypted with the key derived from the password>",
     "entries": {"shop_db_password": "<Fernet token: {name, value}, encrypted with the data key>"}}

The master password derives a key-encryption key by scrypt (N=2^17, r=8, p=1: OWASP's
current guidance); it encrypts only the data keys. The first data key encrypts every
entry, so changing the password re-wraps the data keys and leaves entries alone, and
rotating writes a new data key and re-encrypts every entry with it. KDF parameters and
salt are stored, so a stronger setting can be adopted by ``change-password`` later.

Fernet authenticates every token: a wrong password, a flipped byte, a truncated token or a
token taken from another vault all fail before any plaintext exists. Each entry's
plaintext names its entry, so a token moved to another name in the same vault fails too.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over
the vault: a crash at any point leaves either the old vault or the new one, both whole.
Writers take a lock file, so two commands changing the vault at once do not lose an entry.
"""

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import secrets as random_source
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from etl_platform import settings

FORMAT = "etl_platform.vault/1"
KDF_DEFAULTS = {"name": "scrypt", "n": 2**17, "r": 8, "p": 1, "length": 32}
MIN_SCRYPT_N = 2**17
PASSWORD_ENV, PASSWORD_FILE_ENV = "ETL_MASTER_PASSWORD", "ETL_MASTER_PASSWORD_FILE"


class VaultError(Exception):
    """The vault cannot be used as asked; the message says why and never holds a secret."""


class WrongPassword(VaultError):
    pass


class Tampered(VaultError):
    pass


def vault_path() -> Path:
    return Path(os.environ.get("ETL_VAULT_PATH") or settings.etl_home() / "vault.json")


def password_from_environment() -> str | None:
    """The master password from ETL_MASTER_PASSWORD, or the file ETL_MASTER_PASSWORD_FILE names."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if file := os.environ.get(PASSWORD_FILE_ENV):
        try:
            return Path(file).read_text().rstrip("\r\n")
        except OSError as err:
            raise VaultError(f"{PASSWORD_FILE_ENV} names {file}, which cannot be read: {err.strerror}") from err
    return None


def _derive(password: str, kdf: dict) -> Fernet:
    if kdf.get("name") != "scrypt":
        raise Tampered(f"unknown key derivation {kdf.get('name')!r}")
    try:
        key = Scrypt(
            salt=base64.b64decode(kdf["salt"]), length=kdf["length"], n=kdf["n"], r=kdf["r"], p=kdf["p"]
        ).derive(password.encode())
    except (KeyError, TypeError, ValueError) as err:
        # a damaged vault reveals nothing of its content: the error's type only, its words dropped
        raise Tampered(f"the key derivation settings are damaged ({type(err).__name__})") from None
    return Fernet(base64.urlsafe_b64encode(key))


def _new_kdf() -> dict:
    return {**KDF_DEFAULTS, "salt": base64.b64encode(random_source.token_bytes(16)).decode()}


@dataclass
class Vault:
    """An unlocked vault: its file's content and its data keys (kept in memory only)."""

    path: Path
    kdf: dict
    data_keys: list[bytes]
    entries: dict[str, str] = field(default_factory=dict)

    @property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.data_keys])

    # --- reading -------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> str:
        token = self.entries.get(name)
        if token is None:
            raise VaultError(f"the vault {self.path} has no entry {name!r}")
        try:
            plain = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, TypeError):
            # a JSON error holds the decrypted text (the secret) as its document: dropped
            raise Tampered(f"vault entry {name!r} has been tampered with or belongs to another vault") from None
        if not isinstance(plain, dict) or plain.get("name") != name or not isinstance(plain.get("value"), str):
            raise Tampered(f"vault entry {name!r} holds another entry's value: it has been tampered with")
        return plain["value"]

    # --- changing (each call writes the file) ----------------------------------------

    def set(self, name: str, value: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise VaultError(f"entry name {name!r}: use letters, digits, '_', '-' and '.'")
        self.entries[name] = (
            Fernet(self.data_keys[0]).encrypt(json.dumps({"name": name, "value": value}).encode()).decode()
        )

    def delete(self, name: str) -> None:
        if self.entries.pop(name, None) is None:
            raise VaultError(f"the vault {self.path} has no entry {name!r}")

    def rotate(self) -> None:
        """A new data key; every entry re-encrypted with it; the old keys dropped."""
        new = Fernet.generate_key()
        rotating = MultiFernet([Fernet(new), *(Fernet(k) for k in self.data_keys)])
        rotated = {}
        for name, token in self.entries.items():
            self.get(name)  # refuse to carry a tampered entry over
            rotated[name] = rotating.rotate(token.encode()).decode()
        self.entries, self.data_keys = rotated, [new]

    def file_content(self, password: str, kdf: dict | None = None) -> dict:
        self.kdf = kdf or self.kdf
        wrapped = _derive(password, self.kdf).encrypt(json.dumps([k.decode() for k in self.data_keys]).encode())
        return {
            "format": FORMAT,
            "kdf": self.kdf,
            "data_keys": wrapped.decode(),
            "entries": dict(sorted(self.entries.items())),
        }


def read_file(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:  # the cause adds nothing to this message
        raise VaultError(f"no vault at {path}: create one with `etl-platform vault init`") from None
    except (OSError, ValueError) as err:
        # a JSON or decoding error holds the file's content (wrapped keys, entries): its type only
        raise Tampered(f"the vault {path} cannot be read: {type(err).__name__}") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise Tampered(f"{path} is not an etl_platform vault (format {FORMAT})")
    return content


def entry_names(path: Path | None = None) -> set[str]:
    """Names of the vault's entries, without the password (names are not secret)."""
    entries = read_file(path or vault_path()).get("entries")
    return set(entries) if isinstance(entries, dict) else set()


def unlock(password: str, path: Path | None = None) -> Vault:
    path = path or vault_path()
    content = read_file(path)
    kdf, entries = content.get("kdf"), content.get("entries")
    if not isinstance(kdf, dict) or not isinstance(entries, dict) or not isinstance(content.get("data_keys"), str):
        raise Tampered(f"the vault {path} is missing parts")
    try:
        keys = json.loads(_derive(password, kdf).decrypt(content["data_keys"].encode()))
    except InvalidToken:  # it has no words: the cause adds nothing to this message
        raise WrongPassword(
            f"wrong master password for the vault {path} (or its keys have been tampered with)"
        ) from None
    return Vault(path, kdf, [k.encode() for k in keys], dict(entries))


def create(password: str, path: Path | None = None) -> Vault:
    path = path or vault_path()
    if path.exists():
        raise VaultError(f"a vault already exists at {path}")
    _check_password(password)
    vault = Vault(path, _new_kdf(), [Fernet.generate_key()])
    write(vault, password)
    return vault


def _check_password(password: str) -> None:
    if len(password) < 12:
        raise VaultError("the master password needs at least 12 characters")


def write(vault: Vault, password: str, kdf: dict | None = None) -> None:
    """Replace the vault file atomically: temp file, fsync, rename, fsync of the folder."""
    content = json.dumps(vault.file_content(password, kdf), indent=2) + "\n"
    folder = vault.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{vault.path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, vault.path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _writers_lock(path: Path) -> Iterator[None]:
    """One writer of the vault at a time; the lock ends with the process, a killed one's too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def changing(password: str, path: Path | None = None) -> Iterator[Vault]:
    """Unlock under the writers' lock, let the caller change the vault, write it back."""
    path = path or vault_path()
    with _writers_lock(path):
        vault = unlock(password, path)
        yield vault
        write(vault, password)


def change_password(old: str, new: str, path: Path | None = None) -> None:
    """Re-wrap the data keys under a new password (new salt, current KDF strength); entries stay."""
    _check_password(new)
    path = path or vault_path()
    with _writers_lock(path):
        write(unlock(old, path), new, kdf=_new_kdf())


# --- the process's vault: unlocked once, when the code location loads -------------------

_unlocking: dict[Path, tuple[str, Future]] = {}  # per vault file: its wrapped keys, and their unwrapping
_unlocking_lock = threading.Lock()


def unlock_at_start(referenced: set[str], path: Path | None = None) -> set[str]:
    """Called when the code location loads: the referenced entries the vault lacks, and, when
    the environment gives a master password, the start of unwrapping the data keys.

    The key derivation (scrypt, about half a second) runs in a background thread, so a process
    that never reads a secret is not slowed down; the first lookup waits for it. A wrong
    password then fails that lookup with one clear error, before any entry is decrypted.
    Without a vault file there is nothing to check: a step that needs a secret says so.
    """
    path = path or vault_path()
    if not referenced or not path.exists():
        return set()
    missing = referenced - entry_names(path)
    with contextlib.suppress(VaultError):
        if password_from_environment() is not None:
            _data_keys(path, read_file(path))
    return missing


def _data_keys(path: Path, content: dict) -> Future:
    """The unwrapping of the file's data keys: started once per process and set of keys."""
    wrapped = content.get("data_keys")
    with _unlocking_lock:
        started = _unlocking.get(path)
        if started is None or started[0] != wrapped:
            password = password_from_environment()
            if password is None:
                raise VaultError(
                    f"set {PASSWORD_ENV} or {PASSWORD_FILE_ENV} in the process running this step to unlock {path}"
                )
            unwrapping: Future = Future()

            def unwrap() -> None:
                try:
                    unwrapping.set_result(unlock(password, path).data_keys)
                except BaseException as err:  # handed to whoever waits for the keys
                    if isinstance(err, VaultError):
                        logging.getLogger(__name__).error("the vault cannot be unlocked: %s", err)
                    unwrapping.set_exception(err)

            threading.Thread(target=unwrap, name="vault-unlock", daemon=True).start()
            started = _unlocking[path] = (wrapped, unwrapping)
    return started[1]


def lookup(name: str) -> str:
    """An entry of the process's vault. Entries are read from the file each time, so entries
    set later are found; the data keys are unwrapped once per process."""
    path = vault_path()
    content = read_file(path)
    try:
        keys = _data_keys(path, content).result()
    except VaultError as err:
        # the same error, named for the entry: its causes were dropped where it was raised
        raise type(err)(f"vault entry {name!r}: {err}") from None
    return Vault(path, content["kdf"], keys, dict(content.get("entries") or {})).get(name)
