"""File names and globs that cannot leave their base folder.

Used by every file connection's listing and by anything else that turns a name it
was given (a spec's glob, a sensor's event) into a path: ``..``, absolute paths and
symlinks that resolve outside the folder are refused.
"""

from pathlib import Path, PurePosixPath, PureWindowsPath


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
        raise PathOutsideFolder(f"file name {name!r} resolves to {resolved}, outside {root} (a symlink pointing out of the folder)")
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
