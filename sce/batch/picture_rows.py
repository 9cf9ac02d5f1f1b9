"""What ``sce batch --plot`` keeps of a run as it streams past, in bounded memory: every
counted row's loss (beyond LOSS_LIMIT rows, an evenly spaced sample of them), and the
first HEAT_MAP_ROWS rows' gradients."""

from __future__ import annotations

import numpy as np

from sce.loss import SoftmaxCrossEntropyResult

#: Rows whose losses are all kept; beyond, every 2nd, then every 4th … (between half and all of this many).
LOSS_LIMIT = 1_000_000
#: Rows of the gradient's heat map: a few hundred are still rows one can tell apart.
HEAT_MAP_ROWS = 300
#: Columns of the heat map: the first classes, beyond which a cell would be thinner than a pixel.
HEAT_MAP_CLASSES = 200


class PictureRows:
    """The rows a batch picture draws, gathered block by block (:meth:`add`).

    Examples
    --------
    >>> from sce import softmax_cross_entropy
    >>> kept = PictureRows()
    >>> kept.add(softmax_cross_entropy([[2.0, 3.0, 4.0], [1.0, 1.0, 1.0]], [1, -100], reduction="none"))
    >>> kept.rows, kept.losses().round(4).tolist(), kept.gradient.shape, kept.ignored
    (2, [1.4076], (2, 3), 1)
    """

    def __init__(
        self, loss_limit: int = LOSS_LIMIT, heat_map_rows: int = HEAT_MAP_ROWS, heat_map_classes: int = HEAT_MAP_CLASSES
    ) -> None:
        self.loss_limit, self.heat_map_rows, self.heat_map_classes = loss_limit, heat_map_rows, heat_map_classes
        self.rows = 0
        self.ignored = 0
        self.stride = 1
        """Every ``stride``-th counted row's loss is kept."""
        self.counted = 0
        self.kept: list[np.ndarray] = []
        self.kept_count = 0
        self.gradient_blocks: list[np.ndarray] = []
        self.gradient_rows = 0
        self.classes = 0

    def add(self, result: SoftmaxCrossEntropyResult) -> None:
        rows = result.as_rows
        self.classes = rows.num_classes
        self.rows += rows.num_rows
        counted = np.asarray(rows.counted, dtype=bool)
        self.ignored += int((~counted).sum())
        losses = np.asarray(rows.losses, dtype=np.float64)[counted]
        # The counted rows numbered counted, counted + 1, …: keep those that fall on the stride.
        numbers = self.counted + np.arange(losses.size)
        self.counted += losses.size
        self._keep(losses[numbers % self.stride == 0])
        if self.gradient_rows < self.heat_map_rows:
            wanted = self.heat_map_rows - self.gradient_rows
            block = np.array(rows.gradient[:wanted, : self.heat_map_classes], dtype=np.float64)
            self.gradient_blocks.append(block)
            self.gradient_rows += block.shape[0]

    def _keep(self, losses: np.ndarray) -> None:
        self.kept.append(losses)
        self.kept_count += losses.size
        while self.kept_count > self.loss_limit:
            # Every other kept loss: the kept ones stay evenly spaced, one in 2·stride rows.
            merged = np.concatenate(self.kept)
            self.kept = [merged[::2]]
            self.kept_count = self.kept[0].size
            self.stride *= 2

    def losses(self) -> np.ndarray:
        """The kept losses of counted rows, in row order."""
        return np.concatenate(self.kept) if self.kept else np.empty(0)

    @property
    def gradient(self) -> np.ndarray:
        """The first rows' gradients, as the output writes them: up to HEAT_MAP_ROWS rows of the first
        HEAT_MAP_CLASSES classes."""
        if not self.gradient_blocks:
            return np.empty((0, min(self.classes, self.heat_map_classes)))
        return np.concatenate(self.gradient_blocks)
