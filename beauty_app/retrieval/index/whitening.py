"""PCA whitening of catalog vectors, and the L2 normalisation every search vector goes through."""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ...errors import IndexStoreError


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, contiguous: what faiss takes); zero rows stay zero."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass
class PCAWhitening:
    """PCA whitening learned on catalog vectors: x -> L2norm(P (x - mean)).

    The projection scales each principal direction by 1/sqrt(eigenvalue) (with a small floor so
    near-empty directions are not blown up), which is the classic Jegou & Chum (2012) recipe.
    """

    mean: np.ndarray
    projection: np.ndarray  # (out_dim, in_dim)

    @classmethod
    def learn(cls, vectors: np.ndarray, dim: int | None = None, eps: float = 1e-6) -> PCAWhitening:
        """Whitening learned from all `vectors` at once, reduced to `dim` dimensions (None: keep all)."""
        return cls.learn_chunks([vectors], dim, eps)

    @classmethod
    def learn_chunks(cls, chunks: Iterable[np.ndarray], dim: int | None = None, eps: float = 1e-6) -> PCAWhitening:
        """:meth:`learn` from vectors given chunk by chunk (memory: one chunk and a dim x dim matrix).

        Sums are taken around the first chunk's mean, so the covariance keeps its precision even
        though it is never formed from all vectors at once.
        """
        count, shift, total, outer = 0, None, None, None
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float64)
            if not len(chunk):
                continue
            if shift is None:
                shift = chunk.mean(axis=0)
                total = np.zeros_like(shift)
                outer = np.zeros((len(shift), len(shift)))
            centred = chunk - shift
            count += len(chunk)
            total += centred.sum(axis=0)
            outer += centred.T @ centred
        if count < 2:
            raise IndexStoreError("PCA whitening needs at least two catalog images.")
        mean = shift + total / count
        cov = (outer - np.outer(total, total) / count) / (count - 1)
        n_vectors, vector_dim = count, len(mean)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1]
        keep = min(dim or vector_dim, vector_dim, n_vectors - 1)
        order = order[:keep]
        floor = eigval[order].max() * eps + 1e-12
        projection = (eigvec[:, order] / np.sqrt(np.maximum(eigval[order], floor))).T
        return cls(mean.astype(np.float32), projection.astype(np.float32))

    @property
    def out_dim(self) -> int:
        return int(self.projection.shape[0])

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """Whitened, L2-normalised `vectors` (N, in_dim) -> (N, out_dim)."""
        return normalize((np.asarray(vectors, np.float32) - self.mean) @ self.projection.T)

    def to_bytes(self) -> bytes:
        """The .npz bytes stored in the index database."""
        buffer = io.BytesIO()
        np.savez(buffer, mean=self.mean, projection=self.projection)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PCAWhitening:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            return cls(arrays["mean"], arrays["projection"])
