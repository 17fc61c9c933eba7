"""A live library: music folders kept in sync with the store while the server answers queries.

- `files.py`: what a library root contains (exclude globs, symlink policy, nothing read outside
  the roots) and a catalogue source over an explicit list of its files.
- `sync.py`: one batch of changes through the ingest pipeline's stages (identify, skip stored,
  decode, embed, write, retire superseded), plus what the pipeline has no stage for: moved files
  keep their vectors, vanished files are removed, only affected artists are recomputed.
- `library.py`: the scheduler: a background scan at start, file-system events (watchfiles)
  debounced into batches, a periodic rescan, and the status the HTTP routes report.
"""

from soundalike.ingest.library.files import LibraryConfig
from soundalike.ingest.library.library import Library, LibraryStatus

__all__ = ["Library", "LibraryConfig", "LibraryStatus"]
