"""Downstream tasks: importing this package registers every task module in it."""

from mirformer.registry import import_submodules
from mirformer.tasks.base import TASKS, Task, make_task

import_submodules(__name__)

__all__ = ["TASKS", "Task", "make_task"]
