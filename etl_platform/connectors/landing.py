"""The local landing folder: files dropped here are what file pipelines read."""

from dataclasses import dataclass
from pathlib import Path

from etl_platform import settings


@dataclass(frozen=True)
class LocalFolder:
    """Files under one base folder. Globs cannot reach outside it."""

    root: Path

    def list(self, pattern: str) -> list[Path]:
        """Files matching ``pattern`` (relative glob), in name order."""
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ValueError(f"file pattern {pattern!r} must stay inside the landing folder")
        root = self.root.resolve()
        found = []
        for path in root.glob(pattern):
            resolved = path.resolve()
            # A symlink inside the folder may point anywhere; only follow it if it stays inside.
            if path.is_file() and resolved.is_relative_to(root):
                found.append(resolved)
        return sorted(found)

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()


def landing_folder() -> LocalFolder:
    return LocalFolder(settings.landing_dir())
