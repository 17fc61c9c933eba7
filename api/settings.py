"""The one settings object. Only entry points (CLI, app factory) build it from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from soundalike.core.errors import InvalidRequest
from soundalike.ingest.defaults import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_EXCERPT,
    DEFAULT_LAYER,
    DEFAULT_MIN_DURATION_SECONDS,
    DEFAULT_MODEL,
    DEFAULT_SILENCE_RMS,
    DEFAULT_WINDOW_SECONDS,
    DEFAULT_WORKERS,
)
from soundalike.search.neighbours import APPROXIMATE_ABOVE
from soundalike.search.store import QUANTIZE_TRACKS, NeighbourConfig, StoreConfig

if TYPE_CHECKING:
    from soundalike.api.uploads import UploadLimits
    from soundalike.ingest.library import LibraryConfig
    from soundalike.mixes.plan import MixOptions

# Shorter keys are guessable; an empty one (an unset `${API_KEY}` in compose) would let an
# empty `Bearer` through.
MIN_API_KEY_LENGTH = 16


class Settings(BaseSettings):
    """Every knob of soundalike. Environment: `SOUNDALIKE_<FIELD>`; CLI flags override it."""

    model_config = SettingsConfigDict(env_prefix="SOUNDALIKE_", extra="ignore")

    # --- embedding ---------------------------------------------------------------------
    model: str = Field(
        DEFAULT_MODEL, description="Hub id or local directory of a MERT-v1 checkpoint."
    )
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) of `model`."
    )
    layer: int = Field(
        DEFAULT_LAYER, ge=0, le=12, description="Transformer layer whose output is pooled (0..12)."
    )
    device: str = Field(
        "auto",
        description="`auto` (CUDA when present), `cpu`, `cuda` or `cuda:N` (ROCm: also `cuda`), "
        "`mps` (untested): runs the model, and the products of a full rebuild of the "
        "neighbour lists.",
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=512,
        description="Windows of equal length per forward pass; unset: auto (on CUDA sized to "
        f"the free device memory, elsewhere {DEFAULT_BATCH_SIZE}).",
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="The model's compute precision: `auto` (bf16 on CUDA and on CPUs with native "
        "bf16, AVX512_BF16 or AMX; fp32 elsewhere), `fp32`, or `bf16` (refused on a CPU "
        "without native bf16, where it runs ~40x slower). Each track records its precision.",
    )
    excerpt: str = Field(
        DEFAULT_EXCERPT,
        description="Which part of a track is embedded: `centre`, `start` or `windows:N`.",
    )
    window_seconds: float = Field(
        DEFAULT_WINDOW_SECONDS, gt=0, le=120, description="Length of one window in seconds."
    )
    min_duration_seconds: float = Field(
        DEFAULT_MIN_DURATION_SECONDS,
        gt=0,
        description="Shorter tracks are refused (reported, not embedded).",
    )
    silence_rms: float = Field(
        DEFAULT_SILENCE_RMS,
        ge=0,
        description="Windows whose RMS is below this (linear, 1.0 = full scale) are silent.",
    )
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Decoding processes during ingest; unset: auto (with a GPU the host's cores "
        f"less 2, elsewhere {DEFAULT_WORKERS}).",
    )

    # --- store -------------------------------------------------------------------------
    data_dir: Path = Field(
        Path("./soundalike-data"),
        description="Where the embedded store (Qdrant Edge) keeps its data.",
    )
    collection_prefix: str = Field(
        "", pattern=r"^[A-Za-z0-9_-]*$", description="Prefix of the `tracks`/`artists` collections."
    )
    qdrant_url: str | None = Field(
        None,
        description="A Qdrant server or cluster (e.g. `http://qdrant:6333`); unset = embedded.",
    )
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server.")
    qdrant_timeout: float = Field(
        30.0, gt=0, description="Seconds per request to the Qdrant server."
    )
    shard_number: int = Field(1, ge=1, description="Shards per collection on a Qdrant cluster.")
    replication_factor: int = Field(
        1, ge=1, description="Copies of each shard on a Qdrant cluster."
    )
    filterable_columns: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Manifest columns searches may filter on (comma-separated), indexed at ingest.",
    )
    search_ef: int = Field(
        128, ge=1, le=100_000, description="HNSW candidates per vector search (recall vs speed)."
    )
    quantize_tracks: bool = Field(
        QUANTIZE_TRACKS,
        description="A new store keeps int8 copies of the track vectors in memory for searches "
        "and the float32 originals on disk to rescore their hits (an existing store keeps what "
        "it was created with).",
    )
    approximate_neighbours_above: int = Field(
        APPROXIMATE_ABOVE,
        ge=0,
        description="A full rebuild of the neighbour lists of more artists than this, its "
        "products on the CPU, builds approximate lists (an inverted file: hours become minutes "
        "at 1M artists; recall in docs/benchmarks.md); 0: always exact.",
    )
    similar_lookup: bool = Field(
        True,
        description="Answer artists-like-X from the precomputed neighbour lists; false forces "
        "the live HNSW search.",
    )
    artists_in_memory: bool = Field(
        True,
        description="Embedded store: keep the artists (centroids, names, neighbour lists) in "
        "memory, read in the background at start-up, so artists-like-X needs no store read "
        "and list upkeep costs what changed (about 4 KB per artist: 400 MB at 100k).",
    )

    # --- music servers -----------------------------------------------------------------
    subsonic_password: SecretStr | None = Field(
        None,
        description="Password of the user in a `subsonic+http://USER@HOST` ingest URL (and "
        "for streaming its tracks); never put it in the URL.",
    )
    subsonic_api_key: SecretStr | None = Field(
        None,
        description="OpenSubsonic API key of that server; used instead of user and password.",
    )

    # --- sonic mixes on the media server (`soundalike serve`) ---------------------------
    mixes_url: str | None = Field(
        None,
        description="A Subsonic server `subsonic+http(s)://USER@HOST:PORT` (password: "
        "`SOUNDALIKE_SUBSONIC_PASSWORD`) whose user's sonic mixes `soundalike serve` keeps as "
        'playlists, and where the front end\'s "Save as playlist" writes; unset: neither.',
    )
    mixes_every: float = Field(
        24 * 3600.0,
        ge=0,
        description="How often the mixes are refreshed: seconds, or `30m`, `24h`, `7d`; `0`: "
        "only after library changes and on `POST /mixes/refresh`.",
    )
    mixes_after_tracks: int = Field(
        100,
        ge=0,
        description="Refresh the mixes once this many tracks were ingested in this process "
        "since the last refresh (a library change big enough to matter); `0`: never for that.",
    )
    mixes_count: int = Field(3, ge=1, le=20, description="Most mixes kept (`Sonic Mix 1..N`).")
    mixes_size: int = Field(25, ge=1, le=200, description="Songs per mix.")
    mixes_prefix: str = Field(
        "Sonic Mix", min_length=1, max_length=100, description="Mix playlists' names: PREFIX N."
    )

    # --- live library (`soundalike serve --library DIR`) ----------------------------------
    library: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Music folders `soundalike serve` scans and keeps in sync (comma-separated).",
    )
    library_artist_from: Literal["folders", "tags"] = Field(
        "folders", description="Artist of a library file: its first folder level, or its tags."
    )
    library_exclude: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Globs of library paths (relative to their folder) or names to skip "
        "(comma-separated), e.g. `Podcasts,*.part`.",
    )
    library_follow_symlinks: bool = Field(
        False,
        description="Follow symlinks inside the library folders (one leading outside them is "
        "always refused and reported).",
    )
    library_watch: bool = Field(
        True, description="Follow file-system events; `false` relies on the periodic rescan."
    )
    library_rescan_seconds: float = Field(
        3600.0,
        ge=0.5,
        description="Full rescan interval (mounts without events: NFS, SMB).",
    )
    library_debounce_seconds: float = Field(
        2.0,
        ge=0,
        le=600,
        description="Quiet time before changes are ingested; files modified more recently wait.",
    )
    library_allow_new_roots: bool = Field(
        False,
        description="`POST /library/scan` (and `soundalike ingest --server`) may add a folder "
        "outside the library folders.",
    )

    # --- HTTP API ----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `soundalike serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `soundalike serve` binds.")
    api_key: SecretStr | None = Field(
        None, description="When set, every route but health needs `Authorization: Bearer <key>`."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated origins allowed by CORS (browser front ends).",
    )
    max_upload_mb: float = Field(
        50.0, gt=0, description="Largest accepted upload for /search/audio."
    )
    upload_read_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="An upload whose body has not fully arrived by then is refused (slow clients).",
    )
    embed_concurrency: int = Field(
        1, ge=1, le=64, description="Uploads embedded at once (a bounded worker pool)."
    )
    embed_queue: int = Field(
        4, ge=0, le=1024, description="Uploads allowed to wait for a worker before 503 Retry-After."
    )
    request_timeout_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A request with no answer by then gets 503 + Retry-After (a stuck store).",
    )
    load_model: Literal["lazy", "startup"] = Field(
        "lazy", description="Load the model on the first upload (`lazy`) or when the server starts."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level."
    )

    @field_validator("excerpt")
    @classmethod
    def _valid_excerpt(cls, value: str) -> str:
        from soundalike.ingest.excerpt import ExcerptPolicy  # PyAV loads only when validating

        try:
            return str(ExcerptPolicy.parse(value))
        except InvalidRequest as error:
            raise ValueError(error.message) from None

    @field_validator("mixes_url")
    @classmethod
    def _subsonic_url(cls, value: str | None) -> str | None:
        from soundalike.ingest.sources.subsonic_client import ServerAddress

        if value is None or not value.strip():
            return None
        try:
            ServerAddress.parse(value)
        except InvalidRequest as error:
            raise ValueError(error.message) from None
        return value.strip()

    @field_validator("mixes_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip().lower()
            units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
            if text and text[-1] in units:
                try:
                    return float(text[:-1]) * units[text[-1]]
                except ValueError:
                    raise ValueError(
                        "a duration is seconds, or a number and s, m, h or d"
                    ) from None
        return value

    @field_validator("api_key")
    @classmethod
    def _strong_api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_API_KEY_LENGTH} characters (it is "
                f"{len(value.get_secret_value())}); leave SOUNDALIKE_API_KEY unset to run "
                "without a key"
            )
        return value

    @field_validator(
        "cors_origins", "filterable_columns", "library", "library_exclude", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    def store_config(self) -> StoreConfig:
        """What `open_store` opens for these settings (CLI and app open alike)."""
        return StoreConfig(
            data_dir=self.data_dir,
            url=self.qdrant_url,
            api_key=self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None,
            collection_prefix=self.collection_prefix,
            timeout=self.qdrant_timeout,
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            search_ef=self.search_ef,
            artists_in_memory=self.artists_in_memory,
            quantize_tracks=self.quantize_tracks,
            neighbours=NeighbourConfig(
                device=self.device,
                # 0 (the settings' "never"): always exact.
                approximate_above=self.approximate_neighbours_above or None,
            ),
        )

    def library_config(self) -> LibraryConfig:
        """The live library's section (`soundalike serve --library`)."""
        from soundalike.ingest.autosize import auto_workers
        from soundalike.ingest.library import LibraryConfig

        return LibraryConfig(
            roots=tuple(self.library),
            artist_from=self.library_artist_from,
            exclude=tuple(self.library_exclude),
            follow_symlinks=self.library_follow_symlinks,
            watch=self.library_watch,
            rescan_seconds=self.library_rescan_seconds,
            debounce_seconds=self.library_debounce_seconds,
            allow_new_roots=self.library_allow_new_roots,
            workers=auto_workers(self.workers, self.device),
        )

    def mix_options(self) -> MixOptions:
        """What the served mixes refresh writes (`soundalike mixes` flags, from settings)."""
        from soundalike.mixes.plan import MixOptions

        return MixOptions(count=self.mixes_count, size=self.mixes_size, prefix=self.mixes_prefix)

    def upload_limits(self) -> UploadLimits:
        """The uploads' section (`POST /search/audio`)."""
        from soundalike.api.uploads import UploadLimits

        return UploadLimits(
            concurrency=self.embed_concurrency,
            queue=self.embed_queue,
            max_bytes=int(self.max_upload_mb * 1024 * 1024),
            read_seconds=self.upload_read_seconds,
        )
