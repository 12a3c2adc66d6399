"""The project's exception hierarchy: one root, one subclass per kind of mistake.

Every error names where it happened (file, task, key path) so that a message read in a
log, a CLI or the Airflow UI is enough to find and fix the problem. ``exit_code`` is the
status the ``alamode`` command exits with for that class.
"""

from __future__ import annotations


class AlamodeError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 3

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        task: str | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.task = task
        self.key = key
        super().__init__(reason)

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.task is not None:
            where.append(f"task {self.task!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        return ": ".join([*where, self.reason])

    def in_file(self, file: str) -> AlamodeError:
        """Attach the file name to an error raised before the file was known."""
        if self.file is None:
            self.file = str(file)
        return self


class DefinitionError(AlamodeError):
    """The pipeline as written in the DSL cannot be encoded."""

    exit_code = 4


class TaskNameError(DefinitionError):
    """A task name that is not a valid Airflow task id, or is used twice."""


class SpecValueError(DefinitionError):
    """A spec (or meta) that is not a dictionary, uses a reserved key, or holds a value
    with no bencode form."""


class DependencyError(DefinitionError):
    """A dependency on itself, on an unknown task or on a task of another Dag."""


class CycleError(DependencyError):
    """The dependencies form a cycle; ``cycle`` lists its tasks in order."""

    def __init__(self, cycle: list[str], **where: str | None) -> None:
        self.cycle = list(cycle)
        path = " -> ".join([*cycle, cycle[0]])
        super().__init__(f"dependency cycle: {path}", **where)


class FileFormatError(AlamodeError):
    """Bytes that are not an a-la-mode file: not bencode, truncated, wrong shape."""

    exit_code = 5


class FileTooLargeError(FileFormatError):
    """A file over a configured limit: of bytes (refused before being read) or of
    values (refused before any is decoded)."""


class IntegrityError(AlamodeError):
    """A well-formed file whose IDs or digest do not match its content: it was tampered
    with or corrupted."""

    exit_code = 6


class PipelineImportError(AlamodeError):
    """A pipeline's Python file could not be imported, or defines no Dag."""

    exit_code = 7


class StoreError(AlamodeError):
    """The output store could not be read or written (an I/O error); the message names
    the path and the operating system's reason."""

    exit_code = 9


class NotAStoreError(StoreError):
    """A storage root that does not exist, is not a folder, or holds files but none of
    a store's folders: most likely a mistyped ``--store``."""

    exit_code = 10
