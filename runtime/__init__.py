"""edgecls.runtime: the torch-free classifier (numpy, Pillow, onnxruntime; OpenVINO optional)."""

from edgecls.spec import ModelSpec

from .classifier import Classifier, Failure, Prediction

__all__ = ["Classifier", "Failure", "ModelSpec", "Prediction"]
