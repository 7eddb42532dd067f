"""Training data: the mined images as MANet tensors, the endless sampler, mask marks and the mask cache.

Training samples go through the cross-domain augmenter (:mod:`.augment`); validation samples are
plain letterboxed catalog views. Every draw is reproducible for a given seed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import UserError
from ..fileio import unescape_csv_cell
from ..imaging import letterbox, load_image
from ..models.manet import MANet
from .augment import CrossDomainAugmenter, cutout
from .config import TrainConfig
from .mask_cache import build_mask_cache, load_cached_masks
from .mining import MinedDataset

#: The pseudo-mask cache's folder inside a mined set.
MASK_CACHE_DIR = "masks"


def read_mask_marks(path: str | os.PathLike | None) -> set[tuple[str, str]]:
    """(id, map) pairs an annotator marked wrong; map is "saliency" or "text"."""
    if not path:
        return set()
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Mask marks file {path} does not exist.")
    wrong = set()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"id", "map", "mark"} <= set(reader.fieldnames):
            raise UserError(f"Mask marks file {path.name} needs the columns id,map,mark.")
        for row in reader:
            if unescape_csv_cell(row["mark"]).strip().lower() == "wrong":
                # Ids were escaped against spreadsheet formula injection when written (write_csv).
                wrong.add((unescape_csv_cell(row["id"].strip()), row["map"].strip().lower()))
    return wrong


class MinedImages(Dataset):
    """Mined images with their labels and pseudo masks, as tensors for MANet.

    Training samples go through the cross-domain augmenter (pasted "photos" with exact masks, or
    plain catalog views); validation samples are plain letterboxed catalog views. With `pairs`,
    a training sample is a (photo, catalog view) pair of one image: the photo under the usual keys,
    the view under ``view_*`` keys, and the image's integer ``identity`` (its product id where the
    rows carry one, else its catalog id). With `num_titles`, every sample also has a multi-hot
    ``titles`` target over the title labels.
    """

    def __init__(self, rows: list, mask_dir: Path, config: TrainConfig, mean, std, train: bool,
                 wrong_marks: set[tuple[str, str]] = frozenset(), pairs: bool = False, num_titles: int = 0):
        self.rows = rows
        self.num_titles = num_titles
        self.mask_dir = mask_dir
        self.size = config.input_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.train = train
        self.wrong = wrong_marks
        self.augmenter = CrossDomainAugmenter(size=self.size, p_photo=config.photo_probability) if train else None
        self.seed = config.seed
        self._draws = 0
        self.pairs = pairs and train
        keys = [getattr(row, "product_id", None) or row.id for row in rows]
        numbers = {key: number for number, key in enumerate(dict.fromkeys(keys))}
        self.identities = [numbers[key] for key in keys]

    def __len__(self) -> int:
        return len(self.rows)

    def _masks(self, item_id: str):
        saliency, text = load_cached_masks(self.mask_dir, item_id)
        if (item_id, "saliency") in self.wrong:
            saliency = None
        if (item_id, "text") in self.wrong:
            text = None
        return saliency, text

    def _image(self, row) -> np.ndarray:
        return np.asarray(load_image(row.path, max_side=2 * self.size))

    def __getitem__(self, index: int):
        row = self.rows[index]
        image = self._image(row)
        saliency, text = self._masks(row.id)
        if self.train:
            # Reproducible for a given --seed: torch.initial_seed() is the loader worker's seed (derived
            # from torch.manual_seed), the counter makes each visit of an image draw a new augmentation.
            self._draws += 1
            rng = np.random.default_rng([self.seed, index, torch.initial_seed() % 2**63, self._draws])
            other = self.rows[int(rng.integers(len(self.rows)))]
            distractors = []
            other_saliency, other_text = self._masks(other.id)
            if other.id != row.id and other_saliency is not None and other_saliency.any():
                distractors = [cutout(self._image(other), other_saliency, other_text)]
            if self.pairs:
                photo, view = self.augmenter.pair(image, saliency, text, rng, distractors=distractors)
                item = self._tensors(photo.image, photo.saliency, photo.text)
                item.update({f"view_{key}": value
                             for key, value in self._tensors(view.image, view.saliency, view.text).items()})
                return {**item, **self._labels(index)}
            sample = self.augmenter(image, saliency, text, rng, distractors=distractors)
            picture, saliency_t, text_t = sample.image, sample.saliency, sample.text
        else:
            picture, saliency_t, text_t = _plain_view(image, saliency, text, self.size)
        return {**self._tensors(picture, saliency_t, text_t), **self._labels(index)}

    def _labels(self, index: int) -> dict:
        """Category label (-1: none), identity, and the multi-hot title target when there are title labels."""
        row = self.rows[index]
        labels = {"label": int(row.label), "identity": self.identities[index]}
        if self.num_titles:
            titles = torch.zeros(self.num_titles)
            titles[list(getattr(row, "titles", ()))] = 1.0
            labels["titles"] = titles
        return labels

    def _tensors(self, picture, saliency, text) -> dict:
        """Normalised image tensor and mask targets (zeros plus valid = 0 where a mask is missing)."""
        tensor = torch.from_numpy(np.array(picture, dtype=np.float32)).permute(2, 0, 1).div_(255)
        tensor = (tensor - self.mean) / self.std

        def target(mask):
            if mask is None:
                return torch.zeros(1, self.size, self.size), torch.tensor(0.0)
            return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None], torch.tensor(1.0)

        saliency_target, saliency_valid = target(saliency)
        text_target, text_valid = target(text)
        return {"image": tensor, "saliency": saliency_target, "saliency_valid": saliency_valid,
                "text": text_target, "text_valid": text_valid}


def _plain_view(image: np.ndarray, saliency, text, size: int):
    """Letterbox an image and its masks to size x size (white / zero padding)."""
    from PIL import Image

    from ..imaging import letterbox_box

    height, width = image.shape[:2]
    picture = np.asarray(letterbox(Image.fromarray(image), size))
    left, top, new_w, new_h = letterbox_box(width, height, size)

    def place(mask):
        if mask is None:
            return None
        import cv2

        canvas = np.zeros((size, size), np.float32)
        canvas[top:top + new_h, left:left + new_w] = cv2.resize(
            mask.astype(np.float32) / 255.0, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return canvas

    return picture, place(saliency), place(text)


class EndlessSampler(torch.utils.data.Sampler):
    """Shuffled indices forever (iteration-based training), split across distributed ranks."""

    def __init__(self, size: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.seed, self.rank, self.world = size, seed, rank, world

    def __iter__(self) -> Iterator[int]:
        epoch = 0
        while True:
            generator = torch.Generator().manual_seed(self.seed * 1000 + epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
            yield from order[self.rank::self.world]
            epoch += 1


def prepare_masks(dataset: MinedDataset, workers: int = 2, job=None) -> Path:
    """Build (or reuse) the pseudo-mask cache next to the mined set."""
    cache = Path(dataset.root) / MASK_CACHE_DIR
    items = [(row.id, Path(row.path)) for row in dataset.train + dataset.val]
    build_mask_cache(items, cache, workers=workers, job=job)
    return cache


def external_saliency(batch, device, model: MANet):
    """Saliency input for the external-saliency variant: the pseudo mask, all ones where none."""
    if not model.external_saliency:
        return None
    masks = batch["saliency"].clone()
    missing = batch["saliency_valid"] == 0
    masks[missing] = 1.0
    return masks.to(device)
