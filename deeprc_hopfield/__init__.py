"""deeprc-hopfield: immune repertoire classification with Hopfield attention pooling."""

__version__ = "0.1.0"
