"""The Ray engine's place on the command line: `--engine ray` for `r1f generate`, `r1f judge`, `r1f filter` and
`r1f eval`.

It adds no command of its own. Loading this module (the r1f face does, as it does every package's cli)
registers the engine with each stage's command, so no stage imports this package (`r1f eval` finds it among the
factory's samplers). Nothing heavy loads here: Ray and the engine code load only when a command runs with
`--engine ray`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalogs.clikit import command_group
from factory import cli as factory_cli
from filters import cli as filters_cli
from judges import cli as judges_cli

if TYPE_CHECKING:
    from catalogs.store import Catalog

app = command_group()


def _generate(recipe: Any, catalog: Catalog, *, address: str | None, workers: int | None) -> dict[str, Any]:
    from scaleout.generate import generate_on_ray

    return generate_on_ray(recipe, catalog, address=address, workers=workers)


def _sample(recipe: Any, catalog: Catalog, **kwargs: Any) -> dict[str, Any]:
    from scaleout.generate import sample_on_ray

    return sample_on_ray(recipe, catalog, **kwargs)


def _judge(catalog: Catalog, recipe: Any, progress: Any = None, *, address: str | None,
           workers: int | None) -> dict[str, dict[str, int]]:
    from scaleout.stages import judge_on_ray

    return judge_on_ray(catalog, recipe, progress, address=address, workers=workers)


def _filter(catalog: Catalog, recipe: Any, progress: Any = None, *, address: str | None,
            workers: int | None) -> dict[str, dict[str, int]]:
    from scaleout.stages import filter_on_ray

    return filter_on_ray(catalog, recipe, progress, address=address, workers=workers)


factory_cli.ENGINES["ray"] = _generate
factory_cli.SAMPLERS["ray"] = _sample
judges_cli.ENGINES["ray"] = _judge
filters_cli.ENGINES["ray"] = _filter
