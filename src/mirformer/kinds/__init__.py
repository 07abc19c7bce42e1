"""Model kinds: importing this package registers every built-in kind, in report order."""

# The order of these imports is the order of the kinds in reports.
from mirformer.kinds import spectroformer  # noqa: F401, I001
from mirformer.kinds import tokenformer  # noqa: F401
from mirformer.kinds import codebookformer  # noqa: F401
from mirformer.kinds import patchifier  # noqa: F401
from mirformer.kinds.base import KINDS, MODES, InputSpec, ModelKind, PretrainStage, parse_setup, setup_names

__all__ = ["KINDS", "MODES", "InputSpec", "ModelKind", "PretrainStage", "parse_setup", "setup_names"]
