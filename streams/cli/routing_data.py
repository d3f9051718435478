"""Routing datasets for `tierline train` and `tierline eval`: load them, check the model names.

Errors become click errors that say what is wrong and what would be right
(the models a dataset does have), so a typo in `--weak` costs one try.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tierline.streams.cli.common import say

if TYPE_CHECKING:
    from tierline.processors.learning.datasets import Dataset

dataset_option = click.option(
    "--dataset",
    "datasets",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A routing dataset (.jsonl, or RouterBench-style .csv); repeat for several.",
)
strong_option = click.option(
    "--strong", required=True, help="The strong model, named as in the dataset."
)
weak_option = click.option(
    "--weak", required=True, help="The weak (cheap) model, named as in the dataset."
)


def load_datasets(paths: Sequence[Path], strong: str, weak: str) -> list[Dataset]:
    """Load every file (progress on stderr); fail unless both models appear in them."""
    from tierline.processors.learning.datasets import DatasetError, load_dataset

    loaded = []
    for path in paths:
        try:
            dataset = load_dataset(path)
        except (DatasetError, OSError, UnicodeDecodeError) as error:
            raise click.ClickException(f"{path}: {error}") from None
        say(f"loaded {path}: {len(dataset)} prompts ({dataset.duplicates} duplicate ids dropped)")
        loaded.append(dataset)
    models = sorted({model for dataset in loaded for model in dataset.models})
    for role, model in (("--strong", strong), ("--weak", weak)):
        if model not in models:
            raise click.BadParameter(
                f"{model!r} is in no dataset; models: {', '.join(models) or 'none'}",
                param_hint=role,
            )
    if strong == weak:
        raise click.BadParameter("the strong and the weak model must differ", param_hint="--weak")
    return loaded
