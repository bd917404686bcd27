"""The repertoire classifier: CNN sequence embedder, streamed Hopfield pooling, output heads."""

from deeprc_hopfield.model.batch import SequenceBags
from deeprc_hopfield.model.config import ModelConfig, TaskSpec
from deeprc_hopfield.model.embedding import SequenceEmbedder, position_features
from deeprc_hopfield.model.heads import OutputNetwork, probabilities, task_loss
from deeprc_hopfield.model.model import ModelOutput, RepertoireClassifier
from deeprc_hopfield.model.pooling import HopfieldPooling
from deeprc_hopfield.model.streaming import DEFAULT_CHUNK, LeftOut, StreamingSoftmax, segment_ids

__all__ = [
    "DEFAULT_CHUNK", "HopfieldPooling", "LeftOut", "ModelConfig", "ModelOutput", "OutputNetwork",
    "RepertoireClassifier", "SequenceBags",
    "SequenceEmbedder", "StreamingSoftmax", "TaskSpec", "position_features", "probabilities", "segment_ids",
    "task_loss",
]
