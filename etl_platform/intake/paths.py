"""File names and globs that cannot leave their base folder, and names that are never patterns.

Used by every file connection's listing and by anything else that turns a name it
was given (a spec's glob, a sensor's event) into a path: ``..``, absolute paths and
symlinks that resolve outside the folder are refused.

A file's name is data: DuckDB reads a path holding ``*``, ``?`` or ``[`` as a glob (a
file named ``[ab].csv`` would read ``a.csv`` and ``b.csv``). ``without_patterns``
gives such a file a second, plain name to be read by.
"""

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

# What DuckDB's file systems treat as glob syntax, and what a future version might ('{a,b}',
# an escaping backslash): a path holding none of these is read as the one file it names.
PATTERN_CHARACTERS = frozenset("*?[]{}\\")


class PathOutsideFolder(ValueError):
    """A name or glob points outside the folder it must stay in."""


def check_relative(name: str, where: str = "the folder", what: str = "file pattern") -> None:
    """Refuse a relative name or glob that is absolute or climbs with '..'."""
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if not name or posix.is_absolute() or windows.is_absolute() or windows.drive or name.startswith(("\\", "~")):
        raise PathOutsideFolder(f"{what} {name!r} must be a path relative to {where}, not an absolute path")
    if ".." in posix.parts or ".." in windows.parts:
        raise PathOutsideFolder(f"{what} {name!r} must stay inside {where}: '..' is not allowed")
    if "\x00" in name:
        raise PathOutsideFolder(f"{what} {name!r} contains a NUL character")


def inside(base: Path, name: str) -> Path:
    """``base / name`` resolved (symlinks followed), refused when it is outside ``base``."""
    check_relative(name, str(base), what="file name")
    root = base.resolve()
    resolved = (root / name).resolve()
    if not resolved.is_relative_to(root):
        raise PathOutsideFolder(
            f"file name {name!r} resolves to {resolved}, outside {root} (a symlink pointing out of the folder)"
        )
    return resolved


def matching_files(base: Path, pattern: str) -> tuple[list[Path], list[str]]:
    """Files under ``base`` matching the relative glob, resolved, in name order; and the
    names of matches refused because a symlink takes them outside ``base``."""
    check_relative(pattern, str(base))
    root = base.resolve()
    found, refused = [], []
    for path in root.glob(pattern):
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            refused.append(path.relative_to(root).as_posix())
        elif resolved.is_file():
            found.append(resolved)
    return sorted(set(found)), sorted(refused)


def is_plain(path: Path | str) -> bool:
    """True when DuckDB reads ``path`` as exactly the file it names, never as a pattern."""
    return PATTERN_CHARACTERS.isdisjoint(str(path))


def without_patterns(path: Path, folder: Path) -> Path:
    """``path`` itself when it is plain, else a hard link (or, across file systems, a symlink)
    to it in ``folder``, which must be plain. The link keeps the file's extension when that is plain."""
    if is_plain(path):
        return path
    if not is_plain(folder):
        raise OSError(
            f"the temporary folder {folder} has one of {''.join(sorted(PATTERN_CHARACTERS))} in its path, "
            "so DuckDB would read it as a pattern; set TMPDIR to a folder without them"
        )
    suffix = path.suffix if is_plain(path.suffix) and len(path.suffix) <= 16 else ""
    link = folder / f"file{suffix}"
    try:
        os.link(path, link)  # the same file even if its name is replaced meanwhile
    except OSError:
        link.symlink_to(path.resolve())
    return link
