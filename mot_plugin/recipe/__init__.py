"""The recipe: an Axolotl YAML whose keys every branch shares, plus a strict `mot:` block.

Light on purpose: no torch, axolotl or mergekit imports. `load_recipe` validates the schema and
the inputs it names (dataset files, the student) and raises `RecipeError` with a one-line message
that names the file, key or line at fault. `schema` holds the models, `load` the reading, `files`
the check of the files it names, `resolved` the validated `Recipe`.
"""

from mot_plugin.errors import validation_message
from mot_plugin.fields import LINE, MODULE, NAME, PATTERN_MESSAGES, SIZE, Line, Module, Name
from mot_plugin.recipe.files import check_inputs, model_problem
from mot_plugin.recipe.load import load_recipe, parse_recipe
from mot_plugin.recipe.resolved import SEED_DIR, Recipe, dump_yaml, seed_run_dirs, size_bytes, with_seed
from mot_plugin.recipe.schema import (ADAPTERS, DATASET_SUFFIXES, DTYPES, HUB_ID, PLANNER_KEYS, SHARED_ONLY_KEYS,
                                      Candidate, Eval, Launch, Merge, MotConfig, RecipeError, Teacher)

__all__ = ["ADAPTERS", "DATASET_SUFFIXES", "DTYPES", "HUB_ID", "LINE", "MODULE", "NAME", "PATTERN_MESSAGES",
           "PLANNER_KEYS", "SEED_DIR", "SHARED_ONLY_KEYS", "SIZE", "Candidate", "Eval", "Launch", "Line", "Merge",
           "Module", "MotConfig", "Name", "Recipe", "RecipeError", "Teacher", "check_inputs", "dump_yaml",
           "load_recipe", "model_problem", "parse_recipe", "seed_run_dirs", "size_bytes", "validation_message",
           "with_seed"]
