r"""Datasets for training and evaluating larq-irnet models, as `tf.data` pipelines.

Images come as raw pixels (uint8 arrays, float32 0..255 in the pipelines); models
normalize inside themselves, so a converted .tflite model takes the same input a camera
gives.

Three modules, as larq-zoo keeps its datasets apart from their preprocessing:

| module | what it holds |
|---|---|
| `sources` | where the data comes from: `DATASETS`, `load_arrays`, `load_split`, the file readers |
| `augmentation` | `pad_crop_flip`, `imagenet_train_image`, `imagenet_eval_image`, jitter |
| `pipelines` | `make_dataset`, and the `array_dataset` / `jpeg_dataset` streams under it |

Every public name of the three is importable from `larq_irnet.training.data` itself.

```python
from larq_irnet.training.data import make_dataset

train = make_dataset("cifar10", "train", 128, data_dir="~/data/cifar-10-batches-py")
test = make_dataset("cifar10", "test", 500, data_dir="~/data/cifar-10-batches-py")
model.fit(train, steps_per_epoch=50000 // 128, epochs=400, validation_data=test)
```

# References
- [Forward and Backward Information Retention for Accurate Binary Neural Networks
  (Qin et al., CVPR 2020), Sec. 4](https://arxiv.org/abs/1909.10788); augmentation as
  in the authors' CIFAR-10 trainers and ImageNet configs.
"""

from larq_irnet.training.data import augmentation, pipelines, sources
from larq_irnet.training.data.augmentation import (
    color_jitter,
    imagenet_eval_image,
    imagenet_train_image,
    pad_crop_flip,
    random_color_jitter,
)
from larq_irnet.training.data.pipelines import array_dataset, jpeg_dataset, make_dataset
from larq_irnet.training.data.sources import (
    CIFAR10_BATCHES,
    DATASETS,
    FASHION_MNIST_DIR,
    DatasetInfo,
    dataset_info,
    load_arrays,
    load_cifar10,
    load_fashion_mnist,
    load_split,
    read_idx,
)

__all__ = [
    "CIFAR10_BATCHES",
    "DATASETS",
    "FASHION_MNIST_DIR",
    "DatasetInfo",
    "array_dataset",
    "augmentation",
    "color_jitter",
    "dataset_info",
    "imagenet_eval_image",
    "imagenet_train_image",
    "jpeg_dataset",
    "load_arrays",
    "load_cifar10",
    "load_fashion_mnist",
    "load_split",
    "make_dataset",
    "pad_crop_flip",
    "pipelines",
    "random_color_jitter",
    "read_idx",
    "sources",
]
