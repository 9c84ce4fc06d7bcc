"""edgecls.export: every format of the table (TorchScript, ONNX, OpenVINO, LiteRT, NCNN, ExecuTorch; FP32, FP16,
INT8) built with proven parity, a manifest and golden vectors.

``pipeline.export_checkpoint`` is the library call behind ``edgecls export``; ``formats.FORMATS`` is
the build rows of the one table of formats (``edgecls.format_table``). Imports the trainer (model
registry, checkpoints, data) to build files, and the runtime's engines to run them: the parity gate
proves the code a device runs.
"""
