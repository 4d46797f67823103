"""Training, apart from the models: recipes, optimization, data, the run directory,
the trainer and `larq-irnet train`.

```python
from larq_irnet.training import TrainOptions, train

summary = train("fashion_mnist-resnet20-1w1a", "runs/fmnist", TrainOptions(epochs=2))
print(summary["final_test_accuracy"])
```

- `recipes`: the paper's training settings as data (`Recipe`, `RECIPES`).
- `optimization`: learning-rate schedules, optimizers, coupled weight decay.
- `data`: the datasets, their augmentation and the deterministic, resumable streams.
- `run_directory`: what a run writes and the protocol of resuming it (one module).
- `trainer`: `train()` and its steps; `cli`: `larq-irnet train`.
"""

from larq_irnet.training.recipes import RECIPES, Recipe, get_recipe
from larq_irnet.training.run_directory import RunDirectoryInUse
from larq_irnet.training.trainer import (
    INTERRUPTED,
    MAX_SEED,
    STRATEGIES,
    TrainOptions,
    train,
)

__all__ = [
    "INTERRUPTED",
    "MAX_SEED",
    "RECIPES",
    "STRATEGIES",
    "Recipe",
    "TrainOptions",
    "RunDirectoryInUse",
    "get_recipe",
    "train",
]
