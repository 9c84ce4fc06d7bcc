"""edgecls.runtime: the torch-free classifier (numpy, Pillow, onnxruntime; OpenVINO, LiteRT, NCNN and ExecuTorch
optional, ExecuTorch's Python runtime linking torch)."""

from edgecls.spec import ModelSpec

from .classifier import Classifier, Failure, Prediction

__all__ = ["Classifier", "Failure", "ModelSpec", "Prediction"]
