"""Training a `RepertoireClassifier` on a store: settings (`config`), the clone memory's fit
(`clone_memory`), the seeding counts (`seeding`), the loop (`loop`), checkpoints (`checkpoint`) and
model selection (`selection`). `train` is the entry point of the CLI and the workflow."""

from deeprc_hopfield.training.config import TrainingConfig, TrainingError, read_config
from deeprc_hopfield.training.loop import Trainer, train

__all__ = ["Trainer", "TrainingConfig", "TrainingError", "read_config", "train"]
