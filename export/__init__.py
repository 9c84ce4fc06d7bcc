"""edgecls.export: TorchScript / ONNX / OpenVINO (+ INT8) files with proven parity and a manifest.

``pipeline.export_checkpoint`` is the library call behind ``edgecls export``; ``formats.FORMATS`` is
the one table of formats. Imports the trainer (model registry, checkpoints, data) to build files, and
the runtime's engines to run them: the parity gate proves the code a device runs.
"""
