"""Training machinery: building tasks and trainers from a composed config, fitting, evaluating
(:mod:`~mnet_vision.training.run`), the callbacks every run uses, optimizer parameter groups and
atomic checkpoint IO. ``tools/train.py`` and ``tools/eval.py`` are thin wrappers over
:func:`train` and :func:`evaluate`."""
from mnet_vision.training.run import (
                                      build_task,
                                      build_trainer,
                                      check_resumable,
                                      default_run_dir,
                                      evaluate,
                                      resume_checkpoint,
                                      task_from_checkpoint,
                                      train,
)

__all__ = ["build_task", "build_trainer", "check_resumable", "default_run_dir", "evaluate", "resume_checkpoint",
           "task_from_checkpoint", "train"]
