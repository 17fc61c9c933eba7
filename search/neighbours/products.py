"""Blocks of float32 scores between a matrix's rows, in numpy or on a torch device."""

from __future__ import annotations

from typing import Any

import numpy as np

from soundalike.search.neighbours.candidates import Found
from soundalike.search.neighbours.exact import _kth_largest, _positions


class _NumpyProducts:
    """Blocks of float32 scores between the rows of a matrix, in numpy (BLAS). `_TorchProducts`
    does the same on a torch device through the four array primitives at the end."""

    def __init__(self, rows_of: np.ndarray) -> None:
        self._rows_of = self._array(rows_of)

    def scores(self, start: int, stop: int, left: int, right: int) -> Any:
        """Rows [start, stop) against rows [left, right), a row never scoring itself."""
        scores = self._rows_of[start:stop] @ self._rows_of[left:right].T
        both = self._arange(max(start, left), min(stop, right))
        scores[both - start, both - left] = -np.inf
        return scores

    def kth_best(self, scores: Any, columns: int, kk: int) -> np.ndarray:
        """Each row's kk-th best score among the first `columns`."""
        return _kth_largest(scores[:, :columns], kk)

    def at_least(
        self,
        scores: Any,
        start: int,
        left: int,
        *,
        row_limits: np.ndarray | None = None,
        column_limits: np.ndarray | None = None,
    ) -> Found:
        """(row, column, score) of the scores at least their row's limit, or their column's
        (limits for the last columns only), as indices of the whole matrix."""
        if row_limits is not None:
            offset, part = 0, scores
            mask = part >= self._array(row_limits)[:, None]
        else:
            assert column_limits is not None
            offset = scores.shape[1] - column_limits.size
            part = scores[:, offset:]
            mask = part >= self._array(column_limits)[None, :]
        rows, columns = self._positions(mask)
        found = part[rows, columns]
        return (
            start + self._numpy(rows),
            left + offset + self._numpy(columns),
            self._numpy(found),
        )

    def _array(self, values: np.ndarray) -> Any:
        return values

    def _arange(self, first: int, stop: int) -> Any:
        return np.arange(first, max(first, stop))

    def _positions(self, mask: Any) -> tuple[Any, Any]:
        return _positions(mask)

    def _numpy(self, values: Any) -> np.ndarray:
        return values


class _TorchProducts(_NumpyProducts):
    """The same on a torch device: the matrix stays there, only the candidates come back."""

    def __init__(self, rows_of: np.ndarray, device: str) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)
        super().__init__(rows_of)

    def scores(self, start: int, stop: int, left: int, right: int) -> Any:
        # The candidate window (`error_margin`) bounds float32 rounding; TF32's 10-bit
        # mantissa (which a process may have allowed for its own matmuls) is far coarser.
        matmul = self._torch.backends.cuda.matmul
        allowed = matmul.allow_tf32
        matmul.allow_tf32 = False
        try:
            return super().scores(start, stop, left, right)
        finally:
            matmul.allow_tf32 = allowed

    def kth_best(self, scores: Any, columns: int, kk: int) -> np.ndarray:
        kth = self._torch.topk(scores[:, :columns], kk, dim=1, sorted=True).values[:, -1]
        return self._numpy(kth)

    def _array(self, values: np.ndarray) -> Any:
        return self._torch.from_numpy(values).to(self._device)

    def _arange(self, first: int, stop: int) -> Any:
        return self._torch.arange(first, max(first, stop), device=self._device)

    def _positions(self, mask: Any) -> tuple[Any, Any]:
        rows, columns = self._torch.nonzero(mask, as_tuple=True)
        return rows, columns

    def _numpy(self, values: Any) -> np.ndarray:
        return values.cpu().numpy()


def _products(rows_of: np.ndarray, device: str | None) -> _NumpyProducts | _TorchProducts:
    return _NumpyProducts(rows_of) if device is None else _TorchProducts(rows_of, device)


def products_device(setting: str) -> str | None:
    """The torch device a full build's products run on for a device setting (`auto`, `cpu`,
    `cuda`, `cuda:N`): None (numpy) for the CPU, where numpy's BLAS is as fast as torch's
    and torch need not be imported; `auto` takes CUDA when torch sees one."""
    if setting == "cpu":
        return None
    if setting == "auto":
        try:
            import torch
        except ImportError:
            return None
        return "cuda" if torch.cuda.is_available() else None
    return setting
